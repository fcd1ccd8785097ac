//! The one batching writer of call records (design.md §3): calls are queued on a channel and
//! written in batches, one transaction each, with their per-minute rollups. A failed write is
//! tried again; the queue is drained before the writer stops, so shutdown loses nothing.
//!
//! Each proxy worker gathers its records ([`Gathered`]) and puts them on the channel in chunks
//! of up to [`CHUNK`], and at least every [`FLUSH`]: the channel is shared by every worker and
//! the writer, and each use of it writes memory they all write, so once per chunk costs far
//! less than once per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graphwarden_core::call::CallRecord;
use graphwarden_store::{Inventory, Rollup};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records a worker gathers before it hands them to the writer.
pub const CHUNK: usize = 64;
/// How long a worker keeps a chunk that is not full at most.
pub const FLUSH: Duration = Duration::from_millis(100);
/// How many chunks wait in memory at most before new calls wait for the writer (up to 32,768
/// records, about 20 MB; over half a second of calls at the rates `bench/proxy.sh` reaches).
const QUEUE: usize = 32_768 / CHUNK;
/// Records per transaction (at most, give or take one chunk). Each transaction has a cost of
/// its own (its statements' round trips to sqlx's SQLite thread, the upserts of what the rows
/// share, the rollups, the commit's fsync), so fewer, larger ones cost less per record.
const BATCH: usize = 8_000;
/// How long the writer lets a batch gather after its first record.
const GATHER: Duration = Duration::from_millis(100);
/// Attempts per batch before it is counted lost.
const ATTEMPTS: u32 = 5;

/// What the writer has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub written: AtomicU64,
    pub lost: AtomicU64,
    /// Handed to the writer and not written yet (not those a worker still gathers).
    pub queued: AtomicU64,
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Vec<CallRecord>>,
    stats: Arc<RecorderStats>,
    /// The runtime the writer runs on: a record that must wait for room waits there, so it
    /// outlives the proxy worker that made it.
    runtime: tokio::runtime::Handle,
}

impl Recorder {
    /// Start the writer. It stops once every `Recorder` clone is dropped and the queue is
    /// written.
    pub fn start(inventory: Arc<Inventory>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(RecorderStats::default());
        let task = tokio::spawn(write_loop(inventory, rx, Arc::clone(&stats)));
        (
            Self {
                tx,
                stats,
                runtime: tokio::runtime::Handle::current(),
            },
            task,
        )
    }

    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.stats
    }

    /// Whether the queue is full (see [`Recorder::wait_for_room`]).
    pub fn is_full(&self) -> bool {
        self.tx.capacity() == 0
    }

    /// Wait while the queue is full. The proxy calls this before taking a call, so under
    /// overload calls slow down instead of records piling up in memory.
    pub async fn wait_for_room(&self) {
        if self.tx.capacity() == 0 {
            // The permit is given back at once: this only waits for the writer to catch up.
            let _ = self.tx.reserve().await;
        }
    }

    /// Queue records. Never drops them: when the queue is full they wait in a task of their
    /// own (the caller, often a `Drop`, cannot wait). That happens only for the few calls
    /// admitted in the instant the queue filled ([`Recorder::wait_for_room`] holds back the
    /// rest), so these tasks stay few.
    pub fn record_all(&self, records: Vec<CallRecord>) {
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        self.stats.queued.fetch_add(n, Ordering::Relaxed);
        match self.tx.try_send(records) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(records)) => {
                let tx = self.tx.clone();
                self.runtime.spawn(async move {
                    let _ = tx.send(records).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.lost.fetch_add(n, Ordering::Relaxed);
                tracing::error!(
                    records = n,
                    "Call records arrived after the writer stopped; they are lost."
                );
            }
        }
    }
}

/// One worker's records on their way to the writer (see the module's notes). Whatever it
/// still holds when dropped is handed over then, so a worker that stops loses nothing.
#[derive(Debug)]
pub struct Gathered {
    recorder: Recorder,
    /// Taken only by the worker's own thread (and its flusher, on the same thread), so the
    /// lock's memory stays in that core's cache.
    pending: Mutex<Vec<CallRecord>>,
}

