//! Renders the config as a service definition: a [`ServiceSpec`], then a launchd plist or a systemd user unit.
//!
//! Rendering is pure (no I/O): the same config and home directory always give the same bytes, and every
//! flag [`Config::hephd_args`] produces appears in the output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{Config, Mode};

/// The operating system a service is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Os {
    /// macOS: launchd, logs in `~/Library/Logs`.
    MacOs,
    /// Linux: systemd or the supervisor, logs in `~/.local/state/heph`.
    Linux,
}

impl Os {
    /// The OS this binary was built for (anything but macOS is treated as Linux).
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else {
            Os::Linux
        }
    }
}

/// Everything a service manager needs to run the daemon: what [`render_plist`] and [`render_systemd`] print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// launchd label / systemd unit base name.
    pub label: String,
    /// One line describing the service.
    pub description: String,
    /// The `hephd` binary (absolute).
    pub program: PathBuf,
    /// Its arguments (without the program).
    pub args: Vec<String>,
    /// The complete environment (`PATH`, `HOME`, `RUSTUP_TOOLCHAIN` and the config's extras).
    pub env: BTreeMap<String, String>,
    /// Working directory (the home directory).
    pub working_dir: PathBuf,
    /// Where stdout goes (launchd and the supervisor; systemd uses the journal).
    pub stdout_log: PathBuf,
    /// Where stderr goes (launchd and the supervisor; systemd uses the journal).
    pub stderr_log: PathBuf,
    /// The config file this was rendered from.
    pub config_path: PathBuf,
}

/// The `PATH` the daemon runs with: the config's extra entries, `~/.cargo/bin`, then the system directories.
pub fn service_path(extra: &[PathBuf], home: &Path, os: Os) -> String {
    let mut parts: Vec<String> = extra
        .iter()
        .map(|p| {
            super::config::expand(p, home)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    parts.push(home.join(".cargo/bin").to_string_lossy().into_owned());
    if os == Os::MacOs {
        parts.push("/opt/homebrew/bin".to_owned());
    }
    parts.extend(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(str::to_owned));
    parts.join(":")
}

/// The directory logs go to by default.
pub fn default_log_dir(home: &Path, os: Os) -> PathBuf {
    match os {
        Os::MacOs => home.join("Library/Logs"),
        Os::Linux => home.join(".local/state/heph"),
    }
}

impl ServiceSpec {
    /// Builds the spec from a validated config.
    pub fn from_config(config: &Config, config_path: &Path, home: &Path, os: Os) -> ServiceSpec {
        let label = config.label();
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_owned(),
            service_path(&config.service.path, home, os),
        );
        env.insert("HOME".to_owned(), home.to_string_lossy().into_owned());
        env.insert("RUSTUP_TOOLCHAIN".to_owned(), "stable".to_owned());
        for (k, v) in &config.service.env {
            env.insert(k.clone(), v.clone());
        }
        let log_dir = config.service.log_dir.as_deref().map_or_else(
            || default_log_dir(home, os),
            |p| super::config::expand(p, home),
        );
        let description = match config.mode {
            Mode::Local => "hephaestus spoke (hephd --mode local)",
            Mode::Server => "hephaestus hub (hephd --mode server)",
        };
        ServiceSpec {
            stdout_log: log_dir.join(format!("{label}.out.log")),
            stderr_log: log_dir.join(format!("{label}.err.log")),
            label,
            description: description.to_owned(),
            program: config.hephd(home),
            args: config.hephd_args(home),
            env,
            working_dir: home.to_path_buf(),
            config_path: config_path.to_path_buf(),
        }
    }
}

/// Renders a LaunchAgent plist (XML): `RunAtLoad`, `KeepAlive`, the environment and both logs.
pub fn render_plist(spec: &ServiceSpec) -> String {
    use plist::{Dictionary, Value};
    let mut d = Dictionary::new();
    d.insert("Label".into(), Value::String(spec.label.clone()));
    let mut argv = vec![Value::String(spec.program.to_string_lossy().into_owned())];
    argv.extend(spec.args.iter().cloned().map(Value::String));
    d.insert("ProgramArguments".into(), Value::Array(argv));
    let mut env = Dictionary::new();
    for (k, v) in &spec.env {
        env.insert(k.clone(), Value::String(v.clone()));
    }
    d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    d.insert(
        "WorkingDirectory".into(),
        Value::String(spec.working_dir.to_string_lossy().into_owned()),
    );
    d.insert("RunAtLoad".into(), Value::Boolean(true));
    d.insert("KeepAlive".into(), Value::Boolean(true));
    d.insert("ThrottleInterval".into(), Value::Integer(10.into()));
    d.insert("ProcessType".into(), Value::String("Background".into()));
    d.insert(
        "StandardOutPath".into(),
        Value::String(spec.stdout_log.to_string_lossy().into_owned()),
    );
    d.insert(
        "StandardErrorPath".into(),
        Value::String(spec.stderr_log.to_string_lossy().into_owned()),
    );
    let mut out = Vec::new();
    // Writing a Value built from strings, booleans and integers into a Vec cannot fail.
    let _ = Value::Dictionary(d).to_writer_xml(&mut out);
    out.push(b'\n');
    String::from_utf8_lossy(&out).into_owned()
}

/// Quotes one word for a systemd `ExecStart=`/`Environment=` line: double quotes, `\` and `"` escaped,
/// `%` doubled (no specifier expansion) and `$` doubled (no variable expansion).
pub fn systemd_quote(word: &str) -> String {
    let mut s = String::with_capacity(word.len() + 2);
    s.push('"');
    for c in word.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '%' => s.push_str("%%"),
            '$' => s.push_str("$$"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Renders a systemd user unit: restart always, the environment, logs in the user journal.
pub fn render_systemd(spec: &ServiceSpec) -> String {
    let mut u = String::new();
    u.push_str(&format!(
        "# Rendered by `heph daemon` from {}.\n# Edit that file and run `heph daemon restart`; changes made here are overwritten.\n",
        spec.config_path.display()
    ));
    u.push_str("[Unit]\n");
    u.push_str(&format!("Description={}\n", spec.description));
    u.push_str(&format!(
        "Documentation={}/src/branch/main/docs/operations.md\n\n",
        super::config::DEFAULT_FORGE_URL
    ));
    u.push_str("[Service]\nType=simple\n");
    let mut exec = systemd_quote(&spec.program.to_string_lossy());
    for a in &spec.args {
        exec.push(' ');
        exec.push_str(&systemd_quote(a));
    }
    u.push_str(&format!("ExecStart={exec}\n"));
    for (k, v) in &spec.env {
        u.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{k}={v}"))
        ));
    }
    // WorkingDirectory= takes the rest of the line as the path (no quotes); only specifiers need escaping.
    u.push_str(&format!(
        "WorkingDirectory={}\n",
        spec.working_dir.to_string_lossy().replace('%', "%%")
    ));
    u.push_str("Restart=always\nRestartSec=5\n");
    u.push_str("StandardOutput=journal\nStandardError=journal\n");
    u.push_str(&format!("SyslogIdentifier={}\n\n", spec.label));
    u.push_str("[Install]\nWantedBy=default.target\n");
    u
}
