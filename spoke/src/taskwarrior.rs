//! Import from Taskwarrior's `task export` JSON (an array, or one object per line).
//!
//! Each Taskwarrior task maps to a node with a deterministic id derived from its uuid, so re-importing
//! the same file changes nothing and importing an updated export updates the same nodes. description →
//! title, status → state, project, tags, scheduled (or wait) → do date, due → late on, annotations → log
//! entries, recur → recurrence where it is expressible. Recurring templates (status `recurring`) are
//! skipped: their pending instances carry the rule. The whole file is validated before anything is written.

use std::collections::BTreeSet;

use heph_format::{Field, NodeId, NodeKind, Op, OpKind, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dates::{Date, days_from_civil, local_day, local_midnight_ms};
use crate::env::Env;
use crate::error::{Result, SpokeError};
use crate::materialise::NodeState;
use crate::recur::Rule;
use crate::replica::Replica;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Tasks created.
    pub created: u64,
    /// Tasks that existed and changed.
    pub updated: u64,
    /// Tasks that existed and already matched.
    pub unchanged: u64,
    /// Recurring templates skipped.
    pub skipped_templates: u64,
    /// Recurrence rules that could not be expressed (kept as a log entry instead).
    pub unexpressible_recurrences: u64,
}

#[derive(Debug, Deserialize)]
struct TwAnnotation {
    #[serde(default)]
    entry: Option<String>,
    description: String,
}

#[derive(Debug, Deserialize)]
struct TwTask {
    uuid: String,
    description: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    due: Option<String>,
    #[serde(default)]
    scheduled: Option<String>,
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    recur: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    annotations: Vec<TwAnnotation>,
}

/// Parses Taskwarrior's `20261203T120000Z` timestamps to Unix ms.
pub fn parse_tw_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: core::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = Date {
        year: num(0..4)? as i32,
        month: num(4..6)?,
        day: num(6..8)?,
    };
    if !date.is_valid() {
        return None;
    }
    let (h, m, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((days_from_civil(date) * 86_400 + i64::from(h * 3600 + m * 60 + sec)) * 1000)
}

/// The node id a Taskwarrior uuid maps to.
pub fn tw_node_id(uuid: &str, entry_ms: i64) -> NodeId {
    let h = blake3::hash(
        &[
            b"heph.taskwarrior.v1".as_slice(),
            uuid.trim().to_ascii_lowercase().as_bytes(),
        ]
        .concat(),
    );
    let mut r = [0u8; 10];
    r.copy_from_slice(&h.as_bytes()[..10]);
    NodeId::from_parts(entry_ms.max(0) as u64, r)
}

fn parse_input(data: &str) -> Result<Vec<TwTask>> {
    let trimmed = data.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed)
            .map_err(|e| SpokeError::Invalid(format!("not Taskwarrior export JSON: {e}")))?
    } else {
        let mut v = Vec::new();
        for (i, line) in data.lines().enumerate() {
            let line = line.trim().trim_end_matches(',');
            if line.is_empty() {
                continue;
            }
            v.push(serde_json::from_str(line).map_err(|e| {
                SpokeError::Invalid(format!("not Taskwarrior export JSON (line {}): {e}", i + 1))
            })?);
        }
        v
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<TwTask>(v)
                .map_err(|e| SpokeError::Invalid(format!("Taskwarrior task #{}: {e}", i + 1)))
        })
        .collect()
}

