//! A worker, either mode: the state its tasks share, and the calls the binding makes.
//!
//! Tasks: `fetch` (blocking reads on a dedicated connection, plus recovery), `acker` (batched
//! acks, retries, dead-lettering, trimming) and `maintenance` (heartbeats, lease renewal,
//! reaping). What differs between modes is in `backend.rs`. Jobs in flight live in a slab
//! indexed by `Job::token`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::acker::Finish;
use crate::config::WorkerConfig;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::prefetch::Prefetch;
use crate::queue::Queue;
use crate::{acker, backend, fetch, maintenance, scheduler};

/// Receives what a worker produces. Implementations must not block: hand the batch to another
/// thread or event loop and report outcomes later through [`Worker::complete`].
pub trait Dispatch: Send + Sync + 'static {
    /// A batch of jobs to run, oldest first.
    fn jobs(&self, jobs: Vec<Job>);
    /// Something the application may want to know; the worker keeps going.
    fn event(&self, event: WorkerEvent);
}

#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// A Redis or connection problem. The worker retries with backoff.
    Error(Error),
    /// Jobs recovered from a dead worker or an expired lease: about to run again here (stream
    /// mode), or returned to the wait list by this worker's reaper (list mode).
    Stalled { ids: Vec<String> },
    /// A job moved to the dead-letter stream or list.
    Dead { id: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// The handler failed. If attempts remain, the next one starts after `retry_in` (waiting in
    /// the `delayed` zset, so a crash meanwhile loses nothing).
    Failed {
        reason: String,
        retry_in: std::time::Duration,
    },
}

impl Outcome {
    /// A failure retried at once (while attempts remain).
    pub fn failed(reason: impl Into<String>) -> Self {
        Outcome::Failed {
            reason: reason.into(),
            retry_in: std::time::Duration::ZERO,
        }
    }
}

/// What the worker remembers of a job in flight.
pub(crate) struct InFlight {
    pub receipt: String,
    pub id: String,
    pub attempt: u32,
    pub max_attempts: Option<u32>,
}

#[derive(Default)]
pub(crate) struct Slab {
    slots: Vec<Option<InFlight>>,
    free: Vec<u32>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, job: InFlight) -> u32 {
        self.len += 1;
        if let Some(token) = self.free.pop() {
            self.slots[token as usize] = Some(job);
            token
        } else {
            self.slots.push(Some(job));
            (self.slots.len() - 1) as u32
        }
    }

    fn remove(&mut self, token: u32) -> Option<InFlight> {
        let job = self.slots.get_mut(token as usize)?.take()?;
        self.free.push(token);
        self.len -= 1;
        Some(job)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn receipts(&self) -> Vec<String> {
        self.slots
            .iter()
            .flatten()
            .map(|j| j.receipt.clone())
            .collect()
    }
}

pub(crate) struct Inner {
    pub queue: Arc<Queue>,
    pub cfg: WorkerConfig,
    pub consumer: String,
    pub dispatch: Arc<dyn Dispatch>,
    pub inflight: Mutex<Slab>,
    /// Signalled when slots free up (and on close).
    pub freed: Notify,
    /// Signalled when the last job in flight finishes.
    pub idle: Notify,
    pub closing: watch::Sender<bool>,
    pub finish_tx: Mutex<Option<mpsc::UnboundedSender<Finish>>>,
    /// CLIENT ID of the blocking connection, so close can unblock it (-1: none).
    pub blocked_client: AtomicI64,
    /// The queue is paused (`meta.paused`, polled by maintenance): fetch nothing new.
    pub paused: AtomicBool,
    /// The fetch loop is in (or about to send) a read. With `paused` it forms a handshake:
    /// each side stores its flag, then loads the other's (SeqCst), so either the loop sees the
    /// pause before reading or maintenance sees the read and unblocks it.
    pub reading: AtomicBool,
    /// Fetched jobs not yet handed out, and how many handlers run.
    ready: Mutex<Ready>,
    pub prefetch: Prefetch,
}

/// Prefetch: the fetch loop reads ahead, so when handlers finish the next jobs are already
/// here and go back to JS in the same call (`Worker::complete` returns them), with no wait for
/// a round trip to Redis. Prefetched jobs sit in the slab, so their leases are renewed too.
#[derive(Default)]
struct Ready {
    waiting: std::collections::VecDeque<Job>,
    running: usize,
}