impl Gathered {
    pub fn new(recorder: Recorder) -> Self {
        Self {
            recorder,
            pending: Mutex::new(Vec::with_capacity(CHUNK)),
        }
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Add a record; a full chunk goes to the writer.
    pub fn record(&self, record: CallRecord) {
        let chunk = {
            let mut pending = match self.pending.lock() {
                Ok(p) => p,
                Err(poisoned) => poisoned.into_inner(),
            };
            pending.push(record);
            (pending.len() >= CHUNK)
                .then(|| std::mem::replace(&mut *pending, Vec::with_capacity(CHUNK)))
        };
        if let Some(chunk) = chunk {
            self.recorder.record_all(chunk);
        }
    }

    /// Hand what is gathered to the writer now.
    pub fn flush(&self) {
        let chunk = match self.pending.lock() {
            Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
            Ok(_) => return,
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        self.recorder.record_all(chunk);
    }
}

impl Drop for Gathered {
    fn drop(&mut self) {
        self.flush();
    }
}

async fn write_loop(
    inventory: Arc<Inventory>,
    mut rx: mpsc::Receiver<Vec<CallRecord>>,
    stats: Arc<RecorderStats>,
) {
    let mut batch: Vec<CallRecord> = Vec::with_capacity(BATCH + CHUNK);
    while let Some(first) = rx.recv().await {
        batch.extend(first);
        // Let the batch gather while this task sleeps: a sleeping task is not woken by each
        // chunk sent (waiting on the channel, it would be, from another thread, for nearly
        // every chunk). Then take what came.
        if batch.len() < BATCH && rx.len() * CHUNK < BATCH {
            tokio::time::sleep(GATHER).await;
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(chunk) => batch.extend(chunk),
                Err(_) => break,
            }
        }
        write(&inventory, &mut batch, &stats).await;
    }
    if !batch.is_empty() {
        write(&inventory, &mut batch, &stats).await;
    }
    tracing::debug!(
        written = stats.written.load(Ordering::Relaxed),
        "The call-record writer stopped."
    );
}

async fn write(inventory: &Inventory, batch: &mut Vec<CallRecord>, stats: &RecorderStats) {
    let rollups = Rollup::fold(batch);
    let n = batch.len() as u64;
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        match inventory.store().insert_calls(batch, &rollups).await {
            Ok(()) => {
                stats.written.fetch_add(n, Ordering::Relaxed);
                stats.queued.fetch_sub(
                    n.min(stats.queued.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                batch.clear();
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, records = n, "Writing call records failed; trying again.");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, records = n, "Writing call records failed for good; these records are lost.");
            }
        }
    }
    stats.lost.fetch_add(n, Ordering::Relaxed);
    stats.queued.fetch_sub(
        n.min(stats.queued.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphwarden_core::call::ChangeType;

    fn record(i: i64) -> CallRecord {
        CallRecord {
            at_ms: i,
            token_alias: None,
            token_fingerprint: None,
            app_id: None,
            method: "GET".into(),
            path: "/me".into(),
            object_id: None,
            change: ChangeType::Read,
            http_status: 200,
            error_code: None,
            error_subcode: None,
            error_class: None,
            duration_us: 1,
            usage_pct: None,
            usage: None,
            batch_index: None,
            outcome: "forwarded".into(),
        }
    }

    #[tokio::test]
    async fn a_worker_hands_its_records_over_in_chunks_when_flushed_and_when_dropped() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let recorder = Recorder {
            tx,
            stats: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        };
        let gathered = Gathered::new(recorder.clone());
        for i in 0..(CHUNK as i64 + 3) {
            gathered.record(record(i));
        }
        let chunk = rx.try_recv().unwrap();
        assert_eq!(chunk.len(), CHUNK, "a full chunk goes at once");
        assert!(rx.try_recv().is_err(), "the rest waits");
        gathered.flush();
        let rest = rx.try_recv().unwrap();
        assert_eq!(
            rest.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            [64, 65, 66]
        );
        gathered.flush();
        assert!(rx.try_recv().is_err(), "nothing to flush sends nothing");
        gathered.record(record(99));
        drop(gathered);
        assert_eq!(
            rx.try_recv().unwrap()[0].at_ms,
            99,
            "dropping hands over the rest"
        );
        assert_eq!(recorder.stats.queued.load(Ordering::Relaxed), 68);
    }
}
