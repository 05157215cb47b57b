//! The daemon's background sync: sync soon after each local write (debounced), long-poll the hub's `wait`
//! for other devices' changes, back off exponentially with jitter while the hub fails, and retry at once
//! when a cheap probe shows an unreachable hub is back. Idle, it blocks on the long-poll: no busy loop.

use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use super::server::Daemon;
use crate::env::Env;
use crate::sync::{HubClient, HubError, SyncError};

/// How long a burst of local writes is collected before the push.
pub const DEBOUNCE: Duration = Duration::from_millis(15);
/// Long-poll timeout sent to the hub.
pub const LONG_POLL_SECS: u64 = 25;
/// First backoff delay after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest backoff delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// While an unreachable hub is backed off, it is probed (`GET /config`) this often.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Exponential backoff with jitter (each delay is uniformly in [d/2, d]).
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    /// Forget the failures.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay, drawing jitter from `env`.
    pub fn next_delay(&mut self, env: &dyn Env) -> Duration {
        let exp = BACKOFF_BASE.saturating_mul(1u32 << self.attempt.min(16));
        let d = exp.min(BACKOFF_MAX);
        self.attempt = self.attempt.saturating_add(1);
        let r = env.random();
        let frac = u64::from(u16::from_le_bytes([r[0], r[1]])) as f64 / 65_535.0;
        d.mul_f64(0.5 + 0.5 * frac)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// A hub that did not answer (or cut a stream) is probed during the backoff; one whose TLS certificate
/// is refused is not (it will not start answering by itself).
fn probe_worthy(e: &SyncError) -> bool {
    match e {
        SyncError::Hub(HubError::Unreachable { reason, .. }) => {
            !super::is_certificate_error(reason)
        }
        SyncError::Hub(HubError::Truncated { .. }) => true,
        _ => false,
    }
}

/// Sleeps `delay`, returning early on a wake-up or (when `probe`) as soon as the hub answers again.
async fn back_off(d: &Daemon, hub: &dyn HubClient, delay: Duration, probe: bool) {
    let deadline = Instant::now() + delay;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let step = if probe {
            PROBE_INTERVAL.min(deadline - now)
        } else {
            deadline - now
        };
        tokio::select! {
            _ = d.wake.notified() => return,
            _ = tokio::time::sleep(step) => {}
        }
        if probe && hub.config().await.is_ok() {
            tracing::info!("the hub answers again: syncing now");
            return;
        }
    }
}

/// The loop; runs for the daemon's lifetime.
pub async fn run(d: Rc<Daemon>) {
    let mut backoff = Backoff::new();
    let mut tag: Option<String> = None;
    let mut need = true;
    loop {
        let Some(hub) = d.current_hub() else {
            d.wake.notified().await;
            need = true;
            continue;
        };
        if need {
            match d.sync_now().await {
                Ok(rep) => {
                    if rep.pushed_ops + rep.pulled_ops > 0 || rep.adopted_owner.is_some() {
                        tracing::info!(
                            pushed_ops = rep.pushed_ops,
                            pulled_ops = rep.pulled_ops,
                            adopted_owner = ?rep.adopted_owner,
                            "synced"
                        );
                    }
                    tag = Some(rep.tag.clone());
                    backoff.reset();
                    need = false;
                }
                Err(e) => {
                    let delay = backoff.next_delay(&d.env);
                    tracing::warn!(error = %e, code = e.code(), retry_in_ms = delay.as_millis() as u64, "sync failed");
                    back_off(&d, hub.as_ref(), delay, probe_worthy(&e)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            _ = d.wake.notified() => {
                need = true;
                tokio::time::sleep(DEBOUNCE).await;
            }
            w = hub.wait(tag.as_deref(), LONG_POLL_SECS) => match w {
                Ok(w) => {
                    if w.changed {
                        need = true;
                    }
                }
                Err(e) => {
                    need = true;
                    let delay = backoff.next_delay(&d.env);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "long-poll failed");
                    let probe = probe_worthy(&SyncError::Hub(e));
                    back_off(&d, hub.as_ref(), delay, probe).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let env = crate::env::TestEnv::new(0, 1);
        let mut b = Backoff::new();
        let first = b.next_delay(&env);
        assert!(
            first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE,
            "{first:?}"
        );
        for _ in 0..20 {
            let d = b.next_delay(&env);
            assert!(d <= BACKOFF_MAX, "{d:?}");
        }
        let late = b.next_delay(&env);
        assert!(late >= BACKOFF_MAX / 2, "{late:?}");
        b.reset();
        assert!(b.next_delay(&env) <= BACKOFF_BASE);
    }
}
