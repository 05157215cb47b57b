//! The persisted sync status (hub URL, last success, last error, auth failure, last seen heads) and the
//! report `heph sync --status` shows (per-origin lag, pending local ops).
//!
//! Stored in the replica's `meta` table: `sync_hub_url`, `sync_status` (JSON of [`SyncRecord`]) and
//! `last_sync` (RFC 3339 UTC time of the last successful sync, read by `heph daemon status`).

use heph_format::Origin;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::engine::{SyncError, SyncReport};
use super::hub::HubHeads;
use crate::error::SpokeError;
use crate::replica::Replica;

/// What the spoke remembers about its syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// When the last sync succeeded (Unix ms).
    pub last_success_ms: Option<u64>,
    /// When the last sync was attempted (Unix ms).
    pub last_attempt_ms: Option<u64>,
    /// The last failure's message (cleared by a success).
    pub last_error: Option<String>,
    /// The last failure's stable code (cleared by a success).
    pub last_error_code: Option<String>,
    /// When the last failure happened.
    pub last_error_ms: Option<u64>,
    /// The hub refused our token (cleared by a success).
    pub auth_failure: bool,
    /// The heads the hub reported at the last success.
    pub hub_heads: Option<HubHeads>,
}

/// One origin's row in the status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginLag {
    /// The origin.
    pub origin: Origin,
    /// This replica's own origin?
    pub own: bool,
    /// Last seq the hub held at the last success (none when unknown).
    pub hub_last_seq: Option<u64>,
    /// Last seq held here (for the own origin: last seq pushed).
    pub held_last_seq: u64,
    /// How many ops the replica was behind at the last successful sync.
    pub lag: u64,
}

/// `heph sync --status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// The remembered hub URL.
    pub hub_url: Option<String>,
    /// RFC 3339 UTC time of the last success.
    pub last_success: Option<String>,
    /// Unix ms of the last success.
    pub last_success_ms: Option<u64>,
    /// The last error message (none after a success).
    pub last_error: Option<String>,
    /// The last error code.
    pub last_error_code: Option<String>,
    /// The hub refused our token.
    pub auth_failure: bool,
    /// Local ops not yet on the hub.
    pub pending_local_ops: u64,
    /// Per-origin state.
    pub origins: Vec<OriginLag>,
    /// This replica's origin.
    pub origin: Origin,
}

fn meta_get(r: &Replica, key: &str) -> Result<Option<String>, SpokeError> {
    Ok(r.connection()
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

fn meta_set(r: &Replica, key: &str, value: &str) -> Result<(), SpokeError> {
    r.connection().execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
        [key, value],
    )?;
    Ok(())
}

/// The remembered hub URL.
pub fn hub_url(r: &Replica) -> Result<Option<String>, SpokeError> {
    meta_get(r, "sync_hub_url")
}

/// Remembers the hub URL (already validated by the caller).
pub fn set_hub_url(r: &Replica, url: &str) -> Result<(), SpokeError> {
    meta_set(r, "sync_hub_url", url)
}

/// The stored record (default when none).
pub fn load(r: &Replica) -> Result<SyncRecord, SpokeError> {
    Ok(meta_get(r, "sync_status")?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

fn save(r: &Replica, rec: &SyncRecord) -> Result<(), SpokeError> {
    let json = serde_json::to_string(rec).map_err(|e| SpokeError::Invalid(e.to_string()))?;
    meta_set(r, "sync_status", &json)
}

/// Records a successful sync at `now_ms`.
pub fn record_success(r: &Replica, now_ms: u64, report: &SyncReport) -> Result<(), SpokeError> {
    let mut rec = load(r)?;
    rec.last_success_ms = Some(now_ms);
    rec.last_attempt_ms = Some(now_ms);
    rec.last_error = None;
    rec.last_error_code = None;
    rec.last_error_ms = None;
    rec.auth_failure = false;
    rec.hub_heads = Some(report.heads.clone());
    save(r, &rec)?;
    meta_set(r, "last_sync", &rfc3339(now_ms))
}

/// Records a failed sync at `now_ms`.
pub fn record_failure(r: &Replica, now_ms: u64, err: &SyncError) -> Result<(), SpokeError> {
    let mut rec = load(r)?;
    rec.last_attempt_ms = Some(now_ms);
    rec.last_error = Some(err.to_string());
    rec.last_error_code = Some(err.code().to_owned());
    rec.last_error_ms = Some(now_ms);
    rec.auth_failure = err.is_auth();
    save(r, &rec)
}

/// The status report for `r`.
pub fn status(r: &Replica) -> Result<SyncStatus, SpokeError> {
    let rec = load(r)?;
    let own = r.origin();
    let own_pushed = r.sync_state(own)?.map_or(0, |c| c.last_seq);
    let pending = r.last_seq(own)?.saturating_sub(own_pushed);
    let mut origins: Vec<OriginLag> = Vec::new();
    let held: std::collections::BTreeMap<Origin, u64> = r
        .all_sync_states()?
        .into_iter()
        .map(|c| (c.origin, c.last_seq))
        .collect();
    let mut all: std::collections::BTreeSet<Origin> = held.keys().copied().collect();
    all.insert(own);
    if let Some(h) = &rec.hub_heads {
        all.extend(h.origins.keys().copied());
    }
    for o in all {
        let hub_last = rec
            .hub_heads
            .as_ref()
            .and_then(|h| h.origins.get(&o))
            .map(|h| h.last_seq);
        let held_last = held.get(&o).copied().unwrap_or(0);
        origins.push(OriginLag {
            origin: o,
            own: o == own,
            hub_last_seq: hub_last,
            held_last_seq: held_last,
            lag: hub_last.map_or(0, |h| h.saturating_sub(held_last)),
        });
    }
    Ok(SyncStatus {
        hub_url: hub_url(r)?,
        last_success: rec.last_success_ms.map(rfc3339),
        last_success_ms: rec.last_success_ms,
        last_error: rec.last_error,
        last_error_code: rec.last_error_code,
        auth_failure: rec.auth_failure,
        pending_local_ops: pending,
        origins,
        origin: own,
    })
}

impl SyncStatus {
    /// The human-readable report.
    pub fn human(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "hub:           {}\n",
            self.hub_url
                .as_deref()
                .unwrap_or("(none; use heph sync --hub-url URL)")
        ));
        s.push_str(&format!("origin:        {}\n", self.origin));
        s.push_str(&format!(
            "last success:  {}\n",
            self.last_success.as_deref().unwrap_or("never")
        ));
        s.push_str(&format!(
            "last error:    {}\n",
            match (&self.last_error_code, &self.last_error) {
                (Some(c), Some(m)) => format!("[{c}] {m}"),
                _ => "none".to_owned(),
            }
        ));
        s.push_str(&format!(
            "auth failure:  {}\n",
            if self.auth_failure {
                "yes (run `heph auth login`)"
            } else {
                "no"
            }
        ));
        s.push_str(&format!("pending local: {} ops\n", self.pending_local_ops));
        for o in &self.origins {
            s.push_str(&format!(
                "  {} {}: held {}, hub {}, lag {}\n",
                o.origin,
                if o.own { "(own, pushed)" } else { "" },
                o.held_last_seq,
                o.hub_last_seq
                    .map_or_else(|| "?".to_owned(), |h| h.to_string()),
                o.lag
            ));
        }
        s
    }
}

/// Formats Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
