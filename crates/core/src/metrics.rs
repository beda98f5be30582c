//! What this process's workers did, per queue: counters and a histogram of job durations, kept
//! in atomics so counting costs a few relaxed adds per batch of finished jobs.
//!
//! Every `Queue` object made for the same queue (url, prefix, name) in this process shares one
//! [`Counters`], so counters never go back when a worker closes and another starts. The
//! binding renders them (with [`crate::Stats`]) as Prometheus text.
//!
//! Completions and failures also go to queue-wide totals in Redis (`meta` fields `completed`,
//! `failed`), written by each process's maintenance task about once a second (`unflushed`), so
//! the hot path sends nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the duration histogram's buckets; `+Inf` follows.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Counters of one queue in this process.
#[derive(Default)]
pub struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    stalled: AtomicU64,
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_us: AtomicU64,
    /// Completions and failures not yet added to the queue-wide totals in Redis.
    unflushed_completed: AtomicU64,
    unflushed_failed: AtomicU64,
}

/// Durations of one batch, binned on the stack.
#[derive(Default, Clone, Copy)]
pub(crate) struct Durations {
    bins: [u64; DURATION_BUCKETS.len() + 1],
    sum_us: u64,
}

impl Durations {
    pub fn add(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.bins[i] += 1;
        self.sum_us += d.as_micros() as u64;
    }
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
    pub stalled: u64,
    /// Cumulative counts per bucket of [`DURATION_BUCKETS`], then `+Inf` (= the count).
    pub duration_buckets: Vec<u64>,
    pub duration_sum_seconds: f64,
}

impl Counters {
    /// Jobs whose handlers finished, with how long each held a handler slot, binned by the
    /// caller per batch ([`Durations`]): one atomic add per touched bucket.
    pub(crate) fn finished(
        &self,
        completed: u64,
        failed: u64,
        retried: u64,
        durations: &Durations,
    ) {
        let Durations { bins, sum_us } = *durations;
        for (bucket, n) in self.buckets.iter().zip(bins) {
            if n > 0 {
                bucket.fetch_add(n, Relaxed);
            }
        }
        if sum_us > 0 {
            self.duration_sum_us.fetch_add(sum_us, Relaxed);
        }
        for (counter, n) in [
            (&self.completed, completed),
            (&self.unflushed_completed, completed),
            (&self.failed, failed),
            (&self.unflushed_failed, failed),
            (&self.retried, retried),
        ] {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
    }

    pub(crate) fn dead(&self, n: u64) {
        self.dead.fetch_add(n, Relaxed);
    }

    pub(crate) fn stalled(&self, n: u64) {
        self.stalled.fetch_add(n, Relaxed);
    }

    /// Takes the completions and failures not yet written to Redis; give them back with
    /// [`Counters::unflush`] if the write fails.
    pub(crate) fn take_unflushed(&self) -> (u64, u64) {
        (
            self.unflushed_completed.swap(0, Relaxed),
            self.unflushed_failed.swap(0, Relaxed),
        )
    }

    pub(crate) fn unflush(&self, completed: u64, failed: u64) {
        self.unflushed_completed.fetch_add(completed, Relaxed);
        self.unflushed_failed.fetch_add(failed, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let duration_buckets = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect();
        Snapshot {
            completed: self.completed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dead: self.dead.load(Relaxed),
            stalled: self.stalled.load(Relaxed),
            duration_buckets,
            duration_sum_seconds: self.duration_sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// The counters of one queue in this process, made on first use. `meta` is the queue's meta key,
/// which already tells prefix, name and (fan-out) consumer group apart.
pub(crate) fn for_queue(url: &str, meta: &str) -> Arc<Counters> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Counters>>>> = OnceLock::new();
    let key = format!("{url}\0{meta}");
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(key)
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_cumulative_buckets() {
        let c = Counters::default();
        let ms = Duration::from_millis;
        let mut d = Durations::default();
        for t in [ms(0), ms(7), ms(7000)] {
            d.add(t);
        }
        c.finished(2, 1, 1, &d);
        let mut d = Durations::default();
        d.add(Duration::from_secs(600));
        c.finished(0, 0, 0, &d);
        let s = c.snapshot();
        assert_eq!((s.completed, s.failed, s.retried), (2, 1, 1));
        // <= 1 ms: 1; <= 10 ms: 2; <= 10 s: 3; +Inf: 4
        assert_eq!(s.duration_buckets[0], 1);
        assert_eq!(s.duration_buckets[2], 2);
        assert_eq!(s.duration_buckets[11], 3);
        assert_eq!(s.duration_buckets[13], 3);
        assert_eq!(*s.duration_buckets.last().unwrap(), 4);
        assert!((s.duration_sum_seconds - 607.007).abs() < 1e-6);
        assert_eq!(c.take_unflushed(), (2, 1));
        assert_eq!(c.take_unflushed(), (0, 0));
        c.unflush(2, 1);
        assert_eq!(c.take_unflushed(), (2, 1));
    }

    #[test]
    fn one_queue_one_set_of_counters() {
        let a = for_queue("redis://x", "hf:{q}:meta");
        let b = for_queue("redis://x", "hf:{q}:meta");
        let other = for_queue("redis://x", "hf:{q2}:meta");
        let group = for_queue("redis://x", "hf:{q}:g:billing:meta");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(!Arc::ptr_eq(&a, &group));
    }
}