impl Inner {
    /// How many more jobs the fetch loop may take: handlers in flight plus the prefetched ones
    /// waiting here for a free handler slot. `at_floor`: count only the configured `prefetch`,
    /// not what adaptive prefetch grew to (for a read that will likely block: jobs arriving
    /// after a lull should be spread over the workers, whatever the rate before the lull).
    pub fn free_slots(&self, at_floor: bool) -> usize {
        (self.cfg.concurrency + self.prefetch.get(at_floor))
            .saturating_sub(self.inflight.lock().unwrap().len())
    }

    /// On close: prefetched jobs that no handler took yet go back to the queue at once (same
    /// attempt, no delivery counted) instead of delaying the close by running them.
    fn release_prefetched(&self) {
        let jobs = std::mem::take(&mut self.ready.lock().unwrap().waiting);
        if jobs.is_empty() {
            return;
        }
        let Some(tx) = self.finish_tx.lock().unwrap().clone() else {
            return;
        };
        let mut slab = self.inflight.lock().unwrap();
        for job in jobs {
            if slab.remove(job.token).is_some() {
                let _ = tx.send(Finish::Retry {
                    receipt: job.receipt,
                    id: job.id,
                    next_attempt: job.attempt,
                    due_ms: 0,
                });
            }
        }
        if slab.len() == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Takes prefetched jobs for the free handler slots (at most `concurrency` run at once).
    fn take_ready(&self, finished: usize) -> Vec<Job> {
        let mut q = self.ready.lock().unwrap();
        q.running = q.running.saturating_sub(finished);
        let n = (self.cfg.concurrency - q.running.min(self.cfg.concurrency)).min(q.waiting.len());
        q.running += n;
        q.waiting.drain(..n).collect()
    }

    /// One `CLIENT UNBLOCK` for the fetch loop's connection, if it has one. Best effort: the
    /// callers repeat it, since the read may be sent after it arrives.
    pub async fn unblock_read(&self) {
        let client_id = self.blocked_client.load(Ordering::Acquire);
        if client_id < 0 {
            return;
        }
        if let Ok(mut conn) = self.queue.worker_conn().await {
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("UNBLOCK")
                .arg(client_id)
                .query_async(&mut conn)
                .await;
        }
    }

    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    pub fn emit(&self, event: WorkerEvent) {
        self.dispatch.event(event);
    }

    /// Waits until the acker has written everything completed so far (bounded: on a Redis
    /// outage it gives up, and the caller fails and retries later).
    pub async fn flush_acks(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let sent = match &*self.finish_tx.lock().unwrap() {
            Some(finish) => finish.send(Finish::Flush(tx)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Error::Closed);
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Error::Connection(
                "acknowledgements could not be written".into(),
            )),
        }
    }

    pub fn request_trim(&self) {
        if let Some(tx) = &*self.finish_tx.lock().unwrap() {
            let _ = tx.send(Finish::Trim);
        }
    }

    /// Registers fetched jobs as in flight and hands them out in one batch.
    pub fn deliver(&self, mut jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        self.prefetch.delivered(&jobs);
        {
            let mut slab = self.inflight.lock().unwrap();
            for job in &mut jobs {
                job.token = slab.insert(InFlight {
                    receipt: job.receipt.clone(),
                    id: job.id.clone(),
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                });
            }
        }
        self.ready.lock().unwrap().waiting.extend(jobs);
        let batch = self.take_ready(0);
        if !batch.is_empty() {
            self.dispatch.jobs(batch);
        }
    }
}

pub struct Worker {
    inner: Arc<Inner>,
    tasks: Mutex<Option<Tasks>>,
}

struct Tasks {
    fetch: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    stop_maintenance: watch::Sender<bool>,
    acker: JoinHandle<()>,
}

