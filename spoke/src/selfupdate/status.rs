//! The self-updater's status: persisted as JSON beside the store, shown by `heph daemon status` and `/healthz`,
//! and exported as Prometheus counters.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SelfUpdateError;

/// The step of a check that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Listing the forge's tags (unreachable forge, no semver tags).
    Forge,
    /// The toolchain preflight.
    Toolchain,
    /// The installer.
    Install,
    /// Checking the installed binary's version.
    Verify,
    /// The updater's own configuration.
    Config,
}

impl Stage {
    /// The label used in metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Forge => "forge",
            Stage::Toolchain => "toolchain",
            Stage::Install => "install",
            Stage::Verify => "verify",
            Stage::Config => "config",
        }
    }
}

/// What a successful check did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// No release above the running version.
    UpToDate {
        /// The newest tag the forge has, if any.
        latest: Option<String>,
    },
    /// A newer release was installed; a restart runs it.
    Updated {
        /// Its tag.
        tag: String,
        /// Its version.
        version: String,
    },
}

/// The last failure, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// When (Unix ms).
    pub at_ms: u64,
    /// Which step.
    pub stage: Stage,
    /// The full error message.
    pub message: String,
}

/// Everything known about the self-updater.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SelfUpdateStatus {
    /// Whether `--self-update` is on.
    pub enabled: bool,
    /// The version of the running daemon.
    pub running_version: String,
    /// When the last check finished (Unix ms).
    pub last_check_ms: Option<u64>,
    /// The last successful check's outcome.
    pub last_outcome: Option<Outcome>,
    /// The last failure, cleared by the next successful check.
    pub last_failure: Option<Failure>,
    /// Checks run.
    pub checks_total: u64,
    /// Failures by stage.
    pub failures_total: BTreeMap<Stage, u64>,
}

impl SelfUpdateStatus {
    /// Whether the updater is healthy: off, or its last check succeeded.
    pub fn healthy(&self) -> bool {
        !self.enabled || self.last_failure.is_none()
    }

    /// Records one check's result.
    pub fn record(&mut self, now_ms: u64, result: &Result<Outcome, SelfUpdateError>) {
        self.checks_total += 1;
        self.last_check_ms = Some(now_ms);
        match result {
            Ok(o) => {
                self.last_outcome = Some(o.clone());
                self.last_failure = None;
            }
            Err(e) => {
                *self.failures_total.entry(e.stage()).or_insert(0) += 1;
                self.last_failure = Some(Failure {
                    at_ms: now_ms,
                    stage: e.stage(),
                    message: e.to_string(),
                });
            }
        }
    }

    /// Loads a status file.
    pub fn load(path: &Path) -> std::io::Result<SelfUpdateStatus> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Saves atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }

    /// The `self_update` object for `/healthz`.
    pub fn healthz_json(&self) -> serde_json::Value {
        serde_json::json!({
            "enabled": self.enabled,
            "healthy": self.healthy(),
            "running_version": self.running_version,
            "last_check_ms": self.last_check_ms,
            "last_outcome": self.last_outcome,
            "last_failure": self.last_failure,
        })
    }

    /// Prometheus text-format lines (with HELP/TYPE) for `/metrics`.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP heph_self_update_enabled Whether self-update is on.\n# TYPE heph_self_update_enabled gauge\n");
        s.push_str(&format!(
            "heph_self_update_enabled {}\n",
            u8::from(self.enabled)
        ));
        s.push_str("# HELP heph_self_update_healthy 1 unless the last self-update check failed.\n# TYPE heph_self_update_healthy gauge\n");
        s.push_str(&format!(
            "heph_self_update_healthy {}\n",
            u8::from(self.healthy())
        ));
        s.push_str("# HELP heph_self_update_checks_total Self-update checks run.\n# TYPE heph_self_update_checks_total counter\n");
        s.push_str(&format!(
            "heph_self_update_checks_total {}\n",
            self.checks_total
        ));
        s.push_str("# HELP heph_self_update_failures_total Failed self-update checks by stage.\n# TYPE heph_self_update_failures_total counter\n");
        for stage in [
            Stage::Forge,
            Stage::Toolchain,
            Stage::Install,
            Stage::Verify,
            Stage::Config,
        ] {
            let n = self.failures_total.get(&stage).copied().unwrap_or(0);
            s.push_str(&format!(
                "heph_self_update_failures_total{{stage=\"{}\"}} {n}\n",
                stage.as_str()
            ));
        }
        s
    }

    /// One human line for `heph daemon status`.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "off".to_owned();
        }
        match (&self.last_failure, &self.last_outcome) {
            (Some(f), _) => format!("FAILING at {} — {}", f.stage.as_str(), f.message),
            (None, Some(Outcome::UpToDate { latest })) => {
                format!(
                    "on, up to date (newest tag {})",
                    latest.as_deref().unwrap_or("none")
                )
            }
            (None, Some(Outcome::Updated { tag, .. })) => {
                format!("on, installed {tag}, restart pending")
            }
            (None, None) => "on, no check yet".to_owned(),
        }
    }
}
