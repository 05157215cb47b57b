//! `heph daemon status`: is it running, which version, the socket, the last sync, self-update, and every flag.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::ServiceError;
use super::backend::Context;
use super::config::Config;
use crate::selfupdate::SelfUpdateStatus;

/// What `heph daemon status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    /// The config file.
    pub config_path: PathBuf,
    /// The service manager.
    pub backend: String,
    /// The label / unit name.
    pub label: String,
    /// The rendered unit/plist.
    pub unit_path: PathBuf,
    /// Whether the unit/plist exists.
    pub installed: bool,
    /// Whether it runs.
    pub running: bool,
    /// Its pid, when known.
    pub pid: Option<i32>,
    /// The service manager's words.
    pub detail: String,
    /// What the configured `hephd --version` prints, or why it could not be run.
    pub version: String,
    /// The socket.
    pub socket: PathBuf,
    /// Whether something accepts connections on it.
    pub socket_alive: bool,
    /// The store.
    pub db: PathBuf,
    /// The last successful sync, as the spoke recorded it; none when unknown.
    pub last_sync: Option<String>,
    /// The self-updater's status file, when present.
    pub self_update: Option<SelfUpdateStatus>,
    /// Whether the installed unit still matches the config (false: run `heph daemon restart`).
    pub unit_matches_config: bool,
    /// The program and every argument the config renders to.
    pub command: Vec<String>,
}

fn hephd_version(program: &std::path::Path) -> String {
    let argv = vec![
        program.to_string_lossy().into_owned(),
        "--version".to_owned(),
    ];
    match crate::selfupdate::run_for_status(&argv, Duration::from_secs(5)) {
        Ok(v) => v,
        Err(e) => format!("unknown ({e})"),
    }
}

/// Gathers the status.
pub fn gather(ctx: &Context, config: &Config) -> Result<DaemonStatus, ServiceError> {
    let spec = ctx.spec(config);
    let backend = ctx.backend(config);
    let unit_path = backend.unit_path(ctx, &spec);
    let state = backend.state(ctx, &spec)?;
    let unit_matches_config =
        std::fs::read_to_string(&unit_path).is_ok_and(|t| t == backend.render(&spec));
    let socket = config.socket(&ctx.home);
    let socket_alive = std::os::unix::net::UnixStream::connect(&socket).is_ok();
    let db = config.db(&ctx.home);
    let self_update = SelfUpdateStatus::load(&config.self_update_status_path(&ctx.home)).ok();
    let mut command = vec![spec.program.to_string_lossy().into_owned()];
    command.extend(spec.args.iter().cloned());
    Ok(DaemonStatus {
        config_path: ctx.config_path.clone(),
        backend: backend.name().to_owned(),
        label: spec.label.clone(),
        unit_path,
        installed: state.installed,
        running: state.running,
        pid: state.pid,
        detail: state.detail,
        version: hephd_version(&spec.program),
        socket,
        socket_alive,
        last_sync: last_sync(&db),
        db,
        self_update,
        unit_matches_config,
        command,
    })
}

/// The last sync time the spoke recorded in its store, read without taking any lock.
fn last_sync(db: &std::path::Path) -> Option<String> {
    if !db.exists() {
        return None;
    }
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.query_row("SELECT value FROM meta WHERE key = 'last_sync'", [], |r| {
        r.get::<_, String>(0)
    })
    .ok()
}

impl DaemonStatus {
    /// The human-readable report.
    pub fn human(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut s = String::new();
        s.push_str(&format!(
            "running:      {}{}\n",
            yes_no(self.running),
            self.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ));
        s.push_str(&format!(
            "service:      {} {} — {}\n",
            self.backend, self.label, self.detail
        ));
        s.push_str(&format!(
            "unit:         {}{}\n",
            self.unit_path.display(),
            match (self.installed, self.unit_matches_config) {
                (false, _) => " (not installed)",
                (true, true) => "",
                (true, false) => " (differs from the config: run `heph daemon restart`)",
            }
        ));
        s.push_str(&format!("version:      {}\n", self.version));
        s.push_str(&format!(
            "socket:       {} ({})\n",
            self.socket.display(),
            if self.socket_alive {
                "accepting"
            } else {
                "not accepting"
            }
        ));
        s.push_str(&format!("store:        {}\n", self.db.display()));
        s.push_str(&format!(
            "last sync:    {}\n",
            self.last_sync.as_deref().unwrap_or("unknown")
        ));
        s.push_str(&format!(
            "self-update:  {}\n",
            self.self_update.as_ref().map_or_else(
                || "no status recorded".to_owned(),
                SelfUpdateStatus::summary
            )
        ));
        s.push_str(&format!("config:       {}\n", self.config_path.display()));
        s.push_str(&format!("command:      {}\n", self.command.join(" ")));
        s
    }
}
