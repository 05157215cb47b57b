//! The `heph` command line: clap arguments, one `Command` enum, and the glue that turns each command into
//! an RPC call on a [`backend::Backend`] and prints the answer (human text, or JSON with `--json`).

pub mod backend;
pub mod render;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Completed, Undone};
use crate::env::{Env, SystemEnv};
use crate::model::{HistoryEntry, NodeDetail, NodeView, ProjectView, SearchHit};
use crate::replica::Replica;
use crate::rpc::{DoctorReport, StoreInfo};
use crate::taskwarrior::ImportReport;
use backend::{Backend, InProcess};
use render::Style;

/// hephaestus: tasks, projects, context and logs, on every device, offline.
#[derive(Debug, Parser)]
#[command(name = "heph", version, about, propagate_version = true)]
pub struct Cli {
    /// The data directory holding heph.db [default: ~/.local/share/heph].
    #[arg(long, global = true, env = "HEPH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Every `heph` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a task: heph task "Title" [--project P] [--do-date D] ...
    Task {
        /// The title (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        title: Vec<String>,
        /// Project name.
        #[arg(long, short = 'p')]
        project: Option<String>,
        /// When to do it: today, tomorrow, +3d, +2w, fri, YYYY-MM-DD.
        #[arg(long, short = 'd')]
        do_date: Option<String>,
        /// When it becomes late (same date language).
        #[arg(long)]
        late_on: Option<String>,
        /// a1 (red) | a2 (orange) | a3 (white) | a4 (blue).
        #[arg(long, short = 'a')]
        attention: Option<String>,
        /// daily, weekly, monthly, yearly, weekdays, "every 3 days", mon,thu, or an RRULE.
        #[arg(long, short = 'r')]
        recur: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
        /// Create a note (knowledge node) instead of a task.
        #[arg(long)]
        note: bool,
        /// Print the new node as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tasks (outstanding by default).
    List {
        /// Only this project.
        #[arg(long, short = 'p')]
        project: Option<String>,
        /// Only tasks whose do date or late-on date is today or earlier.
        #[arg(long)]
        due: bool,
        /// outstanding | done | dropped | all.
        #[arg(long, default_value = "outstanding")]
        state: String,
        /// Only tasks with this tag.
        #[arg(long, short = 't')]
        tag: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What to do next: due or undated outstanding tasks, most urgent first.
    Next {
        /// How many.
        #[arg(long, short = 'n', default_value_t = 10)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show everything about a node (context, log, links, conflicts).
    Show {
        /// Id or unique prefix (≥ 4 characters).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark done (a recurring task gets its next occurrence).
    Done {
        /// Id or prefix.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop a task.
    Drop {
        /// Id or prefix.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Skip this occurrence of a recurring task.
    Skip {
        /// Id or prefix.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a done or dropped task outstanding again.
    Reopen {
        /// Id or prefix.
        id: String,
    },
    /// Change fields; `none` clears a field.
    Edit {
        /// Id or prefix.
        id: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New do date or none.
        #[arg(long, short = 'd')]
        do_date: Option<String>,
        /// New late-on date or none.
        #[arg(long)]
        late_on: Option<String>,
        /// New recurrence or none.
        #[arg(long, short = 'r')]
        recur: Option<String>,
        /// New attention or none.
        #[arg(long, short = 'a')]
        attention: Option<String>,
        /// New project or none.
        #[arg(long, short = 'p')]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tombstone a node (undo with `heph restore` or `heph undo`).
    Delete {
        /// Id or prefix.
        id: String,
    },
    /// Restore a deleted node.
    Restore {
        /// Id or prefix.
        id: String,
    },
    /// Show, replace (--body) or append to (--append) the context document; `-` reads stdin.
    Context {
        /// Id or prefix.
        id: String,
        /// Text to append.
        #[arg(long, conflicts_with = "body")]
        append: Option<String>,
        /// The whole new document.
        #[arg(long)]
        body: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Append a log entry; `-` reads stdin.
    Log {
        /// Id or prefix.
        id: String,
        /// The entry.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Projects.
    Project {
        /// list | add.
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Add a tag.
    Tag {
        /// Id or prefix.
        id: String,
        /// The tag.
        tag: String,
    },
    /// Remove a tag.
    Untag {
        /// Id or prefix.
        id: String,
        /// The tag.
        tag: String,
    },
    /// Link two nodes.
    Link {
        /// From (id or prefix).
        id: String,
        /// To (id or prefix).
        target: String,
        /// Link kind [default: related].
        #[arg(long, short = 'k')]
        kind: Option<String>,
        /// Remove the link instead.
        #[arg(long)]
        remove: bool,
    },
    /// Full-text search over titles, context documents and logs.
    Search {
        /// Words to find (all must match; prefixes match).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// How many hits.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every change to a node.
    History {
        /// Id or prefix.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Undo this device's latest action (with new ops, so it syncs).
    Undo {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Nodes whose context document has an unresolved conflict.
    Conflicts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export everything.
    Export {
        /// json | markdown.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Import from another tool.
    Import {
        /// The source.
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Rebuild all derived tables from the op log and prove the digest is unchanged.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Owner, origin, schema version and counts of the store.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Log in to the hub (device code), log out, or show who this device is: heph auth login|logout|whoami.
    Auth(crate::auth::cli::AuthArgs),
    /// Sync with the hub now, set and remember the hub (--hub-url URL), or show the sync status (--status [--json]).
    Sync(crate::daemon::cli::SyncArgs),
    /// Manage the background daemon from ~/.config/heph/config.toml: install|start|stop|restart|status|uninstall|render.
    Daemon(crate::service::cli::DaemonArgs),
}

/// `heph project …`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// List projects with outstanding counts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a project.
    Add {
        /// Its name.
        #[arg(required = true, num_args = 1..)]
        name: Vec<String>,
    },
}

/// `heph import …`.
#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Taskwarrior `task export` JSON (idempotent, keyed by uuid).
    Taskwarrior {
        /// The file, or `-` for stdin.
        file: String,
    },
}

/// Formats Unix ms as local `YYYY-MM-DD HH:MM`.
pub fn format_ms(ms: i64) -> String {
    let env = SystemEnv;
    let local = ms + env.local_offset_ms(ms);
    let day = local.div_euclid(crate::dates::DAY_MS);
    let rem = local.rem_euclid(crate::dates::DAY_MS) / 60_000;
    format!(
        "{} {:02}:{:02}",
        crate::dates::civil_from_days(day),
        rem / 60,
        rem % 60
    )
}

/// The data directory: `--data-dir`, `$HEPH_DATA_DIR`, else `~/.local/share/heph`.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; pass --data-dir DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/heph"))
}

/// Opens the store `heph.db` in `dir`, creating the directory if needed.
pub fn open_store(dir: &std::path::Path) -> Result<Replica> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    } else if !dir.is_dir() {
        bail!("the data directory {} is not a directory", dir.display());
    }
    let path = dir.join("heph.db");
    let path = path
        .to_str()
        .ok_or_else(|| anyhow!("the data directory path is not UTF-8"))?;
    Ok(Replica::open(path, &SystemEnv)?)
}

fn read_arg(v: String) -> Result<String> {
    if v == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        Ok(s)
    } else {
        Ok(v)
    }
}

struct Out<'a> {
    backend: &'a mut dyn Backend,
    style: Style,
    buf: String,
}

impl Out<'_> {
    /// Calls `method` and returns the parsed answer and its JSON text.
    fn both<T: for<'de> Deserialize<'de>>(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<(T, String)> {
        let text = self.backend.call_text(method, params)?;
        let t = serde_json::from_str(&text)
            .with_context(|| format!("unexpected answer from {method}"))?;
        Ok((t, text))
    }
    /// Calls `method` and returns the parsed answer.
    fn fetch<T: for<'de> Deserialize<'de>>(&mut self, method: &str, params: Value) -> Result<T> {
        Ok(self.both(method, params)?.0)
    }
    /// Calls `method`. With `json` the answer is printed as it came (not parsed again: lists can be
    /// large) and `None` is returned; otherwise the parsed answer is returned for rendering.
    fn call<T: for<'de> Deserialize<'de>>(
        &mut self,
        json: bool,
        method: &str,
        params: Value,
    ) -> Result<Option<T>> {
        if json {
            let text = self.backend.call_text(method, params)?;
            self.json(&text)?;
            return Ok(None);
        }
        self.fetch(method, params).map(Some)
    }
    fn json(&mut self, text: &str) -> Result<()> {
        self.buf.push_str(text);
        self.buf.push('\n');
        Ok(())
    }
    fn text(&mut self, s: &str) {
        self.buf.push_str(s);
    }
}

fn completed_text(style: &Style, verb: &str, c: &Completed) -> String {
    let mut s = format!("{verb} {}\n", render::node_line(style, &c.node));
    if let Some(n) = &c.next {
        s.push_str(&format!("next  {}\n", render::node_line(style, n)));
    }
    s
}

/// Runs one parsed command against a backend, returning what to print.
pub fn run_command(backend: &mut dyn Backend, style: Style, command: Command) -> Result<String> {
    let mut o = Out {
        backend,
        style,
        buf: String::new(),
    };
    let style = o.style.clone();
    match command {
        Command::Sync(_) => {
            bail!("heph sync does not run through a backend; it runs from heph's main")
        }
        Command::Auth(_) => {
            bail!("heph auth does not use the task store; it runs from heph's main")
        }
        Command::Daemon(_) => {
            bail!("heph daemon does not use the task store; it runs from heph's main")
        }
        Command::Task {
            title,
            project,
            do_date,
            late_on,
            attention,
            recur,
            tags,
            note,
            json,
        } => {
            if let Some(n) = o.call::<NodeView>(json, "task.add",
                json!({
                    "title": title.join(" "), "project": project, "do_date": do_date, "late_on": late_on,
                    "attention": attention, "recur": recur, "tags": tags,
                    "kind": if note { "note" } else { "task" },
                }))? {
                o.text(&format!("created {}\n", render::node_line(&style, &n)))
            }
        }
        Command::List {
            project,
            due,
            state,
            tag,
            json,
        } => {
            if let Some(ns) = o.call::<Vec<NodeView>>(json, "task.list",
                json!({ "project": project, "due": due, "state": state, "tag": tag }))? {
                o.text(&render::node_list(&style, &ns, "nothing here"))
            }
        }
        Command::Next { limit, json } => {
            if let Some(ns) = o.call::<Vec<NodeView>>(json, "task.next", json!({ "limit": limit }))? {
                o.text(&render::node_list(&style, &ns, "nothing to do"))
            }
        }
        Command::Show { id, json } => {
            if let Some(d) = o.call::<NodeDetail>(json, "task.show", json!({ "id": id }))? {
                o.text(&render::detail(&style, &d))
            }
        }
        Command::Done { id, json } => {
            if let Some(c) = o.call::<Completed>(json, "task.done", json!({ "id": id }))? {
                o.text(&completed_text(&style, "done ", &c))
            }
        }
        Command::Drop { id, json } => {
            if let Some(c) = o.call::<Completed>(json, "task.drop", json!({ "id": id }))? {
                o.text(&completed_text(&style, "dropped", &c))
            }
        }
        Command::Skip { id, json } => {
            if let Some(c) = o.call::<Completed>(json, "task.skip", json!({ "id": id }))? {
                o.text(&completed_text(&style, "skipped", &c))
            }
        }
        Command::Reopen { id } => {
            let n: NodeView = o.fetch("task.reopen", json!({ "id": id }))?;
            o.text(&format!("reopened {}\n", render::node_line(&style, &n)));
        }
        Command::Edit {
            id,
            title,
            do_date,
            late_on,
            recur,
            attention,
            project,
            json,
        } => {
            if let Some(n) = o.call::<NodeView>(json, "task.edit",
                json!({ "id": id, "title": title, "do_date": do_date, "late_on": late_on, "recur": recur,
                        "attention": attention, "project": project }))? {
                o.text(&format!("edited {}\n", render::node_line(&style, &n)))
            }
        }
        Command::Delete { id } => {
            let n: NodeView = o.fetch("task.delete", json!({ "id": id }))?;
            o.text(&format!("deleted {} {}\n", n.id, n.title));
        }
        Command::Restore { id } => {
            let n: NodeView = o.fetch("task.restore", json!({ "id": id }))?;
            o.text(&format!("restored {}\n", render::node_line(&style, &n)));
        }
        Command::Context {
            id,
            append,
            body,
            json,
        } => {
            let append = append.map(read_arg).transpose()?;
            let body = body.map(read_arg).transpose()?;
            let editing = append.is_some() || body.is_some();
            let (d, v): (NodeDetail, _) = o.both(
                "task.context",
                json!({ "id": id, "append": append, "body": body }),
            )?;
            if json {
                o.json(&v)?
            } else if editing {
                o.text(&format!(
                    "context of {} updated ({} lines)\n",
                    d.node.id,
                    d.context.lines().count()
                ));
                if d.node.conflicted {
                    o.text("the document still holds a conflict block\n");
                }
            } else {
                o.text(&d.context);
            }
        }
        Command::Log { id, text } => {
            let text = read_arg(text.join(" "))?;
            let d: NodeDetail = o.fetch("task.log", json!({ "id": id, "text": text }))?;
            o.text(&format!(
                "logged on {} ({} entries)\n",
                d.node.id,
                d.log.len()
            ));
        }
        Command::Project { command } => match command {
            ProjectCommand::List { json } => {
                if let Some(ps) = o.call::<Vec<ProjectView>>(json, "project.list", json!({}))? {
                    o.text(&render::projects(&ps))
                }
            }
            ProjectCommand::Add { name } => {
                let n: NodeView = o.fetch("project.add", json!({ "name": name.join(" ") }))?;
                o.text(&format!("added project {} ({})\n", n.title, n.id));
            }
        },
        Command::Tag { id, tag } => {
            let n: NodeView = o.fetch("task.tag", json!({ "id": id, "tag": tag }))?;
            o.text(&format!("{}\n", render::node_line(&style, &n)));
        }
        Command::Untag { id, tag } => {
            let n: NodeView = o.fetch("task.untag", json!({ "id": id, "tag": tag }))?;
            o.text(&format!("{}\n", render::node_line(&style, &n)));
        }
        Command::Link {
            id,
            target,
            kind,
            remove,
        } => {
            let method = if remove { "task.unlink" } else { "task.link" };
            let d: NodeDetail = o.fetch(method, json!({ "id": id, "target": target, "kind": kind }))?;
            o.text(&format!(
                "{} now has {} link(s)\n",
                d.node.id,
                d.links.iter().filter(|l| l.direction == "out").count()
            ));
        }
        Command::Search { query, limit, json } => {
            if let Some(h) = o.call::<Vec<SearchHit>>(json, "search",
                json!({ "query": query.join(" "), "limit": limit }))? {
                o.text(&render::hits(&style, &h))
            }
        }
        Command::History { id, json } => {
            if let Some(h) = o.call::<Vec<HistoryEntry>>(json, "task.history", json!({ "id": id }))? {
                o.text(&render::history(&h))
            }
        }
        Command::Undo { json } => {
            if let Some(u) = o.call::<Undone>(json, "undo", json!({}))? {
                o.text(&format!("undid {} ({} inverse ops)\n", u.action, u.ops));
                for s in &u.skipped {
                    o.text(&format!("not undone: {s}\n"));
                }
            }
        }
        Command::Conflicts { json } => {
            if let Some(ns) = o.call::<Vec<NodeView>>(json, "conflicts", json!({}))? {
                o.text(&render::node_list(&style, &ns, "no conflicts"))
            }
        }
        Command::Export { format } => {
            let v = o.backend.call("export", json!({ "format": format }))?;
            let content = v
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            o.text(&content);
            if !content.ends_with('\n') {
                o.text("\n");
            }
        }
        Command::Import {
            source: ImportSource::Taskwarrior { file },
        } => {
            let data = if file == "-" {
                read_arg(file)?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let r: ImportReport = o.fetch("import.taskwarrior", json!({ "data": data }))?;
            o.text(&format!(
                "imported: {} created, {} updated, {} unchanged, {} recurring templates skipped\n",
                r.created, r.updated, r.unchanged, r.skipped_templates
            ));
        }
        Command::Doctor { json } => {
            let (d, v): (DoctorReport, _) = o.both("store.doctor", json!({}))?;
            if json {
                o.json(&v)?
            } else if d.ok {
                o.text(&format!(
                    "ok: rebuilt from {} ops, digest unchanged ({})\n",
                    d.ops, d.after
                ));
            } else {
                bail!(
                    "the materialised state differed from a rebuild (before {}, after {}); it has been rebuilt",
                    d.before,
                    d.after
                );
            }
        }
        Command::Info { json } => {
            if let Some(i) = o.call::<StoreInfo>(json, "store.info", json!({}))? {
                o.text(&format!(
                    "owner    {}\norigin   {}\nschema   {}\nops      {}\norigins  {}\ndigest   {}\n",
                    i.owner_id, i.origin, i.schema_version, i.ops, i.origins.len(), i.digest
                ));
            }
        }
    }
    Ok(o.buf)
}

fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    }
}

fn run(cli: Cli) -> Result<String> {
    let dir = data_dir(cli.data_dir)?;
    if let Command::Auth(args) = cli.command {
        return crate::auth::cli::run(args, &dir);
    }
    if let Command::Sync(args) = cli.command {
        return crate::daemon::cli::run(&dir, args);
    }
    if let Command::Daemon(args) = cli.command {
        crate::service::cli::run(&args)?;
        return Ok(String::new());
    }
    // The one switch point: a running daemon answers every call; without one, open the store here.
    if let Some(mut daemon) = crate::daemon::client::DaemonBackend::connect(&dir) {
        let style = Style {
            color: use_color(cli.color),
            today: crate::dates::civil_from_days(crate::dates::today(&SystemEnv)).to_string(),
        };
        return run_command(&mut daemon, style, cli.command);
    }
    let replica = open_store(&dir)?;
    let env = SystemEnv;
    let style = Style {
        color: use_color(cli.color),
        today: crate::dates::civil_from_days(crate::dates::today(&env)).to_string(),
    };
    let mut backend = InProcess::new(replica, env);
    run_command(&mut backend, style, cli.command)
}

/// The `heph` binary: parse, run, print; errors print one line `error: …` and exit 2.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write output: {e}");
                    std::process::ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
