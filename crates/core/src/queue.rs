//! The producer side: adding jobs, counting them, and the shared connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::Client;
use tokio::sync::OnceCell;

use crate::config::{Mode, QueueConfig, WorkerConfig};
use crate::error::{Error, Result};
use crate::job::NewJob;
use crate::keys::QueueKeys;
use crate::worker::{Dispatch, Worker};
use crate::{connection, list, now_ms, scripts, stream};

/// Longest `jobId` accepted.
pub const MAX_JOB_ID_LEN: usize = 256;

/// Counts of one queue, from [`Queue::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Added and not yet delivered to any worker.
    pub waiting: u64,
    /// Delivered and not yet finished (held by a live worker, or by a dead one until recovered).
    pub active: u64,
    pub delayed: u64,
    pub dead: u64,
    /// Workers whose heartbeat deadline has not passed.
    pub workers: u64,
    /// Set by [`Queue::pause`]: workers fetch nothing new.
    pub paused: bool,
}

/// A job in the dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadJob {
    pub id: String,
    /// The encoded data, as added.
    pub payload: String,
    pub attempts: u32,
    pub error: String,
    pub failed_at_ms: u64,
}

impl Stats {
    pub(crate) fn from_counts(counts: &[u64]) -> Self {
        let at = |i: usize| counts.get(i).copied().unwrap_or(0);
        Stats {
            waiting: at(0),
            active: at(1),
            delayed: at(2),
            dead: at(3),
            workers: at(4),
            paused: at(5) == 1,
        }
    }
}

pub struct Queue {
    cfg: QueueConfig,
    keys: QueueKeys,
    client: Client,
    conn: OnceCell<ConnectionManager>,
    closed: AtomicBool,
}

impl Queue {
    /// Validates the configuration and parses the url. Connects lazily, on first use.
    pub fn new(cfg: QueueConfig) -> Result<Arc<Self>> {
        cfg.validate()?;
        let client = connection::client(&cfg.url)?;
        let keys = QueueKeys::new(&cfg.prefix, &cfg.name, cfg.list_key.as_deref());
        Ok(Arc::new(Self {
            cfg,
            keys,
            client,
            conn: OnceCell::new(),
            closed: AtomicBool::new(false),
        }))
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// The shared multiplexed connection; a failed first connect is retried on the next call.
    pub(crate) async fn conn(&self) -> Result<ConnectionManager> {
        self.check_open()?;
        self.worker_conn().await
    }

    /// The same connection without the closed check: a closing worker still acks its last jobs.
    pub(crate) async fn worker_conn(&self) -> Result<ConnectionManager> {
        self.conn
            .get_or_try_init(|| connection::manager(&self.client))
            .await
            .cloned()
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
            return self.add_scripted(&jobs).await;
        }
        match self.cfg.mode {
            Mode::Stream => stream::add(self, &jobs).await,
            Mode::List => list::add(self, &jobs).await,
        }
    }

    /// Adds with deduplication and start times, all in one script call (`add.lua`). A jobId
    /// seen within the dedup window adds nothing and still returns that jobId.
    async fn add_scripted(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let k = &self.keys;
        let stream = self.cfg.mode == Mode::Stream;
        let now = now_ms();
        let mut ids = Vec::with_capacity(jobs.len());
        let mut call = scripts::ADD.prepare_invoke();
        call.key(if stream { &k.stream } else { &k.wait })
            .key(&k.delayed);
        for job in jobs {
            if let Some(id) = &job.job_id {
                call.key(k.dedup(id));
            }
        }
        call.arg(if stream { "stream" } else { "list" })
            .arg(now)
            .arg(self.cfg.dedup_window.as_millis() as u64);
        for job in jobs {
            let due = job.run_at_ms.filter(|&t| t > now).unwrap_or(0);
            // A stream job added now takes its entry id as id, unless it has a jobId.
            let id = match (&job.job_id, stream && due == 0) {
                (Some(id), _) => id.clone(),
                (None, true) => String::new(),
                (None, false) => list::new_id(),
            };
            call.arg(u8::from(job.job_id.is_some()))
                .arg(due)
                .arg(&id)
                .arg(job.options().encode())
                .arg(&job.payload);
            ids.push(id);
        }
        let (_, entries): (Vec<u8>, Vec<String>) = self
            .invoke(if stream { &k.stream } else { &k.wait }, &call)
            .await?;
        Ok(ids
            .into_iter()
            .zip(entries)
            .map(|(id, entry)| if id.is_empty() { entry } else { id })
            .collect())
    }

