//! Self-update: poll the forge's release tags, check the toolchain, install the newer release, restart.
//!
//! Off by default (`hephd --self-update`). One check ([`check_once`]) runs `git ls-remote --tags URL`, picks the
//! newest semver tag above the running version, checks that `rustc --version` under `RUSTUP_TOOLCHAIN=stable`
//! meets the workspace's `rust-version`, runs the installer command (no shell; default
//! `cargo install --locked --git {url} --tag {tag} heph-spoke`), and checks that the installed binary reports the
//! new version. Every failure is loud: an `error` log line, a counter in [`SelfUpdateStatus::prometheus`], and the
//! status file that `heph daemon status` and the hub's `/healthz` show ([`SelfUpdateHandle`]). After a successful
//! install the caller restarts (by default the process exits and the service manager starts the new binary).

mod command;
mod status;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use command::{CommandError, split_command};
pub use status::{Outcome, SelfUpdateStatus, Stage};

/// The installer run by default; `{url}` and `{tag}` are replaced.
pub const DEFAULT_INSTALLER: &str = "cargo install --locked --git {url} --tag {tag} heph-spoke";

/// The workspace's `rust-version` this binary was built with: the floor a toolchain must meet.
pub const REQUIRED_RUST_VERSION: &str = env!("CARGO_PKG_RUST_VERSION");

/// Why one self-update check failed. [`SelfUpdateError::stage`] names the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelfUpdateError {
    /// `git ls-remote` could not run, failed, or timed out (forge down, no network, wrong URL).
    #[error("listing release tags of {url} failed: {detail}")]
    Forge {
        /// The forge URL.
        url: String,
        /// Exit status and stderr tail, or why git could not start.
        detail: String,
    },
    /// The forge answered but none of its tags is a semantic version.
    #[error(
        "{url} has no semver release tags (saw {count} tags that are not semver, e.g. {examples:?})"
    )]
    NoSemverTags {
        /// The forge URL.
        url: String,
        /// How many tags were ignored.
        count: usize,
        /// A few of them.
        examples: Vec<String>,
    },
    /// `rustc` could not be run under `RUSTUP_TOOLCHAIN=stable`.
    #[error(
        "toolchain preflight: running `{rustc} --version` with RUSTUP_TOOLCHAIN=stable failed: {detail}"
    )]
    ToolchainMissing {
        /// The rustc that was run.
        rustc: String,
        /// Why.
        detail: String,
    },
    /// The stable toolchain is older than the workspace's `rust-version`.
    #[error(
        "toolchain preflight: rustc {found} (RUSTUP_TOOLCHAIN=stable) is older than the required {required}; \
         run `rustup update stable`, then the next check installs {tag}"
    )]
    ToolchainTooOld {
        /// What rustc reported.
        found: String,
        /// The floor.
        required: String,
        /// The release that was held back.
        tag: String,
    },
    /// The installer command failed (build error, network, disk).
    #[error("installing {tag}: `{command}` failed: {detail}")]
    Install {
        /// The release being installed.
        tag: String,
        /// The command line.
        command: String,
        /// Exit status and the tail of its output.
        detail: String,
    },
    /// The installer succeeded but the installed binary does not report the new version.
    #[error(
        "installing {tag}: the installer succeeded but {binary} reports {found:?}, not version {expected}"
    )]
    Verify {
        /// The release being installed.
        tag: String,
        /// The binary checked.
        binary: String,
        /// What it reported.
        found: String,
        /// The version expected.
        expected: String,
    },
    /// The configured installer command line is invalid.
    #[error("invalid self-update installer command line")]
    BadInstaller(#[from] CommandError),
    /// The poll interval is out of range.
    #[error("self-update interval {0} s is out of range; use 60 ..= 604800")]
    BadInterval(u64),
    /// The running version or the required rust-version is not semver (a build problem).
    #[error("version {0:?} is not semver")]
    BadVersion(String),
}

