//! Hybrid logical clocks: `(wall_ms, counter, origin)`, a total order shared by every replica.
//!
//! Policy for remote clocks far in the future: an op is always *accepted* (the materialised state is a
//! function of the op set, so refusing ops would break convergence), but observing it never drags the
//! local clock more than [`MAX_FORWARD_DRIFT_MS`] ahead of local wall time. Such an op simply wins
//! last-writer-wins comparisons until real time passes it; [`Clock::observe`] reports it so the spoke
//! can warn about the skewed device.

use core::cmp::Ordering;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::id::Origin;

/// How far ahead of local wall time a remote clock may pull the local one (one hour).
pub const MAX_FORWARD_DRIFT_MS: u64 = 60 * 60 * 1000;

/// One hybrid logical clock reading. Ordered by `wall_ms`, then `counter`, then `origin`.
///
/// Serialized field order is part of the format: do not reorder.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Hlc {
    /// Physical component: Unix milliseconds.
    pub wall_ms: u64,
    /// Logical component: breaks ties within one millisecond.
    pub counter: u32,
    /// The replica that issued this reading: breaks all remaining ties.
    pub origin: Origin,
}

impl Ord for Hlc {
    fn cmp(&self, other: &Hlc) -> Ordering {
        (self.wall_ms, self.counter, self.origin).cmp(&(other.wall_ms, other.counter, other.origin))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Hlc) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.wall_ms, self.counter, self.origin)
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What observing a remote clock did to the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockObservation {
    /// The remote reading was at or behind the local clock, or within the allowed drift: absorbed.
    Absorbed,
    /// The remote reading is more than [`MAX_FORWARD_DRIFT_MS`] ahead of local wall time; the local
    /// clock advanced only up to the drift bound. The op is still valid and applied.
    FarFuture {
        /// By how many milliseconds the remote reading leads local wall time.
        ahead_ms: u64,
    },
}

/// A replica's clock. It never reads time itself: callers pass `now_ms`.
#[derive(Debug, Clone)]
pub struct Clock {
    origin: Origin,
    last_wall_ms: u64,
    last_counter: u32,
}

impl Clock {
    /// A clock for `origin` that has issued nothing yet.
    pub fn new(origin: Origin) -> Clock {
        Clock {
            origin,
            last_wall_ms: 0,
            last_counter: 0,
        }
    }

    /// A clock resumed after `last`, the greatest reading this replica has seen (its own or remote).
    pub fn resume(origin: Origin, last: Option<Hlc>) -> Clock {
        let mut c = Clock::new(origin);
        if let Some(h) = last {
            c.last_wall_ms = h.wall_ms;
            c.last_counter = h.counter;
        }
        c
    }

    /// The origin this clock stamps.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Issues a new reading for a local event: strictly greater than every reading issued or observed.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        if now_ms > self.last_wall_ms {
            self.last_wall_ms = now_ms;
            self.last_counter = 0;
        } else if self.last_counter == u32::MAX {
            // Counter exhausted within one millisecond: borrow the next millisecond.
            self.last_wall_ms += 1;
            self.last_counter = 0;
        } else {
            self.last_counter += 1;
        }
        Hlc {
            wall_ms: self.last_wall_ms,
            counter: self.last_counter,
            origin: self.origin,
        }
    }

    /// Merges a remote reading so that later local ticks order after it (bounded by the drift policy).
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> ClockObservation {
        let bound = now_ms.saturating_add(MAX_FORWARD_DRIFT_MS);
        let (wall, counter, result) = if remote.wall_ms > bound {
            (
                bound,
                0,
                ClockObservation::FarFuture {
                    ahead_ms: remote.wall_ms - now_ms,
                },
            )
        } else {
            (remote.wall_ms, remote.counter, ClockObservation::Absorbed)
        };
        if (wall, counter) > (self.last_wall_ms, self.last_counter) {
            self.last_wall_ms = wall;
            self.last_counter = counter;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(n: u8) -> Origin {
        Origin::from_parts(1, [n; 10])
    }

    #[test]
    fn ticks_are_strictly_increasing_even_when_wall_time_stalls_or_goes_back() {
        let mut c = Clock::new(origin(1));
        let a = c.tick(100);
        let b = c.tick(100);
        let d = c.tick(50);
        let e = c.tick(200);
        assert!(a < b && b < d && d < e);
        assert_eq!((b.wall_ms, b.counter), (100, 1));
        assert_eq!((e.wall_ms, e.counter), (200, 0));
    }

    #[test]
    fn observe_orders_local_after_remote() {
        let mut c = Clock::new(origin(1));
        c.tick(100);
        let remote = Hlc {
            wall_ms: 500,
            counter: 7,
            origin: origin(2),
        };
        assert_eq!(c.observe(remote, 100), ClockObservation::Absorbed);
        let next = c.tick(100);
        assert!(next > remote);
    }

    #[test]
    fn far_future_remote_does_not_drag_clock_beyond_drift() {
        let mut c = Clock::new(origin(1));
        let now = 1_000_000;
        let remote = Hlc {
            wall_ms: now + 10 * MAX_FORWARD_DRIFT_MS,
            counter: 0,
            origin: origin(2),
        };
        assert!(matches!(
            c.observe(remote, now),
            ClockObservation::FarFuture { .. }
        ));
        let next = c.tick(now);
        assert!(next.wall_ms <= now + MAX_FORWARD_DRIFT_MS);
        assert!(
            next < remote,
            "the far-future op still wins LWW until time passes"
        );
    }

    #[test]
    fn counter_overflow_borrows_next_millisecond() {
        let mut c = Clock::resume(
            origin(1),
            Some(Hlc {
                wall_ms: 10,
                counter: u32::MAX,
                origin: origin(1),
            }),
        );
        let h = c.tick(10);
        assert_eq!((h.wall_ms, h.counter), (11, 0));
    }

    #[test]
    fn origin_breaks_ties() {
        let a = Hlc {
            wall_ms: 1,
            counter: 1,
            origin: origin(1),
        };
        let b = Hlc {
            wall_ms: 1,
            counter: 1,
            origin: origin(2),
        };
        assert!(a < b);
    }
}
