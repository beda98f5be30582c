//! The facade: a [`Queue`] checks its options and each job, then hands the work to its mode's
//! protocol; [`Queue::worker`] starts the runtime on the same protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Mode, QueueConfig, WorkerConfig};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::job::{DeadJob, Job, NewJob, Stats};
use crate::metrics::{self, Counters};
use crate::net::Endpoint;
use crate::outcomes::{JobOutcome, Outcomes};
use crate::protocol::Place;
use crate::protocol::{AnyProtocol, Protocol};
use crate::runtime::{Dispatch, Worker};

/// Where a job is, from [`Queue::get_job`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Waiting,
    Active,
    /// Waiting for its start time, or for a retry's backoff.
    Delayed,
    /// Finished, with its outcome recorded (only jobs added with `keep_outcome_ms`).
    Completed,
    /// In the dead letters, or its recorded outcome says so.
    Dead,
    /// Not found: never added, finished without keeping its outcome (or the record expired),
    /// its dead letter trimmed, or moving between two places while it was looked for.
    Unknown,
}

/// What [`Queue::get_job`] found.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub state: JobState,
    /// The job as stored (waiting, active, delayed).
    pub job: Option<Job>,
    /// Its recorded outcome (completed, or dead), for jobs that keep it.
    pub outcome: Option<JobOutcome>,
    /// Its dead letter, when found in the dead letters.
    pub dead: Option<DeadJob>,
    /// When a delayed job is due, unix ms.
    pub due_ms: Option<u64>,
}

/// A queue found under a prefix by [`Queue::find_queues`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundQueue {
    pub name: String,
    /// What its keys say: a `stream` key is stream mode, a `wait` or processing list is list
    /// mode; None when neither exists now (only delayed jobs, dead letters or workers).
    pub mode: Option<Mode>,
}

/// Longest `jobId` accepted.
pub const MAX_JOB_ID_LEN: usize = 256;

pub struct Queue {
    cfg: QueueConfig,
    protocol: Arc<AnyProtocol>,
    outcomes: Outcomes,
    counters: Arc<Counters>,
    closed: AtomicBool,
}