impl SelfUpdateError {
    /// The step that failed, for metrics and status.
    pub fn stage(&self) -> Stage {
        match self {
            SelfUpdateError::Forge { .. } | SelfUpdateError::NoSemverTags { .. } => Stage::Forge,
            SelfUpdateError::ToolchainMissing { .. } | SelfUpdateError::ToolchainTooOld { .. } => {
                Stage::Toolchain
            }
            SelfUpdateError::Install { .. } | SelfUpdateError::BadInstaller(_) => Stage::Install,
            SelfUpdateError::Verify { .. } => Stage::Verify,
            SelfUpdateError::BadVersion(_) | SelfUpdateError::BadInterval(_) => Stage::Config,
        }
    }
}

/// Everything one check needs.
#[derive(Debug, Clone)]
pub struct SelfUpdateConfig {
    /// The git repository whose tags are polled (`git ls-remote --tags`).
    pub forge_url: String,
    /// Time between checks.
    pub interval: Duration,
    /// Installer command line (split without a shell; `{url}` and `{tag}` replaced).
    pub installer: String,
    /// The running version.
    pub running: semver::Version,
    /// The toolchain floor.
    pub required_rust: semver::Version,
    /// The `git` program.
    pub git: PathBuf,
    /// The `rustc` program (run with `RUSTUP_TOOLCHAIN=stable`).
    pub rustc: PathBuf,
    /// The binary the installer replaces, checked with `--version` after installing; none skips the check.
    pub binary: Option<PathBuf>,
    /// Where the status is persisted (see [`status_path_for_db`]); none keeps it in memory only.
    pub status_path: Option<PathBuf>,
    /// Deadline for `git ls-remote` and `rustc --version`.
    pub probe_timeout: Duration,
    /// Deadline for the installer.
    pub install_timeout: Duration,
}

/// Parses a version the way tags and `rust-version` are written: `v1.2.3`, `1.2.3`, or `1.89` (= 1.89.0).
pub fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.strip_prefix('v').unwrap_or(s);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return semver::Version::parse(&format!("{s}.0")).ok();
    }
    None
}

impl SelfUpdateConfig {
    /// A config for this build: running version and toolchain floor from the crate, `git`/`rustc` from `PATH`,
    /// the default installer, and the current executable as the binary to verify.
    pub fn for_this_build(
        forge_url: impl Into<String>,
        interval: Duration,
    ) -> Result<Self, SelfUpdateError> {
        let running = parse_version(env!("CARGO_PKG_VERSION"))
            .ok_or_else(|| SelfUpdateError::BadVersion(env!("CARGO_PKG_VERSION").to_owned()))?;
        let required_rust = parse_version(REQUIRED_RUST_VERSION)
            .ok_or_else(|| SelfUpdateError::BadVersion(REQUIRED_RUST_VERSION.to_owned()))?;
        let binary = std::env::current_exe().ok().map(|p| {
            // After an earlier replace, Linux reports the old inode as "… (deleted)".
            let s = p.to_string_lossy();
            PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned())
        });
        Ok(SelfUpdateConfig {
            forge_url: forge_url.into(),
            interval,
            installer: DEFAULT_INSTALLER.to_owned(),
            running,
            required_rust,
            git: "git".into(),
            rustc: "rustc".into(),
            binary,
            status_path: None,
            probe_timeout: Duration::from_secs(60),
            install_timeout: Duration::from_secs(3600),
        })
    }
}

/// Release tags with their versions, oldest first.
pub type ReleaseTags = Vec<(String, semver::Version)>;

/// The status file's name (in the daemon's data directory).
pub const STATUS_FILE: &str = "self-update.json";

/// Where the self-update status of the daemon that owns `db` lives: `self-update.json` beside it.
pub fn status_path_for_db(db: &Path) -> PathBuf {
    db.parent()
        .unwrap_or_else(|| Path::new("."))
        .join(STATUS_FILE)
}

