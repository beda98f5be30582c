//! The state a worker's tasks share: jobs in flight, prefetched jobs, the pause/read gate, and
//! the way to the acker. Fields are private to the runtime; the tasks use the methods.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::dispatch::{Dispatch, WorkerEvent};
use super::prefetch::Prefetch;
use crate::config::WorkerConfig;
use crate::error::{Error, Result};
use crate::job::{Job, KeptOutcome};
use crate::metrics::Counters;
use crate::protocol::{AnyProtocol, Consumer, Dead, Heartbeat, Protocol};
use crate::signals::{Listener, Wakers};

/// What the acker is asked to write (or do), in order.
pub(super) enum Finish {
    /// Receipts of completed jobs, one message per `Worker::complete` call.
    Acks(Vec<Bytes>),
    /// Outcomes to record (jobs that keep theirs), sent before the acks of the same jobs: the
    /// acker writes them first, so a job is never acked without its outcome.
    Outcomes(Vec<KeptOutcome>),
    Retry {
        receipt: Bytes,
        id: String,
        next_attempt: u32,
        /// Unix ms; 0: now.
        due_ms: u64,
    },
    Dead {
        receipt: Bytes,
        id: String,
        attempts: u32,
        reason: String,
    },
    /// Entries left the pending list elsewhere (dead-lettered by recovery): trim soon.
    Trim,
    /// Reply once everything received before this is written.
    Flush(oneshot::Sender<()>),
}

impl Finish {
    /// A delivery going back to the queue as it is: same attempt, due now.
    fn hand_back(receipt: Bytes, id: String, attempt: u32) -> Self {
        Finish::Retry {
            receipt,
            id,
            next_attempt: attempt,
            due_ms: 0,
        }
    }
}

/// What the worker remembers of a job in flight.
pub(super) struct InFlight {
    pub receipt: Bytes,
    pub id: String,
    pub attempt: u32,
    pub max_attempts: Option<u32>,
    /// When a handler got it (None while prefetched): the duration metric.
    pub started: Option<Instant>,
    pub keep_outcome_ms: Option<u64>,
}

/// Jobs in flight, indexed by `Job::token`.
#[derive(Default)]
pub(super) struct Slab {
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

    /// Notes that handlers got these jobs now.
    fn start(&mut self, jobs: &[Job]) {
        let now = Instant::now();
        for job in jobs {
            if let Some(Some(f)) = self.slots.get_mut(job.token as usize) {
                f.started = Some(now);
            }
        }
    }

