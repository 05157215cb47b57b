//! Human output of the CLI: aligned task lines with attention colours (off for `NO_COLOR` and non-TTYs).

use std::fmt::Write as _;

use crate::model::{HistoryEntry, NodeDetail, NodeView, ProjectView, SearchHit};

/// Whether to colour output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    /// Emit ANSI colours.
    pub color: bool,
    /// Today's local date (`YYYY-MM-DD`), to mark late and due tasks.
    pub today: String,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color && !code.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

fn attention_code(a: Option<&str>) -> &'static str {
    match a {
        Some("a1") => "1;31",
        Some("a2") => "38;5;208",
        Some("a4") => "34",
        _ => "",
    }
}

/// One line per node: id, attention, do date, title, project, tags, markers.
pub fn node_line(style: &Style, n: &NodeView) -> String {
    let mut s = String::new();
    let att = n.attention.as_deref().unwrap_or("  ");
    let date = n.do_date.as_deref().unwrap_or("");
    let late = n
        .late_on
        .as_deref()
        .is_some_and(|l| *l <= *style.today.as_str());
    let _ = write!(
        s,
        "{}  {}  {:<10}  ",
        style.paint("2", &n.id),
        style.paint(attention_code(n.attention.as_deref()), att),
        date
    );
    let title_code = match n.state.as_str() {
        "done" | "dropped" => "2;9",
        _ => attention_code(n.attention.as_deref()),
    };
    s.push_str(&style.paint(title_code, &n.title));
    if let Some(p) = &n.project {
        let _ = write!(s, "  {}", style.paint("36", &format!("[{p}]")));
    }
    for t in &n.tags {
        let _ = write!(s, " {}", style.paint("35", &format!("+{t}")));
    }
    if n.recurrence.is_some() {
        s.push_str(" ↻");
    }
    if late && n.state == "outstanding" {
        let _ = write!(
            s,
            " {}",
            style.paint(
                "1;31",
                &format!("LATE since {}", n.late_on.as_deref().unwrap_or(""))
            )
        );
    }
    if n.state != "outstanding" {
        let _ = write!(s, " ({})", n.state);
    }
    if n.conflicted {
        let _ = write!(s, " {}", style.paint("1;33", "CONFLICT"));
    }
    s
}

/// A list of nodes, or a friendly line when empty.
pub fn node_list(style: &Style, nodes: &[NodeView], empty: &str) -> String {
    if nodes.is_empty() {
        return format!("{empty}\n");
    }
    let mut s = String::new();
    for n in nodes {
        s.push_str(&node_line(style, n));
        s.push('\n');
    }
    s
}

/// Everything about one node.
pub fn detail(style: &Style, d: &NodeDetail) -> String {
    let n = &d.node;
    let mut s = String::new();
    let _ = writeln!(s, "{}", style.paint("1", &n.title));
    let _ = writeln!(s, "  id          {}", n.id);
    let _ = writeln!(s, "  kind        {}", n.kind);
    let _ = writeln!(
        s,
        "  state       {}{}",
        n.state,
        if n.deleted { " (deleted)" } else { "" }
    );
    let field = |s: &mut String, k: &str, v: Option<&str>| {
        if let Some(v) = v {
            let _ = writeln!(s, "  {k:<11} {v}");
        }
    };
    field(&mut s, "project", n.project.as_deref());
    field(&mut s, "attention", n.attention.as_deref());
    field(&mut s, "do date", n.do_date.as_deref());
    field(&mut s, "late on", n.late_on.as_deref());
    field(&mut s, "recurrence", n.recurrence.as_deref());
    field(&mut s, "series", n.series.as_deref());
    if !n.tags.is_empty() {
        let _ = writeln!(s, "  tags        {}", n.tags.join(" "));
    }
    for l in &d.links {
        let arrow = if l.direction == "out" { "→" } else { "←" };
        let _ = writeln!(s, "  link        {arrow} {} {} {}", l.kind, l.id, l.title);
    }
    if n.conflicted {
        let _ = writeln!(
            s,
            "  {}",
            style.paint("1;33", "CONFLICT: concurrent edits overlap; both sides are kept below. Edit the context to resolve.")
        );
    }
    if !d.context.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint("1", "context"));
        for line in d.context.lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if !d.log.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint("1", "log"));
        for l in &d.log {
            let _ = writeln!(s, "  {}  {}", crate::cli::format_ms(l.at_ms), l.text);
        }
    }
    s
}

/// Search hits with snippets.
pub fn hits(style: &Style, hits: &[SearchHit]) -> String {
    if hits.is_empty() {
        return "no matches\n".to_owned();
    }
    let mut s = String::new();
    for h in hits {
        let _ = writeln!(s, "{}", node_line(style, &h.node));
        let _ = writeln!(s, "    {}", h.snippet.replace('\n', " "));
    }
    s
}

/// A node's history.
pub fn history(entries: &[HistoryEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = writeln!(
            s,
            "{}  {}#{}  {}",
            crate::cli::format_ms(e.at_ms),
            e.origin,
            e.seq,
            e.change
        );
    }
    s
}

/// Projects with counts.
pub fn projects(ps: &[ProjectView]) -> String {
    if ps.is_empty() {
        return "no projects\n".to_owned();
    }
    let mut s = String::new();
    for p in ps {
        let _ = writeln!(s, "{:<30} {:>5} outstanding", p.name, p.outstanding);
    }
    s
}
