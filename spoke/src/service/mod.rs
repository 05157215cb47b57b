//! Daemon management: the config file, LaunchAgent/systemd rendering, a pid-file supervisor, and `heph daemon …`.
//!
//! Everything the daemon runs with comes from one config file (`~/.config/heph/config.toml`, or `HEPH_CONFIG`),
//! parsed strictly ([`config`]). [`render`] turns it into a [`render::ServiceSpec`] (program, every flag, environment,
//! logs) and renders that as a launchd plist or a systemd user unit. [`backend`] installs, starts, stops and
//! queries the service through `launchctl`, `systemctl --user`, or — on Linux without systemd — the
//! [`supervisor`], which keeps one background `hephd` running with a pid file. `start` and `restart` always
//! re-render from the config first, so no flag is ever dropped. [`cli`] is the `heph daemon` subcommand.

pub mod backend;
pub mod cli;
pub mod config;
pub mod render;
pub mod status;
pub mod supervisor;

use std::path::PathBuf;

pub use config::{Config, ConfigError, Mode};
pub use render::ServiceSpec;

/// What went wrong managing the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The config file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "writing".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A service-manager command (`launchctl`, `systemctl`) could not be run or failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line that was run.
        command: String,
        /// Its exit status and the tail of its stderr, or why it could not start.
        detail: String,
    },
    /// `HOME` is not set, so no default path can be resolved.
    #[error("HOME is not set; set it or give every path in the config file explicitly")]
    NoHome,
    /// The daemon is not installed (no unit/plist, nothing to start or stop).
    #[error("the daemon is not installed ({path} does not exist); run `heph daemon install` first")]
    NotInstalled {
        /// Where the unit or plist was expected.
        path: PathBuf,
    },
    /// The supervisor did not stop within its deadline.
    #[error("the supervisor (pid {pid}) did not stop within {secs} s")]
    StopTimeout {
        /// The supervisor's pid.
        pid: i32,
        /// How long we waited.
        secs: u64,
    },
}

impl ServiceError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ServiceError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename), creating parents.
pub(crate) fn write_atomic(path: &std::path::Path, contents: &[u8]) -> Result<(), ServiceError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ServiceError::io("creating", dir, e))?;
    let file_name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ServiceError::io("writing", path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
