//! Hub metrics, rendered in the Prometheus text exposition format (0.0.4) at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::log::Totals;

/// Counters and gauges of one hub process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    auth: Mutex<BTreeMap<&'static str, u64>>,
    segments_stored: AtomicU64,
    bytes_stored: AtomicU64,
    long_polls: AtomicU64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    let mut g = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *g.entry(k).or_insert(0) += 1;
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16) {
        bump(&self.requests, (route, status));
    }

    /// Counts one refused push by reason code.
    pub fn rejection(&self, reason: &'static str) {
        bump(&self.rejections, reason);
    }

    /// Counts one authentication result (`ok`, `unauthorized`, `forbidden`, `unavailable`).
    pub fn auth(&self, result: &'static str) {
        bump(&self.auth, result);
    }

    /// Counts one newly stored segment.
    pub fn stored(&self, bytes: u64) {
        self.segments_stored.fetch_add(1, Ordering::Relaxed);
        self.bytes_stored.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adjusts the open long-poll gauge; returns the new value.
    pub fn long_poll_opened(&self) -> u64 {
        self.long_polls.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Decrements the open long-poll gauge.
    pub fn long_poll_closed(&self) {
        self.long_polls.fetch_sub(1, Ordering::Relaxed);
    }

    /// Currently open long-polls.
    pub fn long_polls_open(&self) -> u64 {
        self.long_polls.load(Ordering::Relaxed)
    }

    /// Renders everything, with `totals` for the store gauges.
    pub fn render(&self, totals: Totals) -> String {
        let mut out = String::with_capacity(2048);
        let lockr = |m: &Mutex<BTreeMap<(&'static str, u16), u64>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        };
        let lock1 = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        };
        let _ = writeln!(
            out,
            "# HELP heph_http_requests_total HTTP requests answered, by route and status.\n# TYPE heph_http_requests_total counter"
        );
        for ((route, status), n) in lockr(&self.requests) {
            let _ = writeln!(
                out,
                "heph_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP heph_push_rejections_total Refused pushes, by reason.\n# TYPE heph_push_rejections_total counter"
        );
        for (reason, n) in lock1(&self.rejections) {
            let _ = writeln!(out, "heph_push_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP heph_auth_total Authentication results on data routes.\n# TYPE heph_auth_total counter"
        );
        for (result, n) in lock1(&self.auth) {
            let _ = writeln!(out, "heph_auth_total{{result=\"{result}\"}} {n}");
        }
        let gauges = [
            (
                "heph_segments_stored_total",
                "counter",
                "Segments stored by this process.",
                self.segments_stored.load(Ordering::Relaxed),
            ),
            (
                "heph_segment_bytes_stored_total",
                "counter",
                "Segment bytes stored by this process.",
                self.bytes_stored.load(Ordering::Relaxed),
            ),
            (
                "heph_long_polls_open",
                "gauge",
                "Long-poll requests currently waiting.",
                self.long_polls.load(Ordering::Relaxed),
            ),
            (
                "heph_store_segments",
                "gauge",
                "Segments in all chains this hub knows.",
                totals.segments,
            ),
            (
                "heph_store_bytes",
                "gauge",
                "Bytes of all segments in chains this hub knows.",
                totals.bytes,
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}
