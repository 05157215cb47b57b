//! Export of the whole store: JSON (every node in full) or Markdown (grouped by project).

use serde_json::json;

use crate::env::Env;
use crate::error::{Result, SpokeError};
use crate::model::{self, NodeDetail};
use crate::replica::Replica;

/// All non-deleted nodes in full detail, ordered by id.
pub fn all_details(replica: &Replica, env: &dyn Env) -> Result<Vec<NodeDetail>> {
    let ids: Vec<Vec<u8>> = {
        let mut st = replica
            .connection()
            .prepare("SELECT id FROM nodes WHERE deleted = 0 AND kind IS NOT NULL ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = heph_format::NodeId::from_bytes(crate::materialise::blob16(id)?);
        out.push(model::node_detail(replica, env, id)?);
    }
    Ok(out)
}

/// Renders the export in `format` (`json` or `markdown`).
pub fn export(replica: &Replica, env: &dyn Env, format: &str) -> Result<String> {
    match format {
        "json" => {
            let nodes = all_details(replica, env)?;
            let doc = json!({
                "owner_id": replica.owner().to_string(),
                "exported_from": replica.origin().to_string(),
                "nodes": nodes,
            });
            serde_json::to_string_pretty(&doc).map_err(|e| SpokeError::Invalid(e.to_string()))
        }
        "markdown" | "md" => {
            let nodes = all_details(replica, env)?;
            let mut md = String::from("# hephaestus export\n");
            let mut groups: std::collections::BTreeMap<String, Vec<&NodeDetail>> =
                Default::default();
            for n in nodes.iter().filter(|n| n.node.kind != "project") {
                groups
                    .entry(
                        n.node
                            .project
                            .clone()
                            .unwrap_or_else(|| "(no project)".into()),
                    )
                    .or_default()
                    .push(n);
            }
            for (project, items) in groups {
                md.push_str(&format!("\n## {project}\n\n"));
                for n in items {
                    let mark = match n.node.state.as_str() {
                        "done" => "x",
                        "dropped" => "-",
                        _ => " ",
                    };
                    md.push_str(&format!("- [{mark}] {}", n.node.title));
                    if let Some(a) = &n.node.attention {
                        md.push_str(&format!(" ({a})"));
                    }
                    if let Some(d) = &n.node.do_date {
                        md.push_str(&format!(" do: {d}"));
                    }
                    if let Some(d) = &n.node.late_on {
                        md.push_str(&format!(" late: {d}"));
                    }
                    if let Some(r) = &n.node.recurrence {
                        md.push_str(&format!(" recur: {r}"));
                    }
                    for t in &n.node.tags {
                        md.push_str(&format!(" #{t}"));
                    }
                    md.push_str(&format!(" `{}`\n", n.node.id));
                    for line in n.context.lines() {
                        md.push_str(&format!("    {line}\n"));
                    }
                    for l in &n.log {
                        md.push_str(&format!("    - log: {}\n", l.text));
                    }
                }
            }
            Ok(md)
        }
        other => Err(SpokeError::Invalid(format!(
            "unknown export format {other:?}: use json or markdown"
        ))),
    }
}
