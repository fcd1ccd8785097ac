//! The one place graphwarden reads time.
//!
//! Everything else takes a [`Clock`], so tests can move a [`ManualClock`] sixty days forward in
//! a millisecond instead of sleeping. Clippy's `disallowed-methods` bans the system clock
//! everywhere but here.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// The current instant as Unix epoch milliseconds, the form the store keeps.
    fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the single sanctioned wall-clock read
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A monotonic stopwatch, for measuring how long something took (latency figures, bounded
/// waits). Never a source of "now": that is [`Clock`]. Readings compare in time order, so
/// one reading taken for a whole task can stand in for the clock within it
/// ([`Stopwatch::since`]) where a few milliseconds do not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)] // a monotonic reading for durations, not a time of day
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }

    /// The time from `earlier` to this reading, without reading the clock again (zero when
    /// `earlier` is the later of the two).
    pub fn since(&self, earlier: Stopwatch) -> std::time::Duration {
        self.0.saturating_duration_since(earlier.0)
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            ms: Arc::new(AtomicI64::new(start.as_millisecond())),
        }
    }

    /// A clock standing at 2026-01-01T00:00:00Z, a fixed point tests can rely on.
    pub fn at_fixed_start() -> Self {
        Self::new(Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// Move the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.ms.store(at.as_millisecond(), Ordering::SeqCst);
    }

    /// Move the clock forward (or backward, for a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let ms = self.ms.load(Ordering::SeqCst);
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::at_fixed_start();
        let other = clock.clone();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_hours(24 * 60));
        assert_eq!(other.now().as_second() - start.as_second(), 60 * 86_400);
        assert_eq!(other.now_ms(), clock.now().as_millisecond());
    }

    #[test]
    fn stopwatch_readings_compare_in_time_order() {
        let first = Stopwatch::start();
        let second = Stopwatch::start();
        assert!(first <= second);
        assert_eq!(
            first.since(second),
            std::time::Duration::ZERO,
            "never negative"
        );
        assert!(second.since(first) <= first.elapsed());
        assert_eq!(first.min(second), first);
    }
}
