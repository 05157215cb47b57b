//! The daemon's config file (`~/.config/heph/config.toml`, or `HEPH_CONFIG`): strict parsing and validation.
//!
//! Unknown keys are errors (a typo must never silently drop a flag), and every value is checked before
//! anything is rendered or started. Each top-level key mirrors one `hephd` flag; see `docs/operations.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default forge the self-updater polls: the workspace's `repository` (a test keeps them equal).
pub const DEFAULT_FORGE_URL: &str = "https://forge.eblu.me/eblume/hephaestus";
/// The default self-update poll interval.
pub const DEFAULT_SELF_UPDATE_INTERVAL_SECS: u64 = 600;

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file does not exist.
    #[error(
        "config file {path} does not exist; create it (see docs/operations.md) or point HEPH_CONFIG at one"
    )]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and position).
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("config file {path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key (dotted for tables, e.g. `self_update.interval_secs`).
        key: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
}

/// Which kind of daemon the config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A spoke on a device (`hephd --mode local`).
    #[default]
    Local,
    /// The hub (`hephd --mode server`).
    Server,
}

impl Mode {
    /// The value of `hephd --mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Server => "server",
        }
    }
}

/// Which service manager runs the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// launchd on macOS, systemd where a user manager runs, else the supervisor.
    #[default]
    Auto,
    /// A LaunchAgent (macOS).
    Launchd,
    /// A systemd user unit (Linux).
    Systemd,
    /// A background supervisor process with a pid file (Linux without systemd).
    Supervisor,
}

/// The whole config file. Every top-level key mirrors one `hephd` flag.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `--mode`: `local` (a spoke, the default) or `server` (the hub).
    #[serde(default)]
    pub mode: Mode,
    /// The `hephd` binary to run; default `~/.cargo/bin/hephd`.
    pub hephd: Option<PathBuf>,
    /// `--data-dir` (local mode): holds `heph.db`, `hephd.sock`, `hephd.lock`; default `~/.local/share/heph`.
    pub data_dir: Option<PathBuf>,
    /// `--db` (server mode): the hub's database path; its embedded store lives beside it.
    pub db: Option<PathBuf>,
    /// `--socket`: the local RPC socket; default `<data_dir>/hephd.sock` (local mode), none (server mode).
    pub socket: Option<PathBuf>,
    /// `--ca-file` (local mode): an extra CA certificate (PEM) trusted for the hub and the IdP.
    pub ca_file: Option<PathBuf>,
    /// `--hub-url` (local mode): the hub to sync with.
    pub hub_url: Option<String>,
    /// `--owner-id` (local mode): join this owner instead of minting one on first start.
    pub owner_id: Option<String>,
    /// `--oidc-issuer`.
    pub oidc_issuer: Option<String>,
    /// `--oidc-client-id` (the spoke's client; on the hub, what `/config` reports).
    pub oidc_client_id: Option<String>,
    /// `--oidc-audience` (server mode).
    pub oidc_audience: Option<String>,
    /// `--authorized-sub`, repeated (server mode).
    #[serde(default)]
    pub authorized_sub: Vec<String>,
    /// `--required-group` (server mode): a group claim every caller must have.
    pub required_group: Option<String>,
    /// `--http-addr` (server mode), e.g. `0.0.0.0:8787`.
    pub http_addr: Option<String>,
    /// `--web-root` (server mode): the PWA's files.
    pub web_root: Option<PathBuf>,
    /// `--store` (server mode): segment store URL (`file:///…` or `s3://bucket/prefix`).
    pub store: Option<String>,
    /// `--s3-endpoint` (server mode), e.g. `http://127.0.0.1:8333`. Keys go in `[service.env]`
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), never on the command line.
    pub s3_endpoint: Option<String>,
    /// `--s3-region` (server mode).
    pub s3_region: Option<String>,
    /// `--token-file` (local mode).
    pub token_file: Option<PathBuf>,
    /// `--token-load-cmd` (local mode): a command line run without a shell that prints the token.
    pub token_load_cmd: Option<String>,
    /// `--token-save-cmd` (local mode): a command line run without a shell that stores a token from stdin.
    pub token_save_cmd: Option<String>,
    /// More arguments appended verbatim after all the above.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// `[self_update]`.
    #[serde(default)]
    pub self_update: SelfUpdateSection,
    /// `[service]`.
    #[serde(default)]
    pub service: ServiceSection,
}