/// The release tags in `git ls-remote --tags` output: semver tags (sorted, newest last) and the others.
/// Pre-release tags (`v1.2.0-rc.1`) count as semver but are never chosen for an update.
pub fn parse_ls_remote(output: &str) -> (ReleaseTags, Vec<String>) {
    let mut good: Vec<(String, semver::Version)> = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    for line in output.lines() {
        let Some(refname) = line.split_whitespace().nth(1) else {
            continue;
        };
        let Some(tag) = refname.strip_prefix("refs/tags/") else {
            continue;
        };
        let tag = tag.strip_suffix("^{}").unwrap_or(tag);
        if good.iter().any(|(t, _)| t == tag) || bad.iter().any(|t| t == tag) {
            continue;
        }
        match parse_version(tag) {
            Some(v) if tag.starts_with(|c: char| c == 'v' || c.is_ascii_digit()) => {
                good.push((tag.to_owned(), v))
            }
            _ => bad.push(tag.to_owned()),
        }
    }
    good.sort_by(|a, b| a.1.cmp(&b.1));
    (good, bad)
}

/// The newest release above `running` (pre-releases excluded), if any.
pub fn pick_update<'a>(
    tags: &'a [(String, semver::Version)],
    running: &semver::Version,
) -> Option<&'a (String, semver::Version)> {
    tags.iter()
        .rev()
        .find(|(_, v)| v.pre.is_empty() && v > running)
}

/// Lists the forge's tags.
pub fn list_tags(cfg: &SelfUpdateConfig) -> Result<(ReleaseTags, Vec<String>), SelfUpdateError> {
    let argv = vec![
        cfg.git.to_string_lossy().into_owned(),
        "ls-remote".to_owned(),
        "--tags".to_owned(),
        "--".to_owned(),
        cfg.forge_url.clone(),
    ];
    let out =
        command::run(&argv, &[("GIT_TERMINAL_PROMPT", "0")], cfg.probe_timeout).map_err(|e| {
            SelfUpdateError::Forge {
                url: cfg.forge_url.clone(),
                detail: e.to_string(),
            }
        })?;
    let (good, bad) = parse_ls_remote(&out.stdout);
    if good.is_empty() && !bad.is_empty() {
        return Err(SelfUpdateError::NoSemverTags {
            url: cfg.forge_url.clone(),
            count: bad.len(),
            examples: bad.into_iter().take(3).collect(),
        });
    }
    Ok((good, bad))
}

/// Runs `rustc --version` under `RUSTUP_TOOLCHAIN=stable` and checks it against the floor.
pub fn preflight_toolchain(
    cfg: &SelfUpdateConfig,
    tag: &str,
) -> Result<semver::Version, SelfUpdateError> {
    let rustc = cfg.rustc.to_string_lossy().into_owned();
    let out = command::run(
        &[rustc.clone(), "--version".to_owned()],
        &[("RUSTUP_TOOLCHAIN", "stable")],
        cfg.probe_timeout,
    )
    .map_err(|e| SelfUpdateError::ToolchainMissing {
        rustc: rustc.clone(),
        detail: e.to_string(),
    })?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let found = out
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|v| semver::Version::parse(v.split('-').next().unwrap_or(v)).ok())
        .ok_or_else(|| SelfUpdateError::ToolchainMissing {
            rustc: rustc.clone(),
            detail: format!("unexpected output {:?}", out.stdout.trim()),
        })?;
    let floor = semver::Version::new(
        cfg.required_rust.major,
        cfg.required_rust.minor,
        cfg.required_rust.patch,
    );
    if found < floor {
        return Err(SelfUpdateError::ToolchainTooOld {
            found: found.to_string(),
            required: cfg.required_rust.to_string(),
            tag: tag.to_owned(),
        });
    }
    Ok(found)
}

