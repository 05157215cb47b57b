//! The supervisor for Linux without systemd: one background process that keeps `hephd` running, with pid files.
//!
//! `heph daemon start` writes the rendered [`ServiceSpec`] as JSON and starts `heph daemon supervise --spec FILE`
//! detached in its own process group. The supervisor records its pid, runs `hephd` with exactly the spec's
//! arguments and environment (stdout/stderr appended to the spec's logs), and restarts it with backoff when it
//! exits (a self-update exits on purpose). `heph daemon stop` removes the supervisor's pid file; the supervisor
//! sees that within a fraction of a second, stops `hephd` (SIGTERM, then SIGKILL after 10 s) and exits.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::ServiceError;
use super::backend::{Context, RunState};
use super::render::ServiceSpec;

const POLL: Duration = Duration::from_millis(100);

/// The supervisor's files for one label (in `~/.local/state/heph`).
#[derive(Debug, Clone)]
pub struct Paths {
    /// The rendered spec (JSON).
    pub spec: PathBuf,
    /// The supervisor's pid.
    pub supervisor_pid: PathBuf,
    /// The running `hephd`'s pid.
    pub child_pid: PathBuf,
}

impl Paths {
    /// The paths for `spec`'s label.
    pub fn new(ctx: &Context, spec: &ServiceSpec) -> Paths {
        let dir = ctx.home.join(".local/state/heph");
        Paths {
            spec: dir.join(format!("{}.service.json", spec.label)),
            supervisor_pid: dir.join(format!("{}.supervisor.pid", spec.label)),
            child_pid: dir.join(format!("{}.pid", spec.label)),
        }
    }

    fn for_spec_file(spec_file: &Path, label: &str) -> Paths {
        let dir = spec_file.parent().unwrap_or_else(|| Path::new("."));
        Paths {
            spec: spec_file.to_path_buf(),
            supervisor_pid: dir.join(format!("{label}.supervisor.pid")),
            child_pid: dir.join(format!("{label}.pid")),
        }
    }
}

/// Whether `pid` names a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(p).is_err() {
        return false;
    }
    // A zombie still answers kill(0); /proc shows its state as Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z"),
        Err(_) => true,
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn signal(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// The supervisor's view of the service.
pub fn state(ctx: &Context, spec: &ServiceSpec, installed: bool) -> RunState {
    let paths = Paths::new(ctx, spec);
    let sup = read_pid(&paths.supervisor_pid).filter(|p| alive(*p));
    let child = read_pid(&paths.child_pid).filter(|p| alive(*p));
    let detail = match (sup, child) {
        (Some(s), Some(c)) => format!("supervisor pid {s}, hephd pid {c}"),
        (Some(s), None) => format!(
            "supervisor pid {s}, hephd not running (restarting; see {})",
            spec.stderr_log.display()
        ),
        (None, Some(c)) => format!("hephd pid {c} without a supervisor"),
        (None, None) => "not running".to_owned(),
    };
    RunState {
        installed,
        running: sup.is_some() && child.is_some(),
        pid: child,
        detail,
    }
}

/// Starts `heph daemon supervise` detached and waits (up to 10 s) until `hephd` runs under it.
pub fn start(ctx: &Context, spec: &ServiceSpec) -> Result<(), ServiceError> {
    use std::os::unix::process::CommandExt;
    let paths = Paths::new(ctx, spec);
    if let Some(pid) = read_pid(&paths.supervisor_pid).filter(|p| alive(*p)) {
        return Err(ServiceError::Command {
            command: "heph daemon start".to_owned(),
            detail: format!("a supervisor already runs (pid {pid}); use `heph daemon restart`"),
        });
    }
    if let Some(dir) = spec.stderr_log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ServiceError::io("creating", dir, e))?;
    }
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.stderr_log)
        .map_err(|e| ServiceError::io("opening", &spec.stderr_log, e))?;
    let mut child = Command::new(&ctx.heph_exe)
        .arg("daemon")
        .arg("supervise")
        .arg("--spec")
        .arg(&paths.spec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .current_dir(&spec.working_dir)
        .process_group(0)
        .spawn()
        .map_err(|e| ServiceError::Command {
            command: format!("{} daemon supervise", ctx.heph_exe.display()),
            detail: e.to_string(),
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ServiceError::Command {
                command: format!("{} daemon supervise", ctx.heph_exe.display()),
                detail: format!(
                    "exited at once with {status}; see {}",
                    spec.stderr_log.display()
                ),
            });
        }
        let st = state(ctx, spec, true);
        if st.running {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(ServiceError::Command {
        command: format!("{} daemon supervise", ctx.heph_exe.display()),
        detail: format!(
            "hephd did not start within 10 s; see {}",
            spec.stderr_log.display()
        ),
    })
}

/// Asks the supervisor to stop (removes its pid file) and waits for it and `hephd` to exit (SIGKILL after 15 s).
pub fn stop(ctx: &Context, spec: &ServiceSpec) -> Result<(), ServiceError> {
    let paths = Paths::new(ctx, spec);
    let sup = read_pid(&paths.supervisor_pid);
    let _ = std::fs::remove_file(&paths.supervisor_pid);
    let child = read_pid(&paths.child_pid);
    let deadline = Instant::now() + Duration::from_secs(15);
    if let Some(s) = sup.filter(|p| alive(*p)) {
        while alive(s) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if alive(s) {
            signal(s, Signal::KILL);
            if let Some(c) = child {
                signal(c, Signal::KILL);
            }
            return Err(ServiceError::StopTimeout { pid: s, secs: 15 });
        }
    } else if let Some(c) = child.filter(|p| alive(*p)) {
        // hephd without its supervisor (the supervisor was killed): stop it directly.
        signal(c, Signal::TERM);
        while alive(c) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if alive(c) {
            signal(c, Signal::KILL);
        }
    }
    let _ = std::fs::remove_file(&paths.child_pid);
    Ok(())
}

fn log_line(spec: &ServiceSpec, msg: &str) {
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.stderr_log)
    {
        let _ = writeln!(f, "heph-supervisor[{}]: {msg}", std::process::id());
    }
}

