//! The one batching writer of call records (design.md §3): calls are queued on a channel and
//! written in batches, one transaction each, with their per-minute rollups. A failed write is
//! tried again; the queue is drained before the writer stops, so shutdown loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use graphwarden_core::call::CallRecord;
use graphwarden_store::{Inventory, Rollup};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many records wait in memory at most before new calls wait for the writer (about 20 MB;
/// over half a second of calls at the rates `bench/proxy.sh` reaches).
const QUEUE: usize = 32_768;
/// Records per transaction at most.
const BATCH: usize = 2_000;
/// How long the writer lets a batch gather after its first record.
const GATHER: Duration = Duration::from_millis(25);
/// Attempts per batch before it is counted lost.
const ATTEMPTS: u32 = 5;

/// What the writer has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub written: AtomicU64,
    pub lost: AtomicU64,
    pub queued: AtomicU64,
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<CallRecord>,
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

    /// Queue a record. Never drops one: when the queue is full the record waits in a task
    /// of its own (the caller, often a `Drop`, cannot wait). That happens only for the few
    /// calls admitted in the instant the queue filled ([`Recorder::wait_for_room`] holds back
    /// the rest), so these tasks stay few.
    pub fn record(&self, record: CallRecord) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                let tx = self.tx.clone();
                self.runtime.spawn(async move {
                    let _ = tx.send(record).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!("A call record arrived after the writer stopped; it is lost.");
            }
        }
    }
}

async fn write_loop(
    inventory: Arc<Inventory>,
    mut rx: mpsc::Receiver<CallRecord>,
    stats: Arc<RecorderStats>,
) {
    let mut batch: Vec<CallRecord> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Let the batch gather while this task sleeps: a sleeping task is not woken by each
        // record sent (waiting on the channel, it would be, from another thread, for nearly
        // every call). Then take what came.
        if batch.len() < BATCH && rx.len() < BATCH {
            tokio::time::sleep(GATHER).await;
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
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