    pub fn remove(&mut self, token: u32) -> Option<InFlight> {
        let job = self.slots.get_mut(token as usize)?.take()?;
        self.free.push(token);
        self.len -= 1;
        Some(job)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Empties the slab: every job in flight.
    pub fn drain(&mut self) -> Vec<InFlight> {
        self.free.clear();
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn receipts(&self) -> Vec<Bytes> {
        self.slots
            .iter()
            .flatten()
            .map(|j| j.receipt.clone())
            .collect()
    }
}

/// Prefetch: the fetch loop reads ahead, so when handlers finish the next jobs are already
/// here and go back to JS in the same call (`Worker::complete` returns them), with no wait for
/// a round trip to Redis. Prefetched jobs sit in the slab, so their leases are renewed too.
#[derive(Default)]
struct Ready {
    waiting: VecDeque<Job>,
    running: usize,
}

/// The pause flag and the blocking read, kept in step. Each side stores its own flag, then
/// loads the other's (SeqCst): either the fetch loop sees the pause before it reads, or
/// maintenance sees the read and unblocks it.
#[derive(Default)]
pub(super) struct ReadGate {
    paused: AtomicBool,
    reading: AtomicBool,
    /// CLIENT ID of the fetch connection, so a read can be unblocked (-1: none).
    client: AtomicI64,
    /// Bumped by a pause or resume made in this process, so a poll of the Redis flag that
    /// began before it does not undo it.
    epoch: AtomicU64,
}

impl ReadGate {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// The fetch loop is about to read: false (and nothing entered) when paused.
    pub fn enter_read(&self) -> bool {
        self.reading.store(true, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) {
            self.reading.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub fn leave_read(&self) {
        self.reading.store(false, Ordering::SeqCst);
    }

    pub fn is_reading(&self) -> bool {
        self.reading.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn set_client(&self, id: i64) {
        self.client.store(id, Ordering::Release);
    }

    fn client(&self) -> Option<i64> {
        Some(self.client.load(Ordering::Acquire)).filter(|&id| id >= 0)
    }
}

/// Whether this worker has been in touch with Redis long enough, without a gap, to take other
/// workers' jobs. When Redis stalled or restarted, or this worker could not reach it for a
/// while, every lease looks expired at once, live workers' too: each gets a renewal period to
/// renew before anyone recovers.
#[derive(Default)]
pub(super) struct Contact(Mutex<ContactState>);

#[derive(Default)]
struct ContactState {
    /// Start of the current run of heartbeats with no gap.
    since: Option<Instant>,
    /// When the last heartbeat reply arrived, and the server's clock (unix ms) it carried.
    last: Option<(Instant, u64)>,
}

impl Contact {
    /// A heartbeat sent at `sent` was answered with the server's clock. A reply that took
    /// longer than `max_gap`, or came more than `max_gap` after the one before, starts a new run.
    pub fn heard(&self, sent: Instant, server_ms: u64, max_gap: Duration) {
        let now = Instant::now();
        let mut s = self.0.lock().unwrap();
        let gap = match s.last {
            Some((last, _)) => now.saturating_duration_since(last),
            None => Duration::MAX,
        };
        if s.since.is_none() || gap > max_gap || now.saturating_duration_since(sent) > max_gap {
            s.since = Some(now);
        }
        s.last = Some((now, server_ms));
    }

    pub fn lost(&self) {
        *self.0.lock().unwrap() = ContactState::default();
    }

    /// When in touch for at least `long`, and heard from within `max_gap`: the server's clock
    /// now plus `slack`, as the time after which a recovery request sent now is stale. The
    /// server's clock is taken from the last heartbeat reply, whose travel makes it run a
    /// little behind: the safe side.
    pub fn steady(&self, long: Duration, max_gap: Duration, slack: Duration) -> Option<u64> {
        let s = self.0.lock().unwrap();
        let (at, server_ms) = s.last?;
        // a silence now (Redis stalled?) may hide a gap that the late reply will show
        if at.elapsed() > max_gap {
            return None;
        }
        s.since.filter(|since| since.elapsed() >= long)?;
        Some(server_ms + (at.elapsed() + slack).as_millis() as u64)
    }
}

pub(super) struct Shared {
    pub protocol: Arc<AnyProtocol>,
    pub consumer: Consumer,
    pub cfg: WorkerConfig,
    dispatch: Arc<dyn Dispatch>,
    inflight: Mutex<Slab>,
    /// Signalled when slots free up (and on close).
    pub freed: Notify,
    /// Signalled when the last job in flight finishes.
    pub idle: Notify,
    pub closing: watch::Sender<bool>,
    finish_tx: Mutex<Option<mpsc::UnboundedSender<Finish>>>,
    pub gate: ReadGate,
    contact: Contact,
    /// Fetched jobs not yet handed out, and how many handlers run.
    ready: Mutex<Ready>,
    pub prefetch: Prefetch,
    /// This queue's counters in this process (shared with its other workers).
    pub counters: Arc<Counters>,
    /// Wake-ups from other processes (`signals.rs`); dropped on close.
    listener: Mutex<Option<Listener>>,
    wakers: Arc<Wakers>,
    /// This worker's deadline is the long one of a resting worker (see `maintenance.rs`). Set
    /// before such a heartbeat is sent, under `beating`.
    pub resting: AtomicBool,
    /// Held while a heartbeat that may set the long deadline is in flight.
    pub beating: tokio::sync::Mutex<()>,
    /// Jobs were delivered since the last heartbeat.
    pub delivered: AtomicBool,
    /// Wakes maintenance: a resting worker got jobs.
    pub woke: Notify,
}

impl Shared {
    pub fn new(
        protocol: Arc<AnyProtocol>,
        consumer: Consumer,
        cfg: WorkerConfig,
        dispatch: Arc<dyn Dispatch>,
        finish_tx: mpsc::UnboundedSender<Finish>,
        counters: Arc<Counters>,
        listener: Listener,
    ) -> Self {
        let (floor, max) = cfg.prefetch_range();
        Self {
            protocol,
            consumer,
            cfg,
            dispatch,
            inflight: Mutex::new(Slab::default()),
            freed: Notify::new(),
            idle: Notify::new(),
            closing: watch::channel(false).0,
            finish_tx: Mutex::new(Some(finish_tx)),
            gate: ReadGate::default(),
            contact: Contact::default(),
            ready: Mutex::new(Ready::default()),
            prefetch: Prefetch::new(floor, max),
            counters,
            wakers: listener.wakers.clone(),
            listener: Mutex::new(Some(listener)),
            resting: AtomicBool::new(false),
            beating: tokio::sync::Mutex::new(()),
            delivered: AtomicBool::new(false),
            woke: Notify::new(),
        }
    }

    pub fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// Whether wake-ups from other processes come (else the scheduler and the pause check
    /// poll as often as they must).
    pub fn signalled(&self) -> bool {
        self.listener
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(Listener::live)
    }

    /// Before a resting worker runs the jobs it just fetched: its deadline goes back to one
    /// visibility timeout from now (list mode's heartbeat is the lease of its processing list),
    /// so a crash from here on is noticed that soon. A rest heartbeat in flight is waited for.
    pub async fn stop_resting(&self) {
        if !self.resting.load(Ordering::Acquire) {
            return;
        }
        let _beating = self.beating.lock().await;
        if self.resting.swap(false, Ordering::AcqRel) {
            // an error is maintenance's to report; it beats again at once
            let _ = self.heartbeat(self.cfg.visibility_timeout, false).await;
            self.woke.notify_one();
        }
    }

    /// Unsubscribes (on close).
    pub fn stop_listening(&self) {
        self.listener.lock().unwrap().take();
    }

    /// Writes this worker's heartbeat with a deadline `lease` from now, notes the contact with
    /// Redis, and returns what it learnt (the workers whose deadline passed, ...).
    pub async fn heartbeat(&self, lease: Duration, first: bool) -> Result<Heartbeat> {
        let sent = Instant::now();
        match self
            .protocol
            .common()
            .heartbeat(&self.consumer, lease, first)
            .await
        {
            Ok(hb) => {
                self.contact.heard(sent, hb.server_ms, self.max_gap());
                Ok(hb)
            }
            Err(e) => {
                self.contact.lost();
                Err(e)
            }
        }
    }

    /// Whether this worker may take other workers' jobs now (see [`Contact`]): if so, the
    /// server time after which a recovery request sent now must do nothing. A live worker
    /// renews every third of the lease, so a request that runs within that of being sent, after
    /// a steady run, cannot find a live worker's lease expired.
    pub fn recovery_deadline(&self) -> Option<u64> {
        let slack = self.cfg.renew_every();
        self.contact
            .steady(self.cfg.steady_after(), self.max_gap(), slack)
    }

    /// The longest silence between heartbeat replies that still counts as contact.
    fn max_gap(&self) -> Duration {
        2 * self.cfg.heartbeat_every()
    }

    /// Whether this worker holds jobs (running or prefetched).
    pub fn busy(&self) -> bool {
        self.slab().len() > 0
    }

    pub fn slab(&self) -> std::sync::MutexGuard<'_, Slab> {
        self.inflight.lock().unwrap()
    }

    /// How many more jobs the fetch loop may take: handlers in flight plus the prefetched ones
    /// waiting here for a free handler slot. `at_floor`: count only the configured `prefetch`,
    /// not what adaptive prefetch grew to (for a read that will likely block: jobs arriving
    /// after a lull should be spread over the workers, whatever the rate before the lull).
    pub fn free_slots(&self, at_floor: bool) -> usize {
        (self.cfg.concurrency + self.prefetch.get(at_floor)).saturating_sub(self.slab().len())
    }

    /// On close: prefetched jobs that no handler took yet go back to the queue at once (same
    /// attempt, no delivery counted) instead of delaying the close by running them.
    pub fn release_prefetched(&self) {
        let jobs = std::mem::take(&mut self.ready.lock().unwrap().waiting);
        if jobs.is_empty() {
            return;
        }
        let Some(tx) = self.finisher() else {
            return;
        };
        let mut slab = self.slab();
        for job in jobs {
            if slab.remove(job.token).is_some() {
                let _ = tx.send(Finish::hand_back(job.receipt, job.id, job.attempt));
            }
        }
        if slab.len() == 0 {
            self.idle.notify_waiters();
        }
    }

    /// On a close that stops waiting: the jobs whose handlers still run go back to the queue at
    /// once (same attempt), and their late outcomes are ignored. Returns how many.
    pub fn release_running(&self) -> usize {
        let jobs = self.slab().drain();
        let n = jobs.len();
        self.ready.lock().unwrap().waiting.clear();
        if let Some(tx) = self.finisher() {
            for job in jobs {
                let _ = tx.send(Finish::hand_back(job.receipt, job.id, job.attempt));
            }
        }
        self.idle.notify_waiters();
        n
    }

    /// Takes prefetched jobs for the free handler slots (at most `concurrency` run at once).
    pub fn take_ready(&self, finished: usize) -> Vec<Job> {
        let mut q = self.ready.lock().unwrap();
        q.running = q.running.saturating_sub(finished);
        let n = (self.cfg.concurrency - q.running.min(self.cfg.concurrency)).min(q.waiting.len());
        q.running += n;
        let jobs: Vec<Job> = q.waiting.drain(..n).collect();
        drop(q);
        if !jobs.is_empty() {
            self.slab().start(&jobs);
        }
        jobs
    }

    /// Sets the pause flag; when paused, returns only once its fetch loop is out of any read
    /// (or after ~1 s of trying; a read still running then ends by its own BLOCK): from then
    /// on it reads nothing new. Waits even when the flag was already set: another caller
    /// (maintenance seeing the flag in Redis) may have set it and still be unblocking the read.
    pub async fn apply_pause(&self, paused: bool) {
        const UNBLOCK_TRIES: u32 = 50;
        const UNBLOCK_RETRY: Duration = Duration::from_millis(20);
        self.gate.set_paused(paused);
        if !paused {
            return;
        }
        // Wake the blocking read so it takes nothing more. The read may be sent after an
        // UNBLOCK (they travel on different connections), so repeat until the loop is out of
        // it; the loop checks the flag before its next read.
        for _ in 0..UNBLOCK_TRIES {
            if !self.gate.is_reading() {
                break;
            }
            self.unblock_read().await;
            tokio::time::sleep(UNBLOCK_RETRY).await;
        }
    }

    /// One `CLIENT UNBLOCK` for the fetch loop's connection, if it has one. Best effort: the
    /// callers repeat it, since the read may be sent after it arrives.
    pub async fn unblock_read(&self) {
        if let Some(client) = self.gate.client() {
            self.protocol.common().unblock(client).await;
        }
    }

    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    pub fn dispatch_jobs(&self, jobs: Vec<Job>) {
        if !jobs.is_empty() {
            self.dispatch.jobs(jobs);
        }
    }

    pub fn emit(&self, event: WorkerEvent) {
        match &event {
            WorkerEvent::Dead { .. } => self.counters.dead(1),
            WorkerEvent::Stalled { ids } => self.counters.stalled(ids.len() as u64),
            WorkerEvent::Error(_) => {}
        }
        self.dispatch.event(event);
    }

    /// Reports jobs that went to the dead letters.
    pub fn emit_dead(&self, dead: Vec<Dead>) {
        for Dead { id, reason } in dead {
            self.emit(WorkerEvent::Dead { id, reason });
        }
    }

    /// The way to the acker; `None` once the worker is closing and the acker is draining.
    pub fn finisher(&self) -> Option<mpsc::UnboundedSender<Finish>> {
        self.finish_tx.lock().unwrap().clone()
    }

    /// Closes the way to the acker: it writes what it has and ends.
    pub fn stop_finishing(&self) {
        self.finish_tx.lock().unwrap().take();
    }

    /// Waits until the acker has written everything completed so far (bounded: on a Redis
    /// outage it gives up, and the caller fails and retries later).
    pub async fn flush_acks(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let sent = match self.finisher() {
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

    /// Deliveries left the pending list outside the acker (dead-lettered by recovery): trim
    /// soon, where the mode trims.
    pub fn request_trim(&self) {
        if !self.protocol.trims() {
            return;
        }
        if let Some(tx) = self.finisher() {
            let _ = tx.send(Finish::Trim);
        }
    }

    /// Registers fetched jobs as in flight and hands them out in one batch.
    pub fn deliver(&self, mut jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        self.prefetch.delivered(&jobs);
        self.delivered.store(true, Ordering::Release);
        {
            let mut slab = self.slab();
            for job in &mut jobs {
                job.token = slab.insert(InFlight {
                    receipt: job.receipt.clone(),
                    id: job.id.clone(),
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                    started: None,
                    keep_outcome_ms: job.keep_outcome_ms,
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
