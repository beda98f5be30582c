//! The worker runtime, the same for every mode: tasks, jobs in flight, and the calls the binding
//! makes. It reaches Redis only through [`crate::protocol::Protocol`], and turns what the
//! protocol returns into events and deliveries.
//!
//! Tasks: `fetch` (blocking reads on a dedicated connection, plus recovery), `acker` (batched
//! acks, retries, dead-lettering, trimming), `maintenance` (heartbeats, lease renewal, reaping,
//! the pause flag) and `scheduler` (due delayed jobs). Their shared state is in `shared.rs`.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::WorkerConfig;
use crate::error::{Error, Result};
use crate::job::{Job, KeptOutcome};
use crate::metrics::Counters;
use crate::protocol::{AnyProtocol, Consumer, Protocol};
use crate::util::{now_ms, random_u64};

mod acker;
mod dispatch;
mod fetch;
mod maintenance;
mod prefetch;
mod scheduler;
mod shared;

pub use dispatch::{Dispatch, Outcome, WorkerEvent};
use shared::{Finish, Shared};

pub struct Worker {
    shared: Arc<Shared>,
    tasks: Mutex<Option<Tasks>>,
}

struct Tasks {
    fetch: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    stop_maintenance: watch::Sender<bool>,
    acker: JoinHandle<usize>,
}

/// What a close could not do cleanly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Handlers still running when the close stopped waiting: their jobs went back to the queue.
    pub timed_out: usize,
    /// Jobs whose outcome (or return to the queue) could not be written, Redis being
    /// unreachable: they are recovered once their leases expire, like a crashed worker's.
    pub left_to_lease_expiry: usize,
}

impl Worker {
    /// Starts a worker's tasks. Must be called inside a tokio runtime.
    pub(crate) fn start(
        protocol: Arc<AnyProtocol>,
        cfg: WorkerConfig,
        dispatch: Arc<dyn Dispatch>,
        counters: Arc<Counters>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (finish_tx, finish_rx) = mpsc::unbounded_channel();
        let consumer = Consumer {
            id: new_worker_id(),
            visibility_timeout: cfg.visibility_timeout,
            max_deliveries: cfg.max_deliveries,
        };
        let listener = crate::signals::listen(
            protocol.common().conn.endpoint(),
            &protocol.common().keys.events,
        );
        let shared = Arc::new(Shared::new(
            protocol, consumer, cfg, dispatch, finish_tx, counters, listener,
        ));
        let (stop_maintenance, stop_rx) = watch::channel(false);
        let tasks = Tasks {
            acker: tokio::spawn(acker::run(shared.clone(), finish_rx)),
            maintenance: tokio::spawn(maintenance::run(shared.clone(), stop_rx.clone())),
            scheduler: tokio::spawn(scheduler::run(shared.clone(), stop_rx)),
            fetch: tokio::spawn(fetch::run(shared.clone())),
            stop_maintenance,
        };
        Ok(Self {
            shared,
            tasks: Mutex::new(Some(tasks)),
        })
    }

    /// This worker's consumer name in the group and its id in the `workers` zset. Unique per
    /// process run, never reused.
    pub fn id(&self) -> &str {
        &self.shared.consumer.id
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.shared.cfg
    }

    pub fn in_flight(&self) -> usize {
        self.shared.slab().len()
    }

    /// Reports finished jobs. Completed ones are acknowledged in batches; failed ones are
    /// retried (re-added with `attempt + 1`) or dead-lettered once they reach `max_attempts`.
    /// Unknown or repeated tokens are ignored.
    /// Returns the next jobs to run (prefetched ones, for the handler slots just freed): hand
    /// them to the handlers as if they came through [`Dispatch::jobs`].
    pub fn complete(&self, results: impl IntoIterator<Item = (u32, Outcome)>) -> Result<Vec<Job>> {
        let tx = self.shared.finisher().ok_or(Error::Closed)?;
        let mut finished = 0;
        // One message for all the acks of this call: the hot path sends per batch, not per job.
        let mut acks = Vec::new();
        let mut kept = Vec::new();
        let (mut failed, mut retried) = (0, 0);
        let mut durations = crate::metrics::Durations::default();
        let now = std::time::Instant::now();
        let now_idle = {
            let mut slab = self.shared.slab();
            for (token, outcome) in results {
                let Some(job) = slab.remove(token) else {
                    continue;
                };
                finished += 1;
                if let Some(started) = job.started {
                    durations.add(now.saturating_duration_since(started));
                }
                let finish = match outcome {
                    Outcome::Completed | Outcome::Returned(_) => {
                        if let Some(keep_ms) = job.keep_outcome_ms {
                            let mut record = b"c".to_vec();
                            if let Outcome::Returned(result) = outcome {
                                record.extend_from_slice(&result);
                            }
                            kept.push(KeptOutcome {
                                id: job.id,
                                keep_ms,
                                record,
                            });
                        }
                        acks.push(job.receipt);
                        continue;
                    }
                    Outcome::Failed { reason, retry_in } => {
                        failed += 1;
                        let max = job.max_attempts.unwrap_or(self.shared.cfg.max_attempts);
                        if job.attempt < max {
                            retried += 1;
                            Finish::Retry {
                                receipt: job.receipt,
                                id: job.id,
                                next_attempt: job.attempt + 1,
                                due_ms: match retry_in.is_zero() {
                                    true => 0,
                                    false => now_ms() + retry_in.as_millis() as u64,
                                },
                            }
                        } else {
                            Finish::Dead {
                                receipt: job.receipt,
                                id: job.id,
                                attempts: job.attempt,
                                reason,
                            }
                        }
                    }
                };
                let _ = tx.send(finish);
            }
            slab.len() == 0
        };
        self.shared
            .counters
            .finished(acks.len() as u64, failed, retried, &durations);
        if !kept.is_empty() {
            let _ = tx.send(Finish::Outcomes(kept));
        }
        if !acks.is_empty() {
            let _ = tx.send(Finish::Acks(acks));
        }
        self.shared.prefetch.finished(finished);
        self.shared.freed.notify_one();
        if now_idle {
            self.shared.idle.notify_waiters();
        }
        Ok(self.shared.take_ready(finished))
    }

