//! How many jobs a worker reads ahead of its free handler slots (`PrefetchPolicy`). Fixed when
//! the ceiling is not above the floor; otherwise adaptive: about as many as the handlers finished
//! in the last `WINDOW`, between floor and ceiling and within a payload budget. Per-read costs (a round trip,
//! wakeups, a batch crossing into JS) are then spread over many jobs when handlers are fast,
//! while slow handlers hold no more than the floor ahead and leave the rest to other workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::job::Job;

/// Adaptive prefetch reads ahead what the handlers would finish in about this long.
const WINDOW: Duration = Duration::from_millis(50);
/// It stops growing at about this many bytes of payload held ahead.
const BUDGET_BYTES: usize = 32 << 20;

pub(super) struct Prefetch {
    floor: usize,
    max: usize,
    now: AtomicUsize,
    rate: Mutex<Rate>,
}

struct Rate {
    window_start: Instant,
    finished: usize,
    /// Running average of payload sizes, for the budget.
    avg_payload: usize,
}

impl Prefetch {
    pub fn new(floor: usize, max: usize) -> Self {
        Prefetch {
            floor,
            max,
            now: AtomicUsize::new(floor),
            rate: Mutex::new(Rate {
                window_start: Instant::now(),
                finished: 0,
                avg_payload: 0,
            }),
        }
    }

    fn adaptive(&self) -> bool {
        self.max > self.floor
    }

    /// The current prefetch; `at_floor` asks for the configured one, whatever it grew to.
    pub fn get(&self, at_floor: bool) -> usize {
        match at_floor {
            true => self.floor,
            false => self.now.load(Ordering::Relaxed),
        }
    }

    pub fn delivered(&self, jobs: &[Job]) {
        if !self.adaptive() || jobs.is_empty() {
            return;
        }
        let avg = jobs.iter().map(|j| j.payload.len()).sum::<usize>() / jobs.len();
        let mut rate = self.rate.lock().unwrap();
        rate.avg_payload = match rate.avg_payload {
            0 => avg,
            old => (old * 7 + avg) / 8,
        };
    }

    /// Counts finished jobs; at the end of each window, sets the prefetch to what finished in it.
    pub fn finished(&self, n: usize) {
        if !self.adaptive() {
            return;
        }
        let mut rate = self.rate.lock().unwrap();
        rate.finished += n;
        let elapsed = rate.window_start.elapsed();
        if elapsed < WINDOW {
            return;
        }
        let per_window = rate.finished as u128 * WINDOW.as_micros() / elapsed.as_micros().max(1);
        let by_bytes = BUDGET_BYTES / rate.avg_payload.max(1);
        let now = (per_window.min(usize::MAX as u128) as usize)
            .min(self.max)
            .min(by_bytes)
            .max(self.floor);
        self.now.store(now, Ordering::Relaxed);
        rate.window_start = Instant::now();
        rate.finished = 0;
    }

    /// The queue ran dry: start again from the floor, and grow back only if the jobs that come
    /// next are finished fast too (so a burst after a lull is spread over the workers).
    pub fn reset(&self) {
        if !self.adaptive() {
            return;
        }
        self.now.store(self.floor, Ordering::Relaxed);
        let mut rate = self.rate.lock().unwrap();
        rate.window_start = Instant::now();
        rate.finished = 0;
    }
}
