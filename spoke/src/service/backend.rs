//! Service managers: launchd (`launchctl`), systemd (`systemctl --user`) and the pid-file supervisor.
//!
//! Every operation that starts the daemon writes a freshly rendered unit/plist first, so what runs is always
//! what the config says.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ServiceError;
use super::config::{BackendKind, Config};
use super::render::{Os, ServiceSpec, render_plist, render_systemd};
use super::supervisor;

/// Where `heph daemon` runs: the home directory, config file, OS and the service-manager programs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The user's home directory.
    pub home: PathBuf,
    /// The config file.
    pub config_path: PathBuf,
    /// The OS to render for.
    pub os: Os,
    /// The `launchctl` program.
    pub launchctl: PathBuf,
    /// The `systemctl` program.
    pub systemctl: PathBuf,
    /// The `heph` binary (runs `heph daemon supervise` for the supervisor backend).
    pub heph_exe: PathBuf,
    /// The user id (for launchd's `gui/UID` domain).
    pub uid: u32,
}

impl Context {
    /// The context of this process: `HOME`, `HEPH_CONFIG`/`XDG_CONFIG_HOME`, the current executable.
    pub fn from_env(config_override: Option<&Path>) -> Result<Context, ServiceError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or(ServiceError::NoHome)?;
        let heph_config = std::env::var_os("HEPH_CONFIG")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let config_path = super::config::default_path(
            config_override.or(heph_config.as_deref()),
            xdg.as_deref(),
            &home,
        );
        Ok(Context {
            home,
            config_path,
            os: Os::current(),
            launchctl: "launchctl".into(),
            systemctl: "systemctl".into(),
            heph_exe: std::env::current_exe().unwrap_or_else(|_| "heph".into()),
            uid: rustix::process::getuid().as_raw(),
        })
    }

    /// Loads the config file.
    pub fn load_config(&self) -> Result<Config, ServiceError> {
        Ok(Config::load(&self.config_path)?)
    }

    /// The spec the config renders to.
    pub fn spec(&self, config: &Config) -> ServiceSpec {
        ServiceSpec::from_config(config, &self.config_path, &self.home, self.os)
    }

    /// Which backend runs the daemon for this config.
    pub fn backend(&self, config: &Config) -> Backend {
        match config.service.backend {
            BackendKind::Launchd => Backend::Launchd,
            BackendKind::Systemd => Backend::Systemd,
            BackendKind::Supervisor => Backend::Supervisor,
            BackendKind::Auto => match self.os {
                Os::MacOs => Backend::Launchd,
                Os::Linux if self.systemd_user_available() => Backend::Systemd,
                Os::Linux => Backend::Supervisor,
            },
        }
    }

    fn systemd_user_available(&self) -> bool {
        Path::new("/run/systemd/system").is_dir()
            && Command::new(&self.systemctl)
                .args(["--user", "show-environment"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }
}

/// A service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A LaunchAgent.
    Launchd,
    /// A systemd user unit.
    Systemd,
    /// The pid-file supervisor.
    Supervisor,
}

/// Whether the daemon runs, as the service manager sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunState {
    /// The unit/plist/spec file exists.
    pub installed: bool,
    /// The service manager reports it running.
    pub running: bool,
    /// Its pid, when known.
    pub pid: Option<i32>,
    /// The service manager's own words (e.g. systemd's `ActiveState`).
    pub detail: String,
}