    /// [`Worker::complete`], with the next jobs it returns handed to the [`Dispatch`] as a
    /// batch, for callers that take every job from there.
    pub fn complete_and_dispatch(
        &self,
        results: impl IntoIterator<Item = (u32, Outcome)>,
    ) -> Result<()> {
        let next = self.complete(results)?;
        self.shared.dispatch_jobs(next);
        Ok(())
    }

    /// Graceful stop: stop fetching, wait for jobs in flight (their leases are still renewed),
    /// flush acknowledgements, then remove this worker's heartbeat. Idempotent.
    /// Pauses this worker now, as the queue's pause flag does at its next poll: returns once it
    /// reads nothing new. `Queue::pause` sets the flag for every process; this is for the
    /// workers of the process that paused, so that its `pause()` means it at once.
    pub async fn pause_here(&self) {
        self.shared.gate.bump_epoch();
        self.shared.apply_pause(true).await;
    }

    /// Undoes `pause_here` at once (the flag in Redis says the same after `Queue::resume`).
    pub fn resume_here(&self) {
        self.shared.gate.bump_epoch();
        self.shared.gate.set_paused(false);
    }

    pub async fn close(&self) -> Result<()> {
        self.close_within(None).await;
        Ok(())
    }

    /// Stops fetching, waits for the handlers in flight (at most `timeout`, after which their
    /// jobs go back to the queue), writes back what finished, and leaves. Never fails: Redis
    /// errors on the way are reported as events, and what could not be written is counted.
    pub async fn close_within(&self, timeout: Option<std::time::Duration>) -> CloseReport {
        let mut report = CloseReport::default();
        // The tasks are taken once: a second close finds none and returns.
        let Some(tasks) = self.tasks.lock().unwrap().take() else {
            return report;
        };
        let shared = &self.shared;
        shared.closing.send_replace(true);
        shared.freed.notify_waiters();
        // Wake a blocked read. The read may not have started yet (the loop can be between two
        // commands), so keep unblocking until the fetch task has ended.
        let mut fetch = tasks.fetch;
        loop {
            shared.unblock_read().await;
            if tokio::time::timeout(std::time::Duration::from_millis(50), &mut fetch)
                .await
                .is_ok()
            {
                break;
            }
        }
        shared.release_prefetched();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let idle = shared.idle.notified();
            if shared.slab().len() == 0 {
                break;
            }
            match deadline {
                None => idle.await,
                Some(at) => {
                    if tokio::time::timeout_at(at, idle).await.is_err() {
                        report.timed_out = shared.release_running();
                        break;
                    }
                }
            }
        }
        shared.stop_finishing();
        report.left_to_lease_expiry = tasks.acker.await.unwrap_or(0);
        tasks.stop_maintenance.send_replace(true);
        let _ = tasks.maintenance.await;
        let _ = tasks.scheduler.await;
        shared.stop_listening();
        // best effort: what is left is written by another worker of the queue, if any
        let _ = maintenance::flush_totals(shared).await;
        let common = shared.protocol.common();
        let left = match shared.protocol.leave(&shared.consumer).await {
            Ok(true) => common.unregister(&shared.consumer).await,
            // a resting worker's deadline is far: bring it to one lease from now, so a reaper
            // takes what is left that soon
            Ok(false) => shared
                .heartbeat(shared.cfg.visibility_timeout, false)
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = left {
            // the heartbeat stays until its deadline passes; then reapers treat this worker as
            // dead, which it is
            shared.emit(WorkerEvent::Error(e));
        }
        report
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(tasks) = self.tasks.lock().unwrap().take() {
            tasks.fetch.abort();
            tasks.maintenance.abort();
            tasks.scheduler.abort();
            tasks.acker.abort();
        }
    }
}

/// `<host>:<pid>:<random>`: readable in XINFO CONSUMERS, unique per process run.
fn new_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}:{}:{:012x}",
        std::process::id(),
        random_u64() & 0xffff_ffff_ffff
    )
}