/// `[self_update]`: the daemon's `--self-update*` flags. Off unless `enabled = true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfUpdateSection {
    /// `--self-update`.
    #[serde(default)]
    pub enabled: bool,
    /// `--self-update-interval-secs` (60 ..= 604800).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// `--self-update-forge-url`: the git repository whose release tags are polled.
    pub forge_url: Option<String>,
    /// `--self-update-installer`: the install command line (run without a shell; `{url}` and `{tag}` are replaced).
    pub installer: Option<String>,
}

fn default_interval() -> u64 {
    DEFAULT_SELF_UPDATE_INTERVAL_SECS
}

impl Default for SelfUpdateSection {
    fn default() -> Self {
        SelfUpdateSection {
            enabled: false,
            interval_secs: DEFAULT_SELF_UPDATE_INTERVAL_SECS,
            forge_url: None,
            installer: None,
        }
    }
}

/// `[service]`: how the daemon is registered with the service manager.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// launchd label / systemd unit base name; default `heph.spoke` (local) or `heph.hub` (server).
    pub label: Option<String>,
    /// `auto` (default), `launchd`, `systemd` or `supervisor`.
    #[serde(default)]
    pub backend: BackendKind,
    /// Directory for stdout/stderr logs; default `~/Library/Logs` (macOS) or `~/.local/state/heph` (Linux).
    pub log_dir: Option<PathBuf>,
    /// Extra `PATH` entries, placed before `~/.cargo/bin` and the system directories.
    #[serde(default)]
    pub path: Vec<PathBuf>,
    /// Extra environment variables for the daemon (`RUSTUP_TOOLCHAIN`, `PATH` and `HOME` are always set).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Where the config file is: `HEPH_CONFIG` if set, else `$XDG_CONFIG_HOME/heph/config.toml`, else
