//! A counter and a histogram that each thread updates in memory of its own, summed when
//! scraped.
//!
//! Both proxy workers count every call. With prometheus-client's own types they write the same
//! memory: a counter is one atomic both threads increment, and a histogram's `observe` takes a
//! write lock and updates its sum, count and a bucket. The cache line holding them then moves
//! between the two cores on nearly every call, which costs far more than the arithmetic. Here
//! each thread gets its own shard (on cache lines of its own) the first time it counts; a
//! scrape adds the shards up. Values are exact at any scrape: nothing waits to be flushed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Memory one thread writes, alone on its cache lines (128 bytes: adjacent-line prefetching
/// pairs lines on x86).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// The shards of one metric, by the thread that writes each.
#[derive(Debug)]
struct Shards<T> {
    list: Mutex<Vec<(ThreadId, Arc<Padded<T>>)>>,
}

impl<T> Default for Shards<T> {
    fn default() -> Self {
        Self {
            list: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Shards<T> {
    /// This thread's shard, made the first time it asks.
    fn local(&self, make: impl FnOnce() -> T) -> Arc<Padded<T>> {
        let me = std::thread::current().id();
        let mut list = match self.list.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, s)) = list.iter().find(|(t, _)| *t == me) {
            return Arc::clone(s);
        }
        let shard = Arc::new(Padded(make()));
        list.push((me, Arc::clone(&shard)));
        shard
    }

    fn each(&self, mut f: impl FnMut(&T)) {
        let list = match self.list.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (_, s) in list.iter() {
            f(&s.0);
        }
    }
}

/// A Prometheus counter made of per-thread shards.
#[derive(Debug, Clone, Default)]
pub struct ShardedCounter {
    shards: Arc<Shards<AtomicU64>>,
}

/// One thread's handle on its shard of a [`ShardedCounter`]. Kept by that thread (in a
/// thread-local cache); another thread that used it would share the shard, which stays
/// correct (the increment is atomic) but gives up the point.
#[derive(Debug, Clone)]
pub struct LocalCounter(Arc<Padded<AtomicU64>>);

impl LocalCounter {
    pub fn inc(&self) {
        self.0.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl ShardedCounter {
    /// The calling thread's shard.
    pub fn local(&self) -> LocalCounter {
        LocalCounter(self.shards.local(AtomicU64::default))
    }

    /// Add one on the calling thread's shard (looks the shard up: for occasional counts).
    pub fn inc(&self) {
        self.local().inc();
    }

    /// The total over all threads.
    pub fn get(&self) -> u64 {
        let mut total = 0u64;
        self.shards
            .each(|s| total = total.wrapping_add(s.load(Ordering::Relaxed)));
        total
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One thread's part of a histogram. Only that thread writes it, so the sum is a plain load
/// and store of the `f64`'s bits; the counts are atomics so that a scrape reads them whole.
#[derive(Debug)]
struct HistogramShard {
    /// Per bucket (not cumulative), the last one `+Inf`.
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_bits: AtomicU64,
}

/// A Prometheus histogram made of per-thread shards.
#[derive(Debug, Clone)]
pub struct ShardedHistogram {
    /// Upper bounds, ascending, the last `f64::MAX` (`+Inf`).
    bounds: Arc<[f64]>,
    shards: Arc<Shards<HistogramShard>>,
}

/// One thread's handle on its shard of a [`ShardedHistogram`] (see [`LocalCounter`]).
#[derive(Debug, Clone)]
pub struct LocalHistogram {
    bounds: Arc<[f64]>,
    shard: Arc<Padded<HistogramShard>>,
}

impl LocalHistogram {
    pub fn observe(&self, v: f64) {
        let s = &self.shard.0;
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len() - 1);
        s.counts[i].fetch_add(1, Ordering::Relaxed);
        s.count.fetch_add(1, Ordering::Relaxed);
        let sum = f64::from_bits(s.sum_bits.load(Ordering::Relaxed)) + v;
        s.sum_bits.store(sum.to_bits(), Ordering::Relaxed);
    }
}

impl ShardedHistogram {
    /// A histogram with these upper bounds (a `+Inf` bucket is added).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let mut b: Vec<f64> = bounds.into_iter().filter(|b| !b.is_nan()).collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        if b.last() != Some(&f64::MAX) {
            b.push(f64::MAX);
        }
        Self {
            bounds: b.into(),
            shards: Arc::default(),
        }
    }

    /// The calling thread's shard.
    pub fn local(&self) -> LocalHistogram {
        let n = self.bounds.len();
        LocalHistogram {
            bounds: Arc::clone(&self.bounds),
            shard: self.shards.local(|| HistogramShard {
                counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
                count: AtomicU64::new(0),
                sum_bits: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// Sum, count and per-bucket counts (not cumulative) over all threads.
    pub fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut sum = 0.0;
        let mut count = 0u64;
        let mut buckets: Vec<(f64, u64)> = self.bounds.iter().map(|b| (*b, 0)).collect();
        self.shards.each(|s| {
            sum += f64::from_bits(s.sum_bits.load(Ordering::Relaxed));
            count = count.wrapping_add(s.count.load(Ordering::Relaxed));
            for (b, c) in buckets.iter_mut().zip(s.counts.iter()) {
                b.1 = b.1.wrapping_add(c.load(Ordering::Relaxed));
            }
        });
        (sum, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
    use prometheus_client::registry::Registry;

    #[test]
    fn a_counter_counted_on_several_threads_reads_as_their_sum() {
        let c = ShardedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let local = c.local();
                    for _ in 0..1000 {
                        local.inc();
                    }
                    c.inc();
                });
            }
        });
        assert_eq!(c.get(), 4004);
        // One shard per thread, however often a thread asks for its own.
        let main = c.local();
        main.inc();
        c.local().inc();
        assert_eq!(c.shards.list.lock().unwrap().len(), 5);
        assert_eq!(c.get(), 4006);
    }

    #[test]
    fn a_sharded_histogram_encodes_as_prometheus_clients_own_would() {
        let values = [0.0001, 0.0003, 0.002, 0.5, 3.0, 1e9, 0.00025];
        let theirs = Histogram::new(exponential_buckets(0.000_25, 2.0, 18));
        let ours = ShardedHistogram::new(exponential_buckets(0.000_25, 2.0, 18));
        for v in values {
            theirs.observe(v);
        }
        std::thread::scope(|s| {
            for chunk in values.chunks(3) {
                let ours = &ours;
                s.spawn(move || {
                    let local = ours.local();
                    for v in chunk {
                        local.observe(*v);
                    }
                });
            }
        });
        let text = |m: Box<dyn FnOnce(&mut Registry)>| {
            let mut r = Registry::default();
            m(&mut r);
            let mut out = String::new();
            encode(&mut out, &r).unwrap();
            out
        };
        let a = text(Box::new(move |r| r.register("h", "h", theirs)));
        let b = text(Box::new(move |r| r.register("h", "h", ours)));
        // The sums may differ in their last bits (added in another order).
        let strip = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("h_sum"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&a), strip(&b));
        assert!(b.contains("h_count 7"), "{b}");
        assert!(b.contains("le=\"+Inf\"} 7"), "{b}");
    }
}