impl Worker {
    pub(crate) fn start(
        queue: Arc<Queue>,
        cfg: WorkerConfig,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (finish_tx, finish_rx) = mpsc::unbounded_channel();
        let prefetch = Prefetch::new(cfg.prefetch, cfg.prefetch_max);
        let inner = Arc::new(Inner {
            queue,
            cfg,
            consumer: new_worker_id(),
            dispatch,
            inflight: Mutex::new(Slab::default()),
            freed: Notify::new(),
            idle: Notify::new(),
            closing: watch::channel(false).0,
            finish_tx: Mutex::new(Some(finish_tx)),
            blocked_client: AtomicI64::new(-1),
            paused: AtomicBool::new(false),
            reading: AtomicBool::new(false),
            ready: Mutex::new(Ready::default()),
            prefetch,
        });
        let (stop_maintenance, stop_rx) = watch::channel(false);
        let tasks = Tasks {
            acker: tokio::spawn(acker::run(inner.clone(), finish_rx)),
            maintenance: tokio::spawn(maintenance::run(inner.clone(), stop_rx.clone())),
            scheduler: tokio::spawn(scheduler::run(inner.clone(), stop_rx)),
            fetch: tokio::spawn(fetch::run(inner.clone())),
            stop_maintenance,
        };
        Ok(Self {
            inner,
            tasks: Mutex::new(Some(tasks)),
        })
    }

    /// This worker's consumer name in the group and its id in the `workers` zset. Unique per
    /// process run, never reused.
    pub fn id(&self) -> &str {
        &self.inner.consumer
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.inner.cfg
    }

    pub fn in_flight(&self) -> usize {
        self.inner.inflight.lock().unwrap().len()
    }

    /// Reports finished jobs. Completed ones are acknowledged in batches; failed ones are
    /// retried (re-added with `attempt + 1`) or dead-lettered once they reach `max_attempts`.
    /// Unknown or repeated tokens are ignored.
    /// Returns the next jobs to run (prefetched ones, for the handler slots just freed): hand
    /// them to the handlers as if they came through [`Dispatch::jobs`].
    pub fn complete(&self, results: impl IntoIterator<Item = (u32, Outcome)>) -> Result<Vec<Job>> {
        let tx = self
            .inner
            .finish_tx
            .lock()
            .unwrap()
            .clone()
            .ok_or(Error::Closed)?;
        let mut finished = 0;
        // One message for all the acks of this call: the hot path sends per batch, not per job.
        let mut acks = Vec::new();
        let now_idle = {
            let mut slab = self.inner.inflight.lock().unwrap();
            for (token, outcome) in results {
                let Some(job) = slab.remove(token) else {
                    continue;
                };
                finished += 1;
                let finish = match outcome {
                    Outcome::Completed => {
                        acks.push(job.receipt);
                        continue;
                    }
                    Outcome::Failed { reason, retry_in } => {
                        let max = job.max_attempts.unwrap_or(self.inner.cfg.max_attempts);
                        if job.attempt < max {
                            Finish::Retry {
                                receipt: job.receipt,
                                id: job.id,
                                next_attempt: job.attempt + 1,
                                due_ms: match retry_in.is_zero() {
                                    true => 0,
                                    false => crate::now_ms() + retry_in.as_millis() as u64,
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
        if !acks.is_empty() {
            let _ = tx.send(Finish::Acks(acks));
        }
        self.inner.prefetch.finished(finished);
        self.inner.freed.notify_one();
        if now_idle {
            self.inner.idle.notify_waiters();
        }
        Ok(self.inner.take_ready(finished))
    }

    /// Graceful stop: stop fetching, wait for jobs in flight (their leases are still renewed),
    /// flush acknowledgements, then remove this worker's heartbeat. Idempotent.
    pub async fn close(&self) -> Result<()> {
        // The tasks are taken once: a second close finds none and returns.
        let Some(tasks) = self.tasks.lock().unwrap().take() else {
            return Ok(());
        };
        let inner = &self.inner;
        inner.closing.send_replace(true);
        inner.freed.notify_waiters();
        // Wake a blocked read. The read may not have started yet (the loop can be between two
        // commands), so keep unblocking until the fetch task has ended.
        let mut fetch = tasks.fetch;
        loop {
            inner.unblock_read().await;
            if tokio::time::timeout(std::time::Duration::from_millis(50), &mut fetch)
                .await
                .is_ok()
            {
                break;
            }
        }
        inner.release_prefetched();
        loop {
            let idle = inner.idle.notified();
            if inner.inflight.lock().unwrap().len() == 0 {
                break;
            }
            idle.await;
        }
        inner.finish_tx.lock().unwrap().take();
        let _ = tasks.acker.await;
        tasks.stop_maintenance.send_replace(true);
        let _ = tasks.maintenance.await;
        let _ = tasks.scheduler.await;
        backend::leave(inner).await
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

pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}