/// `~/.config/heph/config.toml`.
pub fn default_path(
    heph_config: Option<&Path>,
    xdg_config_home: Option<&Path>,
    home: &Path,
) -> PathBuf {
    if let Some(p) = heph_config {
        return p.to_path_buf();
    }
    match xdg_config_home {
        Some(x) if x.is_absolute() => x.join("heph").join("config.toml"),
        _ => home.join(".config").join("heph").join("config.toml"),
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                let src = text.lines().nth(line - 1).unwrap_or("").trim();
                format!("line {line}, column {col} (`{src}`): ")
            });
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("{}{}", at.unwrap_or_default(), e.message().trim_end()),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Renders this config back as TOML (for `heph daemon status` and tests).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every value; the first problem is returned.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_owned(),
            message,
        };
        for (key, value) in [
            ("hephd", &self.hephd),
            ("data_dir", &self.data_dir),
            ("db", &self.db),
            ("socket", &self.socket),
            ("web_root", &self.web_root),
            ("ca_file", &self.ca_file),
            ("token_file", &self.token_file),
            ("service.log_dir", &self.service.log_dir),
        ] {
            if let Some(p) = value {
                check_path(p).map_err(|m| bad(key, m))?;
            }
        }
        for p in &self.service.path {
            check_path(p).map_err(|m| bad("service.path", m))?;
        }
        for (key, value) in [
            ("hub_url", &self.hub_url),
            ("oidc_issuer", &self.oidc_issuer),
            ("s3_endpoint", &self.s3_endpoint),
        ] {
            if let Some(u) = value {
                check_http_url(u).map_err(|m| bad(key, m))?;
            }
        }
        if let Some(u) = &self.self_update.forge_url {
            check_forge_url(u).map_err(|m| bad("self_update.forge_url", m))?;
        }
        if let Some(id) = &self.owner_id {
            id.parse::<heph_format::OwnerId>().map_err(|e| {
                bad(
                    "owner_id",
                    format!("{e}; expected a 26-character Crockford base32 ULID"),
                )
            })?;
        }
        for (key, value) in [
            ("oidc_client_id", &self.oidc_client_id),
            ("oidc_audience", &self.oidc_audience),
            ("token_load_cmd", &self.token_load_cmd),
            ("token_save_cmd", &self.token_save_cmd),
            ("store", &self.store),
            ("required_group", &self.required_group),
            ("s3_region", &self.s3_region),
            ("self_update.installer", &self.self_update.installer),
        ] {
            if let Some(v) = value {
                check_nonblank(v).map_err(|m| bad(key, m))?;
            }
        }
        for s in &self.authorized_sub {
            check_nonblank(s).map_err(|m| bad("authorized_sub", m))?;
        }
        if let Some(addr) = &self.http_addr {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                bad(
                    "http_addr",
                    format!("{addr:?} is not IP:PORT (e.g. \"127.0.0.1:8787\")"),
                )
            })?;
        }
        if let Some(installer) = &self.self_update.installer {
            crate::selfupdate::split_command(installer)
                .map_err(|e| bad("self_update.installer", e.to_string()))?;
        }
        let interval = self.self_update.interval_secs;
        if !(60..=604_800).contains(&interval) {
            return Err(bad(
                "self_update.interval_secs",
                format!("{interval} is out of range; use 60 ..= 604800 seconds"),
            ));
        }
        if let Some(label) = &self.service.label {
            let ok = !label.is_empty()
                && label.len() <= 128
                && !label.starts_with(['.', '-'])
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !ok {
                return Err(bad(
                    "service.label",
                    format!(
                        "{label:?} must be 1-128 of A-Z a-z 0-9 . - _ and not start with . or -"
                    ),
                ));
            }
        }
        for (k, v) in &self.service.env {
            let ok = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(bad(
                    "service.env",
                    format!("{k:?} is not a valid environment variable name"),
                ));
            }
            if matches!(k.as_str(), "PATH" | "HOME" | "RUSTUP_TOOLCHAIN") {
                return Err(bad(
                    "service.env",
                    format!("{k} is always set by heph daemon; use service.path for PATH entries"),
                ));
            }
            if v.contains(['\n', '\0']) {
                return Err(bad(
                    "service.env",
                    format!("the value of {k} contains a newline or NUL"),
                ));
            }
        }
        for a in &self.extra_args {
            if a.contains(['\n', '\0']) {
                return Err(bad(
                    "extra_args",
                    format!("{a:?} contains a newline or NUL"),
                ));
            }
        }
        match self.mode {
            Mode::Local => {
                for (key, set) in [
                    ("db", self.db.is_some()),
                    ("oidc_audience", self.oidc_audience.is_some()),
                    ("authorized_sub", !self.authorized_sub.is_empty()),
                    ("required_group", self.required_group.is_some()),
                    ("http_addr", self.http_addr.is_some()),
                    ("web_root", self.web_root.is_some()),
                    ("store", self.store.is_some()),
                    ("s3_endpoint", self.s3_endpoint.is_some()),
                    ("s3_region", self.s3_region.is_some()),
                ] {
                    if set {
                        return Err(bad(
                            key,
                            "only applies to mode = \"server\" (the hub)".to_owned(),
                        ));
                    }
                }
            }
            Mode::Server => {
                for (key, set) in [
                    ("hub_url", self.hub_url.is_some()),
                    ("data_dir", self.data_dir.is_some()),
                    ("ca_file", self.ca_file.is_some()),
                    ("token_file", self.token_file.is_some()),
                    ("token_load_cmd", self.token_load_cmd.is_some()),
                    ("token_save_cmd", self.token_save_cmd.is_some()),
                ] {
                    if set {
                        return Err(bad(
                            key,
                            "only applies to mode = \"local\" (a spoke)".to_owned(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The data directory, with `~` expanded.
    pub fn data_dir(&self, home: &Path) -> PathBuf {
        self.data_dir
            .as_deref()
            .map_or_else(|| home.join(".local/share/heph"), |p| expand(p, home))
    }

    /// The store (local: `<data_dir>/heph.db`; server: `db`, default `~/.local/share/heph/heph.db`).
    pub fn db(&self, home: &Path) -> PathBuf {
        match (self.mode, &self.db) {
            (Mode::Server, Some(p)) => expand(p, home),
            _ => self.data_dir(home).join("heph.db"),
        }
    }

    /// The socket, with `~` expanded.
    pub fn socket(&self, home: &Path) -> PathBuf {
        self.socket.as_deref().map_or_else(
            || self.data_dir(home).join("hephd.sock"),
            |p| expand(p, home),
        )
    }

    /// The `hephd` binary, with `~` expanded.
    pub fn hephd(&self, home: &Path) -> PathBuf {
        self.hephd
            .as_deref()
            .map_or_else(|| home.join(".cargo/bin/hephd"), |p| expand(p, home))
    }

    /// Where the self-updater records its status (`<data_dir>/self-update.json`).
    pub fn self_update_status_path(&self, home: &Path) -> PathBuf {
        crate::selfupdate::status_path_for_db(&self.db(home))
    }

    /// The service label.
    pub fn label(&self) -> String {
        self.service
            .label
            .clone()
            .unwrap_or_else(|| match self.mode {
                Mode::Local => "heph.spoke".to_owned(),
                Mode::Server => "heph.hub".to_owned(),
            })
    }

    /// Every argument `hephd` gets, in a fixed order, with `~` expanded.
    pub fn hephd_args(&self, home: &Path) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let path = |p: &Path| expand(p, home).to_string_lossy().into_owned();
        let mut push = |flag: &str, value: String| {
            a.push(flag.to_owned());
            a.push(value);
        };
        push("--mode", self.mode.as_str().to_owned());
        match self.mode {
            Mode::Local => {
                push(
                    "--data-dir",
                    self.data_dir(home).to_string_lossy().into_owned(),
                );
                push("--socket", self.socket(home).to_string_lossy().into_owned());
            }
            Mode::Server => {
                push("--db", self.db(home).to_string_lossy().into_owned());
                if let Some(v) = &self.socket {
                    push("--socket", path(v));
                }
            }
        }
        if let Some(v) = &self.http_addr {
            push("--http-addr", v.clone());
        }
        if let Some(v) = &self.web_root {
            push("--web-root", path(v));
        }
        if let Some(v) = &self.store {
            push("--store", v.clone());
        }
        if let Some(v) = &self.s3_endpoint {
            push("--s3-endpoint", v.clone());
        }
        if let Some(v) = &self.s3_region {
            push("--s3-region", v.clone());
        }
        if let Some(v) = &self.hub_url {
            push("--hub-url", v.clone());
        }
        if let Some(v) = &self.ca_file {
            push("--ca-file", path(v));
        }
        if let Some(v) = &self.owner_id {
            push("--owner-id", v.clone());
        }
        if let Some(v) = &self.oidc_issuer {
            push("--oidc-issuer", v.clone());
        }
        if let Some(v) = &self.oidc_client_id {
            push("--oidc-client-id", v.clone());
        }
        if let Some(v) = &self.oidc_audience {
            push("--oidc-audience", v.clone());
        }
        for s in &self.authorized_sub {
            push("--authorized-sub", s.clone());
        }
        if let Some(v) = &self.required_group {
            push("--required-group", v.clone());
        }
        if let Some(v) = &self.token_file {
            push("--token-file", path(v));
        }
        if let Some(v) = &self.token_load_cmd {
            push("--token-load-cmd", v.clone());
        }
        if let Some(v) = &self.token_save_cmd {
            push("--token-save-cmd", v.clone());
        }
        if self.self_update.enabled {
            a.push("--self-update".to_owned());
            a.push("--self-update-interval-secs".to_owned());
            a.push(self.self_update.interval_secs.to_string());
            if let Some(v) = &self.self_update.forge_url {
                a.push("--self-update-forge-url".to_owned());
                a.push(v.clone());
            }
            if let Some(v) = &self.self_update.installer {
                a.push("--self-update-installer".to_owned());
                a.push(v.clone());
            }
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// Expands a leading `~/` (or a lone `~`) to `home`.
pub fn expand(p: &Path, home: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_path_buf(),
    }
}

fn check_path(p: &Path) -> Result<(), String> {
    let s = p.to_string_lossy();
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.contains(['\n', '\0']) {
        return Err(format!("{s:?} contains a newline or NUL"));
    }
    if !(p.is_absolute() || p.starts_with("~")) {
        return Err(format!("{s:?} must be absolute or start with ~/"));
    }
    if s.starts_with('~') && !(s == "~" || s.starts_with("~/")) {
        return Err(format!("{s:?}: only ~/ (your own home) is expanded"));
    }
    Ok(())
}

fn check_nonblank(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err("is empty".to_owned())
    } else if v.contains(['\n', '\0']) {
        Err(format!("{v:?} contains a newline or NUL"))
    } else {
        Ok(())
    }
}

fn check_http_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} must start with https:// or http://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) || u.contains(['\n', '\0']) {
        return Err(format!("{u:?} has no valid host"));
    }
    Ok(())
}

fn check_forge_url(u: &str) -> Result<(), String> {
    if u.trim().is_empty() || u.contains(char::is_whitespace) || u.starts_with('-') {
        return Err(format!("{u:?} is not a git repository URL or path"));
    }
    Ok(())
}