/// One check: list tags, pick, preflight, install, verify. Does not restart and does not record status.
pub fn check_once(cfg: &SelfUpdateConfig) -> Result<Outcome, SelfUpdateError> {
    let installer = split_command(&cfg.installer)?;
    let (tags, _ignored) = list_tags(cfg)?;
    let latest = tags.last().map(|(t, _)| t.clone());
    let Some((tag, version)) = pick_update(&tags, &cfg.running) else {
        return Ok(Outcome::UpToDate { latest });
    };
    preflight_toolchain(cfg, tag)?;
    let argv: Vec<String> = installer
        .iter()
        .map(|a| a.replace("{url}", &cfg.forge_url).replace("{tag}", tag))
        .collect();
    command::run(
        &argv,
        &[("RUSTUP_TOOLCHAIN", "stable")],
        cfg.install_timeout,
    )
    .map_err(|e| SelfUpdateError::Install {
        tag: tag.clone(),
        command: argv.join(" "),
        detail: e.to_string(),
    })?;
    if let Some(binary) = &cfg.binary {
        let b = binary.to_string_lossy().into_owned();
        let found = command::run(&[b.clone(), "--version".to_owned()], &[], cfg.probe_timeout)
            .map(|o| o.stdout.trim().to_owned())
            .unwrap_or_else(|e| e.to_string());
        let expected = version.to_string();
        if !found
            .split_whitespace()
            .any(|w| w.strip_prefix('v').unwrap_or(w) == expected)
        {
            return Err(SelfUpdateError::Verify {
                tag: tag.clone(),
                binary: b,
                found,
                expected,
            });
        }
    }
    Ok(Outcome::Updated {
        tag: tag.clone(),
        version: version.to_string(),
    })
}

/// Shared, live self-update status: what the daemon's `/healthz` and `/metrics` read.
#[derive(Debug, Clone)]
pub struct SelfUpdateHandle {
    inner: Arc<Mutex<SelfUpdateStatus>>,
    path: Option<PathBuf>,
}

