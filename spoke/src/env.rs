//! The spoke core's only window on the outside world: wall time, randomness and the local UTC offset.
//!
//! Core code (replica, merge, queries, RPC) never reads `SystemTime` or draws randomness itself; it asks an
//! [`Env`]. [`SystemEnv`] (behind the `native` feature) reads the real clock; [`TestEnv`] is deterministic.

use core::cell::Cell;

/// Time, randomness and time-zone offset, supplied by the host.
pub trait Env {
    /// Current wall time in Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// 16 fresh random bytes (ids are minted from these).
    fn random(&self) -> [u8; 16];
    /// The local time zone's offset from UTC in milliseconds at the instant `at_ms` (east positive).
    fn local_offset_ms(&self, at_ms: i64) -> i64;
}

/// The host's real clock, random source and time zone.
#[cfg(feature = "native")]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEnv;

#[cfg(feature = "native")]
impl Env for SystemEnv {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn random(&self) -> [u8; 16] {
        // std's RandomState is seeded from the OS per instance; hashing a counter with two of them gives
        // 128 unpredictable bits without another dependency.
        use std::hash::{BuildHasher, Hasher};
        let mut out = [0u8; 16];
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        out
    }

    fn local_offset_ms(&self, at_ms: i64) -> i64 {
        use chrono::{Local, Offset, TimeZone};
        match Local.timestamp_millis_opt(at_ms) {
            chrono::LocalResult::Single(t) => i64::from(t.offset().fix().local_minus_utc()) * 1000,
            chrono::LocalResult::Ambiguous(t, _) => {
                i64::from(t.offset().fix().local_minus_utc()) * 1000
            }
            chrono::LocalResult::None => 0,
        }
    }
}

/// A deterministic environment for tests: a settable clock, a counter-based random source, a fixed offset.
#[derive(Debug)]
pub struct TestEnv {
    now: Cell<u64>,
    counter: Cell<u64>,
    seed: u64,
    offset_ms: i64,
}

impl TestEnv {
    /// Starts at `now_ms` (UTC offset 0); `seed` distinguishes the random streams of several replicas.
    pub fn new(now_ms: u64, seed: u64) -> TestEnv {
        TestEnv {
            now: Cell::new(now_ms),
            counter: Cell::new(0),
            seed,
            offset_ms: 0,
        }
    }

    /// The same environment with a fixed local UTC offset.
    pub fn with_offset_ms(mut self, offset_ms: i64) -> TestEnv {
        self.offset_ms = offset_ms;
        self
    }

    /// Sets the clock.
    pub fn set_now(&self, now_ms: u64) {
        self.now.set(now_ms);
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Env for TestEnv {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn random(&self) -> [u8; 16] {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let h = blake3::hash(&[self.seed.to_le_bytes(), n.to_le_bytes()].concat());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.as_bytes()[..16]);
        out
    }

    fn local_offset_ms(&self, _at_ms: i64) -> i64 {
        self.offset_ms
    }
}