    /// Stops fetching in every worker of this queue, in every process (within ~0.2 s plus one
    /// blocking read). Jobs in flight finish; delayed jobs still become due.
    pub async fn pause(&self) -> Result<()> {
        let meta = &self.keys.meta;
        let cmd = redis::cmd("HSET").arg(meta).arg("paused").arg(1).to_owned();
        self.query::<i64>(meta, &cmd).await?;
        Ok(())
    }

    pub async fn resume(&self) -> Result<()> {
        let meta = &self.keys.meta;
        let cmd = redis::cmd("HDEL").arg(meta).arg("paused").to_owned();
        self.query::<i64>(meta, &cmd).await?;
        Ok(())
    }

    /// A page of the dead letters, newest first.
    pub async fn dead_list(&self, offset: usize, limit: usize) -> Result<Vec<DeadJob>> {
        self.check_open()?;
        match self.cfg.mode {
            Mode::Stream => stream::dead_page(self, offset, limit).await,
            Mode::List => list::dead_page(self, offset, limit).await,
        }
    }

    /// Moves dead letters back to the queue as fresh jobs (attempt 1): the given job ids, or
    /// all of them. Returns how many moved.
    pub async fn dead_retry(&self, ids: Option<&[String]>) -> Result<u64> {
        let k = &self.keys;
        let (script, target) = match self.cfg.mode {
            Mode::Stream => (&scripts::DEAD_RETRY, &k.stream),
            Mode::List => (&scripts::LIST_DEAD_RETRY, &k.wait),
        };
        let mut call = script.prepare_invoke();
        call.key(&k.dead).key(target);
        match ids {
            None => call.arg("all"),
            Some(ids) => call.arg("ids").arg(ids),
        };
        self.invoke(&k.dead, &call).await
    }

    /// Deletes every dead letter. Returns how many there were.
    pub async fn dead_purge(&self) -> Result<u64> {
        let dead = &self.keys.dead;
        let len = if self.cfg.mode == Mode::Stream {
            "XLEN"
        } else {
            "LLEN"
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd(len)
            .arg(dead)
            .cmd("DEL")
            .arg(dead)
            .ignore();
        let (n,): (u64,) = self.query_pipe(dead, &pipe).await?;
        Ok(n)
    }

    /// Dead letters failed before this time (unix ms) are dropped.
    pub(crate) fn dead_cutoff(&self) -> u64 {
        now_ms().saturating_sub(self.cfg.dead_max_age.as_millis() as u64)
    }

    pub async fn stats(&self) -> Result<Stats> {
        self.check_open()?;
        match self.cfg.mode {
            Mode::Stream => stream::stats(self).await,
            Mode::List => list::stats(self).await,
        }
    }

    /// Runs one command on the shared connection. ConnectionManager keeps a failed reconnect
    /// attempt until a command trips over it, so the first command after an outage fails with
    /// that stale error (and starts a fresh attempt). A refused connection sent nothing, so one
    /// more try is safe, even for XADD.
    pub(crate) async fn run<T, F, Fut>(&self, key: &str, f: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match f(conn.clone()).await {
            Err(e) if e.is_connection_refusal() => f(conn).await,
            other => other,
        }
        .map_err(|e| Error::from_redis(e, key))
    }

    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        key: &str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        self.run(
            key,
            |mut conn| async move { cmd.query_async(&mut conn).await },
        )
        .await
    }

    pub(crate) async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        key: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        self.run(
            key,
            |mut conn| async move { pipe.query_async(&mut conn).await },
        )
        .await
    }

    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &self,
        key: &str,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        self.run(
            key,
            |mut conn| async move { call.invoke_async(&mut conn).await },
        )
        .await
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
    pub fn worker(
        self: &Arc<Self>,
        cfg: WorkerConfig,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Worker> {
        self.check_open()?;
        Worker::start(self.clone(), cfg, dispatch)
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
