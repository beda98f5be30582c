//! Each mode's Redis protocol: what a queue does in Redis, and nothing else. A protocol knows
//! keys, scripts and the connection; it returns what happened as values (jobs read, jobs
//! recovered, stalled ids, dead ids with their reasons) and never emits events or touches a
//! worker's state. The runtime (`runtime/`) decides what to do with them.
//!
//! [`Protocol`] is the contract; [`stream::StreamProtocol`] and [`list::ListProtocol`] implement
//! it, [`AnyProtocol`] picks one per queue (the only place the mode is matched), and
//! [`Common`] holds what every mode shares (heartbeats, the pause flag, dead letters). The
//! contract tests in `tests/protocol.rs` run every operation of every mode against a real
//! redis-server with no worker running.

use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

use crate::envelope::{decode, JobOptions};
use crate::error::{Error, Result};
use crate::job::{as_str, Job, NewJob, Stats};
use crate::util::now_ms;

pub mod any;
mod common;
pub mod list;
pub mod stream;

pub use any::{AnyProtocol, AnyReader};
pub use common::{Common, Heartbeat};

/// Items per round trip when a tool reads a structure page by page.
pub const PAGE: usize = 1000;

/// Where [`Protocol::locate`] found a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Waiting,
    Active,
}

/// The worker calling a consumer-side operation.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Its consumer name in the group and its member in the `workers` zset; unique per process
    /// run, never reused.
    pub id: String,
    /// How long a delivery may go unrenewed before another worker may take it.
    pub visibility_timeout: Duration,
    /// Deliveries of one job (crashes, expired leases) before it goes to `dead`.
    pub max_deliveries: u32,
}

/// Limits of the dead letters, applied on every write.
#[derive(Debug, Clone, Copy)]
pub struct DeadPolicy {
    pub max_len: u64,
    pub max_age: Duration,
}

impl DeadPolicy {
    /// Dead letters failed before this time (unix ms) are dropped.
    pub fn cutoff(&self) -> u64 {
        now_ms().saturating_sub(self.max_age.as_millis() as u64)
    }
}

/// A job that went to the dead letters, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead {
    pub id: String,
    pub reason: String,
}

/// What a recovery step found: jobs whose lease expired, claimed to run here, and poison jobs
/// it dead-lettered instead. `more`: the scan is not finished, call again at once.
#[derive(Debug, Default)]
pub struct Recovered {
    pub jobs: Vec<Job>,
    pub dead: Vec<Dead>,
    pub more: bool,
}

/// What reaping dead workers did: jobs returned to the queue for any worker (by id), and poison
/// jobs dead-lettered instead.
#[derive(Debug, Default)]
pub struct Reaped {
    pub stalled: Vec<String>,
    pub dead: Vec<Dead>,
}

/// Where a recovery scan goes on from; a worker keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub(crate) String);

impl Default for Cursor {
    fn default() -> Self {
        Cursor("0-0".into())
    }
}

/// What one `promote` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    pub moved: usize,
    /// When the next delayed job is due (unix ms).
    pub next_due: Option<u64>,
    /// Another live worker holds the scheduler lease (nothing was moved): at least this long,
    /// until its heartbeat deadline.
    pub held_elsewhere: Option<Duration>,
}