impl SelfUpdateHandle {
    /// A handle starting from the persisted status at `path` (counters survive restarts), or a fresh one.
    pub fn new(enabled: bool, running: &str, path: Option<PathBuf>) -> SelfUpdateHandle {
        let mut status = path
            .as_deref()
            .and_then(|p| SelfUpdateStatus::load(p).ok())
            .unwrap_or_default();
        status.enabled = enabled;
        status.running_version = running.to_owned();
        let handle = SelfUpdateHandle {
            inner: Arc::new(Mutex::new(status)),
            path,
        };
        handle.persist();
        handle
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> SelfUpdateStatus {
        self.inner
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The `self_update` object for `/healthz` (JSON).
    pub fn healthz_json(&self) -> serde_json::Value {
        self.snapshot().healthz_json()
    }

    /// Prometheus text-format lines for `/metrics`.
    pub fn prometheus(&self) -> String {
        self.snapshot().prometheus()
    }

    /// Records the result of one check (and logs it: failures at `error`).
    pub fn record(&self, now_ms: u64, result: &Result<Outcome, SelfUpdateError>) {
        match result {
            Ok(outcome) => {
                tracing::info!(target: "heph::selfupdate", ?outcome, "self-update check")
            }
            Err(e) => {
                tracing::error!(target: "heph::selfupdate", stage = e.stage().as_str(), "self-update failed: {e}")
            }
        }
        {
            let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            s.record(now_ms, result);
        }
        self.persist();
    }

    fn persist(&self) {
        if let Some(path) = &self.path
            && let Err(e) = self.snapshot().save(path)
        {
            tracing::error!(target: "heph::selfupdate", "writing self-update status {}: {e}", path.display());
        }
    }
}

/// The hub shows the self-updater in `/healthz` (`"self_update": {…}`) and `/metrics`.
impl heph_hub::server::StatusExtension for SelfUpdateHandle {
    fn healthz_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("self_update".into(), self.healthz_json());
        m
    }

    fn metrics_text(&self) -> String {
        self.prometheus()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs checks forever on the calling thread, every `cfg.interval`, recording each in `handle`. After a
/// successful install it calls `on_updated` with the new tag and returns (the caller restarts).
pub fn run_loop(
    cfg: &SelfUpdateConfig,
    handle: &SelfUpdateHandle,
    stop: &dyn Fn() -> bool,
    on_updated: &mut dyn FnMut(&str),
) {
    loop {
        let result = check_once(cfg);
        handle.record(now_ms(), &result);
        if let Ok(Outcome::Updated { tag, .. }) = &result {
            on_updated(tag);
            return;
        }
        let deadline = std::time::Instant::now() + cfg.interval;
        while std::time::Instant::now() < deadline {
            if stop() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250).min(cfg.interval));
        }
    }
}

/// Starts the loop on a background thread. When a new release is installed the process exits with status 0,
/// so the service manager (launchd `KeepAlive`, systemd `Restart=always`, the supervisor) starts the new binary.
pub fn spawn(
    cfg: SelfUpdateConfig,
    handle: SelfUpdateHandle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("self-update".into()).spawn(move || {
        run_loop(&cfg, &handle, &|| false, &mut |tag| {
            tracing::warn!(target: "heph::selfupdate", "installed {tag}; exiting so the service manager restarts into it");
            std::process::exit(0);
        });
    })
}

/// The `hephd` self-update flags beyond `--self-update` and `--self-update-interval-secs` (which the hub's
/// flag set already defines for both modes); flatten into the daemon's clap struct.
#[derive(Debug, Clone, clap::Args)]
pub struct SelfUpdateArgs {
    /// The git repository whose release tags `--self-update` polls.
    #[arg(long, value_name = "URL", default_value = crate::service::config::DEFAULT_FORGE_URL)]
    pub self_update_forge_url: String,
    /// The installer command line for `--self-update`, run without a shell; `{url}` and `{tag}` are replaced.
    #[arg(long, value_name = "CMD", default_value = DEFAULT_INSTALLER)]
    pub self_update_installer: String,
}

impl SelfUpdateArgs {
    /// Builds the handle (always, so `/healthz` and `heph daemon status` can say "off") and, when `enabled`,
    /// starts the loop on a background thread that exits the process after installing a release.
    /// The status file is `self-update.json` in `state_dir` (the data directory, or the hub's `--db` directory).
    pub fn start(
        &self,
        enabled: bool,
        interval_secs: u64,
        state_dir: &Path,
    ) -> Result<SelfUpdateHandle, SelfUpdateError> {
        split_command(&self.self_update_installer)?;
        if enabled && !(60..=604_800).contains(&interval_secs) {
            return Err(SelfUpdateError::BadInterval(interval_secs));
        }
        let path = state_dir.join(STATUS_FILE);
        let handle = SelfUpdateHandle::new(enabled, env!("CARGO_PKG_VERSION"), Some(path.clone()));
        if enabled {
            let mut cfg = SelfUpdateConfig::for_this_build(
                self.self_update_forge_url.clone(),
                Duration::from_secs(interval_secs),
            )?;
            cfg.installer = self.self_update_installer.clone();
            cfg.status_path = Some(path);
            if let Err(e) = spawn(cfg, handle.clone()) {
                tracing::error!(target: "heph::selfupdate", "cannot start the self-update thread: {e}");
            }
        }
        Ok(handle)
    }
}

#[cfg(test)]
mod tests;

/// Runs a short command (no shell) and returns its trimmed stdout; used by `heph daemon status`.
pub(crate) fn run_for_status(argv: &[String], timeout: Duration) -> Result<String, CommandError> {
    command::run(argv, &[], timeout).map(|o| o.stdout.trim().to_owned())
}