impl Backend {
    /// The name shown in `status`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Launchd => "launchd",
            Backend::Systemd => "systemd (user)",
            Backend::Supervisor => "supervisor (pid file)",
        }
    }

    /// Where the rendered definition lives.
    pub fn unit_path(self, ctx: &Context, spec: &ServiceSpec) -> PathBuf {
        match self {
            Backend::Launchd => ctx
                .home
                .join("Library/LaunchAgents")
                .join(format!("{}.plist", spec.label)),
            Backend::Systemd => ctx
                .home
                .join(".config/systemd/user")
                .join(format!("{}.service", spec.label)),
            Backend::Supervisor => supervisor::Paths::new(ctx, spec).spec,
        }
    }

    /// The rendered definition's bytes.
    pub fn render(self, spec: &ServiceSpec) -> String {
        match self {
            Backend::Launchd => render_plist(spec),
            Backend::Systemd => render_systemd(spec),
            Backend::Supervisor => serde_json::to_string_pretty(spec).unwrap_or_default() + "\n",
        }
    }

    /// Writes the freshly rendered definition (and creates the log directory). Returns its path.
    pub fn write(self, ctx: &Context, spec: &ServiceSpec) -> Result<PathBuf, ServiceError> {
        let path = self.unit_path(ctx, spec);
        super::write_atomic(&path, self.render(spec).as_bytes())?;
        if let Some(dir) = spec.stdout_log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ServiceError::io("creating", dir, e))?;
        }
        Ok(path)
    }

    /// Renders, writes, registers for start at login, and starts.
    pub fn install(self, ctx: &Context, spec: &ServiceSpec) -> Result<PathBuf, ServiceError> {
        let path = self.write(ctx, spec)?;
        match self {
            Backend::Launchd => {
                let _ = launchctl(ctx, &["bootout", &target(ctx, spec)]);
                launchctl(ctx, &["bootstrap", &domain(ctx), &path.to_string_lossy()])?;
            }
            Backend::Systemd => {
                systemctl(ctx, &["daemon-reload"])?;
                systemctl(ctx, &["enable", "--now", &unit(spec)])?;
            }
            Backend::Supervisor => {
                supervisor::start(ctx, spec)?;
            }
        }
        Ok(path)
    }

    /// Re-renders and starts (a no-op start if it already runs; the new definition applies at the next restart).
    pub fn start(self, ctx: &Context, spec: &ServiceSpec) -> Result<PathBuf, ServiceError> {
        let path = self.write(ctx, spec)?;
        match self {
            Backend::Launchd => {
                if !self.state(ctx, spec)?.running {
                    let _ = launchctl(ctx, &["bootout", &target(ctx, spec)]);
                    launchctl(ctx, &["bootstrap", &domain(ctx), &path.to_string_lossy()])?;
                }
            }
            Backend::Systemd => {
                systemctl(ctx, &["daemon-reload"])?;
                systemctl(ctx, &["start", &unit(spec)])?;
            }
            Backend::Supervisor => {
                if !self.state(ctx, spec)?.running {
                    supervisor::start(ctx, spec)?;
                }
            }
        }
        Ok(path)
    }

    /// Stops (launchd: unloads, so `KeepAlive` does not bring it back).
    pub fn stop(self, ctx: &Context, spec: &ServiceSpec) -> Result<(), ServiceError> {
        match self {
            Backend::Launchd => {
                if self.state(ctx, spec)?.running {
                    launchctl(ctx, &["bootout", &target(ctx, spec)])?;
                }
            }
            Backend::Systemd => {
                systemctl(ctx, &["stop", &unit(spec)])?;
            }
            Backend::Supervisor => supervisor::stop(ctx, spec)?,
        }
        Ok(())
    }

    /// Re-renders, then stops and starts, so the new definition is what runs.
    pub fn restart(self, ctx: &Context, spec: &ServiceSpec) -> Result<PathBuf, ServiceError> {
        let path = self.write(ctx, spec)?;
        match self {
            Backend::Launchd => {
                let _ = launchctl(ctx, &["bootout", &target(ctx, spec)]);
                launchctl(ctx, &["bootstrap", &domain(ctx), &path.to_string_lossy()])?;
            }
            Backend::Systemd => {
                systemctl(ctx, &["daemon-reload"])?;
                systemctl(ctx, &["restart", &unit(spec)])?;
            }
            Backend::Supervisor => {
                supervisor::stop(ctx, spec)?;
                supervisor::start(ctx, spec)?;
            }
        }
        Ok(path)
    }

    /// Stops, unregisters and removes the definition (logs and data stay).
    pub fn uninstall(self, ctx: &Context, spec: &ServiceSpec) -> Result<PathBuf, ServiceError> {
        let path = self.unit_path(ctx, spec);
        match self {
            Backend::Launchd => {
                let _ = launchctl(ctx, &["bootout", &target(ctx, spec)]);
            }
            Backend::Systemd => {
                if path.exists() {
                    systemctl(ctx, &["disable", "--now", &unit(spec)])?;
                }
            }
            Backend::Supervisor => supervisor::stop(ctx, spec)?,
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServiceError::io("removing", &path, e)),
        }
        if self == Backend::Systemd {
            systemctl(ctx, &["daemon-reload"])?;
        }
        Ok(path)
    }

    /// Asks the service manager whether it runs.
    pub fn state(self, ctx: &Context, spec: &ServiceSpec) -> Result<RunState, ServiceError> {
        let installed = self.unit_path(ctx, spec).exists();
        match self {
            Backend::Launchd => {
                let out = Command::new(&ctx.launchctl)
                    .args(["print", &target(ctx, spec)])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| cmd_err(&ctx.launchctl, &["print"], e.to_string()))?;
                if !out.status.success() {
                    return Ok(RunState {
                        installed,
                        running: false,
                        pid: None,
                        detail: "not loaded".to_owned(),
                    });
                }
                let text = String::from_utf8_lossy(&out.stdout);
                let field = |name: &str| {
                    text.lines().find_map(|l| {
                        let (k, v) = l.split_once('=')?;
                        (k.trim() == name).then(|| v.trim().to_owned())
                    })
                };
                let state = field("state").unwrap_or_else(|| "unknown".to_owned());
                let pid = field("pid").and_then(|p| p.parse().ok());
                Ok(RunState {
                    installed,
                    running: state == "running",
                    pid,
                    detail: format!("state = {state}"),
                })
            }
            Backend::Systemd => {
                let out = Command::new(&ctx.systemctl)
                    .args([
                        "--user",
                        "show",
                        &unit(spec),
                        "--property=ActiveState,SubState,MainPID",
                    ])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| cmd_err(&ctx.systemctl, &["--user", "show"], e.to_string()))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let field = |name: &str| {
                    text.lines().find_map(|l| {
                        l.strip_prefix(name)
                            .and_then(|r| r.strip_prefix('='))
                            .map(str::to_owned)
                    })
                };
                let active = field("ActiveState").unwrap_or_else(|| "unknown".to_owned());
                let sub = field("SubState").unwrap_or_default();
                let pid = field("MainPID")
                    .and_then(|p| p.parse().ok())
                    .filter(|p: &i32| *p > 0);
                Ok(RunState {
                    installed,
                    running: active == "active",
                    pid,
                    detail: format!("{active} ({sub})"),
                })
            }
            Backend::Supervisor => Ok(supervisor::state(ctx, spec, installed)),
        }
    }
}

fn domain(ctx: &Context) -> String {
    format!("gui/{}", ctx.uid)
}

fn target(ctx: &Context, spec: &ServiceSpec) -> String {
    format!("gui/{}/{}", ctx.uid, spec.label)
}

fn unit(spec: &ServiceSpec) -> String {
    format!("{}.service", spec.label)
}

fn cmd_err(program: &Path, args: &[&str], detail: String) -> ServiceError {
    ServiceError::Command {
        command: format!("{} {}", program.display(), args.join(" ")),
        detail,
    }
}

fn run(program: &Path, args: &[&str]) -> Result<(), ServiceError> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| cmd_err(program, args, e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(cmd_err(
        program,
        args,
        format!(
            "{}: {}",
            out.status,
            tail[tail.len().saturating_sub(3)..].join(" | ")
        ),
    ))
}

fn launchctl(ctx: &Context, args: &[&str]) -> Result<(), ServiceError> {
    run(&ctx.launchctl, args)
}

fn systemctl(ctx: &Context, args: &[&str]) -> Result<(), ServiceError> {
    let mut a = vec!["--user"];
    a.extend_from_slice(args);
    run(&ctx.systemctl, &a)
}