/// One mode's Redis protocol. Producer operations come first, then the consumer side in the
/// order a worker uses them. Operations a mode has no use for have a default that does nothing.
///
/// Every future is `Send`, so the runtime can run them on any tokio worker thread.
pub trait Protocol: Send + Sync + 'static {
    /// The blocking fetch connection of one worker.
    type Reader: Send;

    /// What every mode shares.
    fn common(&self) -> &Common;

    // ---- producers -------------------------------------------------------------------------

    /// Adds jobs without `jobId` or start time in one atomic round trip; returns their ids.
    fn add(&self, jobs: &[NewJob]) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Adds jobs with deduplication and start times, in one script call. A `jobId` seen within
    /// the dedup window adds nothing and still returns that `jobId`.
    fn add_scripted(&self, jobs: &[NewJob]) -> impl Future<Output = Result<Vec<String>>> + Send;

    fn stats(&self) -> impl Future<Output = Result<Stats>> + Send;

    /// The next `limit` jobs workers will be given, in order (read only; a job may be taken
    /// meanwhile). Their tokens are 0.
    fn peek(&self, limit: usize) -> impl Future<Output = Result<Vec<Job>>> + Send;

    /// Where job `id` is among the jobs workers fetch or hold: read page by page (`PAGE` per
    /// round trip), O(waiting + active) when it is in neither. Delayed jobs and dead letters
    /// are `Common`'s (`delayed_find`, `dead_find`).
    fn locate(&self, id: &str) -> impl Future<Output = Result<Option<(Place, Job)>>> + Send;

    /// Moves dead letters back to the queue as fresh jobs: these ids, or all. Returns how many.
    fn dead_retry(&self, ids: Option<&[String]>) -> impl Future<Output = Result<u64>> + Send;

    /// Moves up to `batch` due jobs from `delayed` to where workers fetch them. With `worker`,
    /// only while that worker holds the queue's scheduler lease (taking it when no live worker
    /// does); without, always (tools and tests).
    fn promote(
        &self,
        batch: usize,
        worker: Option<&str>,
    ) -> impl Future<Output = Result<Promoted>> + Send;

    // ---- consumers -------------------------------------------------------------------------

    /// Whatever must exist before the first read (stream mode: the consumer group).
    fn prepare(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// True for an error that [`prepare`](Self::prepare) repairs (a restarted Redis has no
    /// group).
    fn needs_prepare(&self, _err: &Error) -> bool {
        false
    }

    /// A new fetch connection whose reply timeout outlasts `block`, and its CLIENT ID (for
    /// [`Common::unblock`]).
    fn connect_reader(
        &self,
        block: Duration,
    ) -> impl Future<Output = Result<(Self::Reader, i64)>> + Send;

    /// Up to `count` jobs for this consumer, waiting up to `block_ms` when there are none.
    fn read(
        &self,
        reader: &mut Self::Reader,
        c: &Consumer,
        count: usize,
        block_ms: u64,
    ) -> impl Future<Output = Result<Vec<Job>>> + Send;

    /// One step of claiming deliveries whose lease expired, for up to `count` free slots.
    /// `not_after`: as for [`reap`](Self::reap).
    fn recover(
        &self,
        _c: &Consumer,
        _cursor: &mut Cursor,
        _count: usize,
        _not_after: u64,
    ) -> impl Future<Output = Result<Recovered>> + Send {
        async { Ok(Recovered::default()) }
    }

    /// After a reconnect: what Redis says this consumer holds, to compare with what it holds in
    /// memory (`None`: this mode loses nothing with a fetch reply).
    fn listed(&self, _c: &Consumer) -> impl Future<Output = Result<Option<Vec<Vec<u8>>>>> + Send {
        async { Ok(None) }
    }

    /// Returns to the queue the `listed` deliveries that are not `held` (orphans of a lost fetch
    /// reply). `held` must be taken after `listed`, and every ack before it written, so a
    /// finished job is never mistaken for one. Returns how many went back.
    fn return_orphans(
        &self,
        _c: &Consumer,
        _listed: Vec<Vec<u8>>,
        _held: Vec<Bytes>,
    ) -> impl Future<Output = Result<u64>> + Send {
        async { Ok(0) }
    }

    /// Finishes completed deliveries, in one round trip.
    fn ack(&self, c: &Consumer, receipts: &[Bytes]) -> impl Future<Output = Result<()>> + Send;

    /// Finishes a failed delivery and schedules attempt `next_attempt` (at `due_ms`, 0: now).
    fn retry(
        &self,
        c: &Consumer,
        receipt: &[u8],
        id: &str,
        next_attempt: u32,
        due_ms: u64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Finishes a delivery into the dead letters. False: it was no longer this consumer's.
    fn dead(
        &self,
        c: &Consumer,
        receipt: &[u8],
        id: &str,
        attempts: u32,
        reason: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Whether finished work needs [`trim`](Self::trim) after acks.
    fn trims(&self) -> bool {
        false
    }

    /// Removes finished work that acks left behind.
    fn trim(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Keeps the claims on these deliveries alive (where the heartbeat alone does not).
    fn renew(&self, _c: &Consumer, _receipts: &[Bytes]) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Deals with workers whose heartbeat deadline passed, as a heartbeat named them
    /// ([`Common::heartbeat`]; never `c` itself). Each script checks the deadline again, in the
    /// server's time, so a worker that came back meanwhile is left alone. `not_after` (server
    /// unix ms): a request that runs later is stale and does nothing; Redis stalled, or the
    /// request waited to be read, so live workers may not have renewed their leases yet.
    fn reap(
        &self,
        c: &Consumer,
        overdue: &[String],
        not_after: u64,
    ) -> impl Future<Output = Result<Reaped>> + Send;

    /// Cleans up after a graceful close. True: nothing is left for this consumer in Redis and
    /// its heartbeat may go; false: keep it, so its deadline passes and a reaper takes the rest.
    fn leave(&self, c: &Consumer) -> impl Future<Output = Result<bool>> + Send;
}

/// `{ id, reason, id, reason, ... }` as the scripts reply it, as [`Dead`]s.
fn dead_pairs(flat: &[redis::Value]) -> Vec<Dead> {
    flat.chunks_exact(2)
        .filter_map(|pair| {
            Some(Dead {
                id: as_str(&pair[0])?.into_owned(),
                reason: as_str(&pair[1])?.into_owned(),
            })
        })
        .collect()
}

/// An element as a job: an envelope, or another producer's data (any bytes) as attempt 1.
pub(crate) fn job_of_envelope(element: Vec<u8>) -> Job {
    let receipt = Bytes::from(element);
    let env = decode(&receipt);
    let opts = JobOptions::decode(env.options);
    // the payload is the element's tail: a view of it, not a copy
    let payload = receipt.slice_ref(env.payload);
    Job {
        token: 0,
        id: env.id.into_owned(),
        payload,
        binary: opts.binary,
        attempt: env.attempt.max(1),
        max_attempts: opts.max_attempts,
        backoff: opts.backoff,
        keep_outcome_ms: opts.keep_outcome_ms,
        for_group: opts.group,
        receipt,
    }
}
