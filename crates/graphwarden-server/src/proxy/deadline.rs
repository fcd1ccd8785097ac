//! Time limits on calls to Graph without a timer per call.
//!
//! `tokio::time::timeout` costs about 1,300 instructions per call (the runtime's handle
//! looked up, an entry put into the timer wheel and taken out again under the driver's
//! lock), a sixth of graphwarden's own work on a proxied call. Each proxy worker has one
//! [`Watchdog`] instead: a call that is still waiting after its first poll notes its due tick
//! and its waker in the watchdog's table (a lock; no clock reading: time is counted in the
//! ticker's ticks), and the watchdog's ticker, every [`TICK`], wakes those overdue. A limit is
//! never cut short, and kept to within two ticks late.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How often the watchdog looks for overdue calls.
pub const TICK: Duration = Duration::from_millis(100);

/// The limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// One worker's calls waiting under a limit.
#[derive(Debug)]
pub struct Watchdog {
    /// Ticks so far: never ahead of the time since the ticker started, in [`TICK`]s.
    ticks: AtomicU64,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

#[derive(Debug)]
struct Entry {
    /// The tick from which on it is overdue.
    due: u64,
    waker: Waker,
    expired: bool,
}

impl Watchdog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            ticks: AtomicU64::new(0),
            table: Mutex::new(Table::default()),
        })
    }

    /// Wake the calls that are overdue, every [`TICK`], for ever (abort the task to stop it).
    /// (An interval, not a sleep per turn: sleeps would add their lateness up, and the count
    /// of ticks fall behind the time.)
    pub async fn run(self: Arc<Self>) {
        let mut every = tokio::time::interval(TICK);
        every.tick().await; // the first is at once
        loop {
            every.tick().await;
            self.ticks.fetch_add(1, Ordering::Relaxed);
            self.sweep();
        }
    }

    fn sweep(&self) {
        let now = self.ticks.load(Ordering::Relaxed);
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        for entry in table.entries.iter_mut().flatten() {
            if !entry.expired && entry.due <= now {
                entry.expired = true;
                entry.waker.wake_by_ref();
            }
        }
    }

    fn insert(&self, limit: Duration, waker: &Waker) -> Option<usize> {
        // The current tick has partly passed already: one more, so the limit is never cut
        // short.
        let whole = u64::try_from(limit.as_nanos().div_ceil(TICK.as_nanos())).unwrap_or(u64::MAX);
        let due = self
            .ticks
            .load(Ordering::Relaxed)
            .saturating_add(whole)
            .saturating_add(1);
        let entry = Entry {
            due,
            waker: waker.clone(),
            expired: false,
        };
        let mut table = self.table.lock().ok()?;
        Some(match table.free.pop() {
            Some(i) => {
                table.entries[i] = Some(entry);
                i
            }
            None => {
                table.entries.push(Some(entry));
                table.entries.len() - 1
            }
        })
    }

    /// Whether the call at `slot` is overdue; else keep its latest waker.
    fn overdue(&self, slot: usize, waker: &Waker) -> bool {
        let Ok(mut table) = self.table.lock() else {
            return false;
        };
        match table.entries.get_mut(slot).and_then(Option::as_mut) {
            Some(entry) if entry.expired => true,
            Some(entry) => {
                if !entry.waker.will_wake(waker) {
                    entry.waker = waker.clone();
                }
                false
            }
            None => false,
        }
    }

    fn remove(&self, slot: usize) {
        if let Ok(mut table) = self.table.lock()
            && let Some(e) = table.entries.get_mut(slot)
            && e.take().is_some()
        {
            table.free.push(slot);
        }
    }

    /// `fut`, unless it is still not done after `limit` (up to two [`TICK`]s later). The ticker
    /// ([`Watchdog::run`]) must run for a limit to be kept. `fut` is pinned by the caller: a
    /// future taken by value would be held twice in this one's state (as the argument and
    /// pinned), and a call to Graph's future is kilobytes.
    pub async fn limit<F: Future>(
        &self,
        limit: Duration,
        mut fut: Pin<&mut F>,
    ) -> Result<F::Output, Elapsed> {
        struct Registration<'a> {
            dog: &'a Watchdog,
            slot: Option<usize>,
        }
        impl Drop for Registration<'_> {
            fn drop(&mut self) {
                if let Some(slot) = self.slot.take() {
                    self.dog.remove(slot);
                }
            }
        }
        let mut registration = Registration {
            dog: self,
            slot: None,
        };
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match registration.slot {
                None => registration.slot = self.insert(limit, cx.waker()),
                Some(slot) => {
                    if self.overdue(slot, cx.waker()) {
                        return Poll::Ready(Err(Elapsed));
                    }
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphwarden_core::Stopwatch;

    #[tokio::test]
    async fn limits_are_kept_to_within_a_tick_and_slots_are_reused() {
        let dog = Watchdog::new();
        let ticker = tokio::spawn(Arc::clone(&dog).run());
        // Done in time.
        let quick = dog
            .limit(
                Duration::from_secs(5),
                std::pin::pin!(async {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    7
                }),
            )
            .await;
        assert_eq!(quick, Ok(7));
        // Ready at once: nothing is noted.
        assert_eq!(
            dog.limit(Duration::ZERO, std::pin::pin!(async { 1 })).await,
            Ok(1)
        );
        // Overdue: cut off, within a tick of its limit.
        let watch = Stopwatch::start();
        let never = std::pin::pin!(std::future::pending::<()>());
        let slow = dog.limit(Duration::from_millis(50), never);
        assert_eq!(slow.await, Err(Elapsed));
        let took = watch.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_millis(50) + TICK * 10, "{took:?}");
        // Never early, however the call falls between two ticks.
        for wait_ms in [0, 30, 70] {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let watch = Stopwatch::start();
            let r = dog
                .limit(TICK, std::pin::pin!(std::future::pending::<()>()))
                .await;
            assert_eq!(r, Err(Elapsed));
            let took = watch.elapsed();
            assert!(took >= TICK, "{took:?}");
            assert!(took < TICK * 3 + Duration::from_millis(50), "{took:?}");
        }
        // Every slot was given back, and slots are reused.
        for _ in 0..3 {
            let _ = dog
                .limit(
                    Duration::from_secs(5),
                    std::pin::pin!(async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }),
                )
                .await;
        }
        {
            let table = dog.table.lock().unwrap();
            assert!(table.entries.iter().all(Option::is_none));
            assert_eq!(table.entries.len(), 1);
        }
        ticker.abort();
    }
}