impl Queue {
    /// Validates the configuration and parses the url. Connects lazily, on first use.
    pub fn new(cfg: QueueConfig) -> Result<Arc<Self>> {
        cfg.validate()?;
        let conn = Conn::new(Endpoint::for_queue(&cfg)?);
        let protocol = Arc::new(AnyProtocol::new(&cfg, conn));
        let common = protocol.common();
        let outcomes = Outcomes::new(common.conn.clone(), common.keys.clone());
        let counters = metrics::for_queue(&cfg.url, &cfg.queue_keys().meta);
        Ok(Arc::new(Self {
            cfg,
            protocol,
            outcomes,
            counters,
            closed: AtomicBool::new(false),
        }))
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    /// This queue's Redis protocol: its keys and every operation, for tools and tests that
    /// look below the queue.
    pub fn protocol(&self) -> &AnyProtocol {
        &self.protocol
    }

    /// What this process's workers of this queue did (every `Queue` object for the same url,
    /// prefix, name and consumer group shares them): the counters of `queue.metrics()`.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Adds jobs in one atomic round trip and returns their ids: the `job_id` when one was
    /// given, else a generated one (stream mode: the entry id). Every job is checked before
    /// anything is sent, so one bad job adds none of the batch.
    pub async fn add(&self, jobs: Vec<NewJob>) -> Result<Vec<String>> {
        self.check_open()?;
        for job in &jobs {
            self.check_job(job)?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        if jobs
            .iter()
            .any(|j| j.job_id.is_some() || j.run_at_ms.is_some())
        {
            return self.protocol.add_scripted(&jobs).await;
        }
        self.protocol.add(&jobs).await
    }

    /// Stops fetching in every worker of this queue, in every process (within ~0.2 s plus one
    /// blocking read). Jobs in flight finish; delayed jobs still become due.
    pub async fn pause(&self) -> Result<()> {
        self.check_open()?;
        self.protocol.common().set_paused(true).await
    }

    pub async fn resume(&self) -> Result<()> {
        self.check_open()?;
        self.protocol.common().set_paused(false).await
    }

    /// A page of the dead letters, newest first.
    pub async fn dead_page(&self, offset: usize, limit: usize) -> Result<Vec<DeadJob>> {
        self.check_open()?;
        self.protocol.common().dead_page(offset, limit).await
    }

    /// Moves dead letters back to the queue as fresh jobs (attempt 1): the given job ids, or
    /// all of them. Returns how many moved.
    pub async fn dead_retry(&self, ids: Option<&[String]>) -> Result<u64> {
        self.check_open()?;
        self.protocol.dead_retry(ids).await
    }

    /// Deletes every dead letter. Returns how many there were.
    pub async fn dead_purge(&self) -> Result<u64> {
        self.check_open()?;
        self.protocol.common().dead_purge().await
    }

    /// Server settings that lose jobs or defeat an option (an evicting `maxmemory-policy`,
    /// `durable.fsync` without AOF), read from `INFO`; none when the ACL user lacks `+info`.
    pub async fn server_warnings(&self) -> Result<Vec<crate::ServerWarning>> {
        self.check_open()?;
        crate::server::warnings(&self.protocol.common().conn, &self.cfg).await
    }

    pub async fn stats(&self) -> Result<Stats> {
        self.check_open()?;
        self.protocol.stats().await
    }

    /// The next `limit` jobs workers will be given, oldest first (read only).
    pub async fn peek(&self, limit: usize) -> Result<Vec<crate::Job>> {
        self.check_open()?;
        self.protocol.peek(limit).await
    }

    /// The queues that have keys under this queue's prefix (this queue too, if it has any),
    /// sorted by name, found with SCAN: O(keys under the prefix), for tools, not hot paths.
    /// With `cluster`, only the node that owns this queue's slot is scanned.
    pub async fn find_queues(&self) -> Result<Vec<FoundQueue>> {
        self.check_open()?;
        let conn = &self.protocol.common().conn;
        let prefix = &self.cfg.prefix;
        let pattern = crate::keys::scan_pattern(prefix);
        let mut found = std::collections::BTreeMap::<String, Option<Mode>>::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys) = scan_page(conn, cursor, &pattern).await?;
            for key in &keys {
                let Some((name, part)) = crate::keys::parse_queue_key(prefix, key) else {
                    continue;
                };
                let mode = found.entry(name.to_owned()).or_default();
                match part {
                    "stream" | "g" => *mode = Some(Mode::Stream),
                    "wait" | "active" if mode.is_none() => *mode = Some(Mode::List),
                    _ => {}
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(found
            .into_iter()
            .map(|(name, mode)| FoundQueue { name, mode })
            .collect())
    }

    /// The mode this queue's keys in Redis say it runs in: a `stream` key is stream mode, a
    /// wait list or a processing list is list mode, else the mode its workers recorded in
    /// `meta`; None when nothing tells (then both modes read the same counts). May SCAN the
    /// keyspace: for tools, not hot paths.
    pub async fn detect_mode(&self) -> Result<Option<Mode>> {
        self.check_open()?;
        let conn = &self.protocol.common().conn;
        let (prefix, name) = (&self.cfg.prefix, &self.cfg.name);
        let stream = self.cfg.stream_keys().stream;
        let wait = crate::keys::ListKeys::new(prefix, name, self.cfg.list_key.as_deref()).wait;
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(&stream).cmd("EXISTS").arg(&wait);
        let (has_stream, has_wait): (bool, bool) = conn.pipe(&stream, &pipe).await?;
        if has_stream {
            return Ok(Some(Mode::Stream));
        }
        if has_wait {
            return Ok(Some(Mode::List));
        }
        // an idle queue: what its workers recorded (`heartbeat.lua`)
        let meta = &self.protocol.common().keys.meta;
        let cmd = redis::cmd("HGET").arg(meta).arg("mode").to_owned();
        let recorded: Option<String> = conn.query(meta, &cmd).await?;
        match recorded.as_deref() {
            Some("stream") => return Ok(Some(Mode::Stream)),
            Some("list") => return Ok(Some(Mode::List)),
            _ => {}
        }
        // every job in flight: only processing lists are left
        let pattern = crate::keys::active_pattern(prefix, name);
        let mut cursor = 0u64;
        loop {
            let (next, keys) = scan_page(conn, cursor, &pattern).await?;
            if !keys.is_empty() {
                return Ok(Some(Mode::List));
            }
            if next == 0 {
                return Ok(None);
            }
            cursor = next;
        }
    }

    /// Waits up to `timeout` for job `id` to finish, in any process: its recorded outcome, or
    /// None when it did not come in time. Only jobs added with `keep_outcome_ms` record one.
    pub async fn wait_for(&self, id: &str, timeout: Duration) -> Result<Option<JobOutcome>> {
        self.check_open()?;
        self.outcomes.wait(id, timeout).await
    }

    /// Where job `id` is now, as far as can be told without an index of jobs: its recorded
    /// outcome (O(1)), else the waiting and active jobs, the delayed ones and the dead letters,
    /// read page by page (O(all of them) for a job in none). A snapshot: a job moving between
    /// two of them meanwhile may read as unknown.
    pub async fn get_job(&self, id: &str) -> Result<JobStatus> {
        self.check_open()?;
        let status = |state, job, outcome, dead, due_ms| JobStatus {
            state,
            job,
            outcome,
            dead,
            due_ms,
        };
        if let Some(outcome) = self.outcomes.get(id).await? {
            let state = match outcome {
                JobOutcome::Completed(_) => JobState::Completed,
                JobOutcome::Dead(_) => JobState::Dead,
            };
            return Ok(status(state, None, Some(outcome), None, None));
        }
        if let Some((place, job)) = self.protocol.locate(id).await? {
            let state = match place {
                Place::Waiting => JobState::Waiting,
                Place::Active => JobState::Active,
            };
            return Ok(status(state, Some(job), None, None, None));
        }
        let common = self.protocol.common();
        if let Some((job, due)) = common.delayed_find(id).await? {
            return Ok(status(JobState::Delayed, Some(job), None, None, Some(due)));
        }
        if let Some(dead) = common.dead_find(id).await? {
            return Ok(status(JobState::Dead, None, None, Some(dead), None));
        }
        Ok(status(JobState::Unknown, None, None, None, None))
    }

    fn check_job(&self, job: &NewJob) -> Result<()> {
        if job.payload.len() > self.cfg.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                size: job.payload.len(),
                limit: self.cfg.max_payload_bytes,
            });
        }
        if let Some(id) = &job.job_id {
            if id.is_empty() || id.len() > MAX_JOB_ID_LEN {
                return Err(Error::InvalidArgument(format!(
                    "jobId must be a string of 1 to {MAX_JOB_ID_LEN} bytes"
                )));
            }
        }
        if let Some(b) = &job.backoff {
            if b.is_empty() || b.contains(['|', ';']) {
                return Err(Error::InvalidArgument(
                    "backoff spec must be non-empty and hold no '|' or ';'".into(),
                ));
            }
        }
        if job.max_attempts == Some(0) {
            return Err(Error::InvalidArgument(
                "maxAttempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Starts a worker on this queue. Must be called inside a tokio runtime.
    pub fn worker(&self, cfg: WorkerConfig, dispatch: Arc<dyn Dispatch>) -> Result<Worker> {
        self.check_open()?;
        Worker::start(self.protocol.clone(), cfg, dispatch, self.counters.clone())
    }

    /// Marks the queue closed: every later call fails with [`Error::Closed`]. Workers started
    /// from it should be closed first (the binding does).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// One `SCAN` step: the next cursor (0: done) and the keys matching `pattern`.
async fn scan_page(conn: &Conn, cursor: u64, pattern: &str) -> Result<(u64, Vec<String>)> {
    let cmd = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .to_owned();
    conn.query(pattern, &cmd).await
}