fn spawn_child(spec: &ServiceSpec) -> std::io::Result<Child> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.stdout_log)?;
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.stderr_log)?;
    Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
}

fn stop_child(child: &mut Child) {
    let pid = i32::try_from(child.id()).unwrap_or(0);
    signal(pid, Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the supervisor loop (`heph daemon supervise --spec FILE`) until its pid file is removed.
pub fn supervise(spec_file: &Path) -> Result<(), ServiceError> {
    let text = std::fs::read_to_string(spec_file)
        .map_err(|e| ServiceError::io("reading", spec_file, e))?;
    let spec: ServiceSpec = serde_json::from_str(&text).map_err(|e| ServiceError::Command {
        command: "heph daemon supervise".to_owned(),
        detail: format!("{} is not a service spec: {e}", spec_file.display()),
    })?;
    let paths = Paths::for_spec_file(spec_file, &spec.label);
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    if let Some(pid) = read_pid(&paths.supervisor_pid).filter(|p| *p != me && alive(*p)) {
        return Err(ServiceError::Command {
            command: "heph daemon supervise".to_owned(),
            detail: format!("another supervisor runs (pid {pid})"),
        });
    }
    super::write_atomic(&paths.supervisor_pid, format!("{me}\n").as_bytes())?;
    let still_wanted = || read_pid(&paths.supervisor_pid) == Some(me);
    let mut backoff = Duration::from_secs(1);
    while still_wanted() {
        let started = Instant::now();
        let mut child = match spawn_child(&spec) {
            Ok(c) => c,
            Err(e) => {
                log_line(
                    &spec,
                    &format!(
                        "cannot start {}: {e}; retrying in {} s",
                        spec.program.display(),
                        backoff.as_secs()
                    ),
                );
                wait_while(&still_wanted, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let _ = super::write_atomic(&paths.child_pid, format!("{}\n", child.id()).as_bytes());
        log_line(
            &spec,
            &format!("started {} (pid {})", spec.program.display(), child.id()),
        );
        let status = loop {
            if !still_wanted() {
                stop_child(&mut child);
                let _ = std::fs::remove_file(&paths.child_pid);
                log_line(&spec, "stopped");
                return Ok(());
            }
            match child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => break e.to_string(),
            }
        };
        let _ = std::fs::remove_file(&paths.child_pid);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        log_line(
            &spec,
            &format!(
                "hephd exited ({status}); restarting in {} s",
                backoff.as_secs()
            ),
        );
        wait_while(&still_wanted, backoff);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    Ok(())
}

fn wait_while(still_wanted: &dyn Fn() -> bool, d: Duration) {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline && still_wanted() {
        std::thread::sleep(POLL);
    }
}