/// Imports Taskwarrior export JSON in one transaction.
pub fn import(replica: &mut Replica, env: &dyn Env, data: &str) -> Result<ImportReport> {
    let tasks = parse_input(data)?;
    let mut report = ImportReport::default();
    let mut planned: Vec<(NodeId, OpKind)> = Vec::new();
    let day = |ms: i64| local_midnight_ms(env, local_day(env, ms));
    let time = |field: &str, v: &Option<String>, uuid: &str| -> Result<Option<i64>> {
        v.as_deref()
            .map(|t| {
                parse_tw_time(t).ok_or_else(|| {
                    SpokeError::Invalid(format!(
                        "Taskwarrior task {uuid}: {field} {t:?} is not a Taskwarrior date"
                    ))
                })
            })
            .transpose()
    };
    let mut seen = BTreeSet::new();
    for t in &tasks {
        if t.uuid.trim().is_empty() {
            return Err(SpokeError::Invalid(
                "a Taskwarrior task has an empty uuid".into(),
            ));
        }
        if !seen.insert(t.uuid.trim().to_ascii_lowercase()) {
            continue;
        }
        let status = t.status.as_deref().unwrap_or("pending");
        let state = match status {
            "pending" | "waiting" => TaskState::Outstanding,
            "completed" => TaskState::Done,
            "deleted" => TaskState::Dropped,
            "recurring" => {
                report.skipped_templates += 1;
                continue;
            }
            other => {
                return Err(SpokeError::Invalid(format!(
                    "Taskwarrior task {}: unknown status {other:?}",
                    t.uuid
                )));
            }
        };
        let title = t.description.trim().replace('\n', " ");
        if title.is_empty() {
            return Err(SpokeError::Invalid(format!(
                "Taskwarrior task {} has an empty description",
                t.uuid
            )));
        }
        let entry = time("entry", &t.entry, &t.uuid)?.unwrap_or(0);
        let due = time("due", &t.due, &t.uuid)?.map(day);
        let scheduled = time("scheduled", &t.scheduled, &t.uuid)?
            .or(time("wait", &t.wait, &t.uuid)?)
            .map(day);
        let (recurrence, recur_note) = match t.recur.as_deref() {
            None => (None, None),
            Some(r) => match Rule::parse(r) {
                Ok(rule) => (Some(rule.to_rrule()), None),
                Err(_) => {
                    report.unexpressible_recurrences += 1;
                    (
                        None,
                        Some(format!(
                            "Taskwarrior recurrence {r:?} is not expressible here"
                        )),
                    )
                }
            },
        };
        let attention = match t.priority.as_deref() {
            Some("H") => Some(heph_format::Attention::A1),
            Some("M") => Some(heph_format::Attention::A2),
            Some("L") => Some(heph_format::Attention::A4),
            _ => None,
        };
        let project = t
            .project
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let id = tw_node_id(&t.uuid, entry);
        let cur = NodeState::load(replica.connection(), id)?;
        let existing_logs: BTreeSet<String> = if cur.is_some() {
            let mut st = replica
                .connection()
                .prepare_cached("SELECT text FROM log_entries WHERE node = ?1")?;
            let rows = st.query_map([&id.to_bytes()[..]], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        } else {
            BTreeSet::new()
        };
        let before = planned.len();
        let blank = NodeState::empty(id, None);
        let c = cur.as_ref().unwrap_or(&blank);
        if cur.is_none() {
            planned.push((
                id,
                OpKind::Create {
                    kind: NodeKind::Task,
                },
            ));
        }
        let mut set = |f: Field, same: bool| {
            if cur.is_none() || !same {
                planned.push((id, OpKind::Set(f)));
            }
        };
        set(Field::Title(title.clone()), c.title == title);
        if cur.is_some() || state != TaskState::Outstanding {
            set(Field::State(state), c.state == state);
        }
        if cur.is_some() || project.is_some() {
            set(Field::Project(project.clone()), c.project == project);
        }
        if cur.is_some() || scheduled.is_some() {
            set(Field::DoDate(scheduled), c.do_date == scheduled);
        }
        if cur.is_some() || due.is_some() {
            set(Field::LateOn(due), c.late_on == due);
        }
        if cur.is_some() || recurrence.is_some() {
            set(
                Field::Recurrence(recurrence.clone()),
                c.recurrence == recurrence,
            );
        }
        if attention.is_some() {
            set(Field::Attention(attention), c.attention == attention);
        }
        for tag in &t.tags {
            let tag = tag.trim().trim_start_matches('+');
            if !tag.is_empty() && !tag.contains(char::is_whitespace) && !c.tags.contains(tag) {
                planned.push((
                    id,
                    OpKind::Tag {
                        tag: tag.to_owned(),
                        present: true,
                    },
                ));
            }
        }
        let mut logs: Vec<String> = t
            .annotations
            .iter()
            .map(|a| {
                let _ = &a.entry;
                a.description.clone()
            })
            .collect();
        if cur.is_none() {
            logs.insert(0, format!("imported from Taskwarrior {}", t.uuid));
        }
        logs.extend(recur_note);
        for text in logs {
            if !existing_logs.contains(&text) {
                planned.push((id, OpKind::Log { text }));
            }
        }
        match (cur.is_some(), planned.len() > before) {
            (false, _) => report.created += 1,
            (true, true) => report.updated += 1,
            (true, false) => report.unchanged += 1,
        }
    }
    let mut ops = Vec::with_capacity(planned.len());
    for (node, kind) in planned {
        let hlc = replica.tick(env);
        ops.push(Op { hlc, node, kind });
    }
    replica.commit_local(Some("import taskwarrior"), ops)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tw_times() {
        assert_eq!(parse_tw_time("19700102T000001Z"), Some(86_401_000));
        assert_eq!(parse_tw_time("2026-12-03"), None);
        assert_eq!(parse_tw_time("20261332T000000Z"), None);
    }
}
