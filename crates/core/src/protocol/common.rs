//! What every mode shares: the queue-wide keys (heartbeats, the pause flag, the dead letters,
//! the `delayed` zset), the connection and the dead-letter limits. The scripts shared by both
//! modes (`add`, `promote`, `dead_retry`) are run from here with the mode's own copy.

use bytes::Bytes;
use redis::{Script, Value};

use super::{job_of_envelope, Consumer, DeadPolicy, Promoted, PAGE};
use crate::conn::Conn;
use crate::envelope::JobOptions;
use crate::error::Result;
use crate::job::{array, as_bytes, as_str, text, DeadJob, Job, NewJob};
use crate::keys::QueueKeys;
use crate::scripts;
use crate::util::{new_job_id, now_ms};

/// What a heartbeat learnt: the server's clock, the workers whose deadline passed, and what
/// tells a worker whether it may beat rarely (idle) or must keep looking.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Unix ms by the Redis server's clock.
    pub server_ms: u64,
    pub overdue: Vec<String>,
    /// The queue's paused flag.
    pub paused: bool,
    /// The earliest deadline of another worker that has not passed (server unix ms).
    pub next_deadline: Option<u64>,
    /// Stream mode: entries pending in the group (delivered, not acknowledged).
    pub pending: Option<u64>,
}

pub struct Common {
    pub keys: QueueKeys,
    pub(crate) conn: Conn,
    /// Adds only: `conn`, or with the `durable` option a connection of their own.
    pub(crate) adds: Conn,
    pub(crate) dead: DeadPolicy,
    /// An add with a `jobId` seen within this window adds nothing.
    pub(crate) dedup_window: std::time::Duration,
    /// `stream` or `list`: recorded in `meta` by a worker's first heartbeat, for tools that find
    /// an idle queue (no key of either mode left).
    pub(crate) mode: &'static str,
    /// Stream mode's stream: heartbeats count its group's pending entries.
    pub(crate) stream: Option<crate::keys::StreamKeys>,
}

impl Common {
    /// Registers or renews a worker: its deadline is `lease` from now, in the server's time. A
    /// worker silent past it is dead, and its jobs go to others. Returns the server's time, the
    /// workers whose deadline passed (never `c`), for [`super::Protocol::reap`], and the rest of
    /// [`Heartbeat`]. `first`: record the mode in `meta` too.
    pub async fn heartbeat(
        &self,
        c: &Consumer,
        lease: std::time::Duration,
        first: bool,
    ) -> Result<Heartbeat> {
        let workers = &self.keys.workers;
        let mut call = scripts::HEARTBEAT.prepare_invoke();
        call.key(workers)
            .key(&self.keys.meta)
            .arg(&c.id)
            .arg(lease.as_millis() as u64)
            .arg(if first { self.mode } else { "" });
        if let Some(stream) = &self.stream {
            call.key(&stream.stream).arg(&stream.group);
        }
        let reply: Vec<String> = self.conn.invoke(workers, &call).await?;
        let num = |i: usize| -> i64 { reply.get(i).and_then(|v| v.parse().ok()).unwrap_or(-1) };
        Ok(Heartbeat {
            server_ms: num(0).max(0) as u64,
            paused: num(1) == 1,
            next_deadline: u64::try_from(num(2)).ok(),
            pending: u64::try_from(num(3)).ok(),
            overdue: reply.into_iter().skip(4).collect(),
        })
    }

    /// Drops a worker's heartbeat (after [`super::Protocol::leave`] said it may go).
    pub async fn unregister(&self, c: &Consumer) -> Result<()> {
        let workers = &self.keys.workers;
        let cmd = redis::cmd("ZREM").arg(workers).arg(&c.id).to_owned();
        self.conn.query::<i64>(workers, &cmd).await?;
        Ok(())
    }

    /// Stops or restarts fetching in every worker of the queue, and tells them at once on the
    /// queue's channel (best effort: each also reads the flag with its heartbeats).
    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        let meta = &self.keys.meta;
        let cmd = match paused {
            true => redis::cmd("HSET").arg(meta).arg("paused").arg(1).to_owned(),
            false => redis::cmd("HDEL").arg(meta).arg("paused").to_owned(),
        };
        self.conn.query::<i64>(meta, &cmd).await?;
        let publish = redis::cmd("PUBLISH")
            .arg(&self.keys.events)
            .arg("p")
            .to_owned();
        // an ACL without channels refuses it; workers then find the flag by polling
        let _ = self.conn.query::<i64>(meta, &publish).await;
        Ok(())
    }

    pub async fn is_paused(&self) -> Result<bool> {
        let meta = &self.keys.meta;
        let cmd = redis::cmd("HEXISTS").arg(meta).arg("paused").to_owned();
        self.conn.query(meta, &cmd).await
    }

    /// Records the outcomes of completed jobs that keep theirs, as `lua/lib/dead.lua`
    /// `hf_outcome` does for dead ones: `outcome:<id>` for `keep_ms`, then the id on the
    /// `outcomes` stream that `waitFor` reads (key first, so a reader never finds the id
    /// without the key).
    pub(crate) async fn record_outcomes(&self, outcomes: &[crate::job::KeptOutcome]) -> Result<()> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        for o in outcomes {
            pipe.cmd("SET")
                .arg(k.outcome(&o.id))
                .arg(&o.record)
                .arg("PX")
                .arg(o.keep_ms)
                .ignore();
        }
        // an entry per 100 jobs, a field `id` each (a stream entry may repeat a field name): the
        // stream, capped near 1000 entries, holds at most ~100 000 recent ids
        for chunk in outcomes.chunks(100) {
            let entry = pipe
                .cmd("XADD")
                .arg(&k.outcomes)
                .arg("MAXLEN")
                .arg("~")
                .arg(1000)
                .arg("*");
            for o in chunk {
                entry.arg("id").arg(&o.id);
            }
            entry.ignore();
        }
        self.conn.pipe(&k.outcomes, &pipe).await
    }

    /// Adds to the queue-wide totals of finished jobs (`meta` fields `completed`, `failed`),
    /// which every process's workers feed: the rates that `holdfast watch` and the dashboard
    /// show.
    pub async fn add_totals(&self, completed: u64, failed: u64) -> Result<()> {
        let meta = &self.keys.meta;
        let mut pipe = redis::pipe();
        for (field, n) in [("completed", completed), ("failed", failed)] {
            if n > 0 {
                pipe.cmd("HINCRBY").arg(meta).arg(field).arg(n).ignore();
            }
        }
        if pipe.is_empty() {
            return Ok(());
        }
        self.conn.pipe(meta, &pipe).await
    }

    /// One `CLIENT UNBLOCK` for a blocked read. Best effort: the read may be sent after it
    /// arrives, so callers repeat it while it matters.
    pub async fn unblock(&self, client_id: i64) {
        let cmd = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(client_id)
            .to_owned();
        let _ = self.conn.query::<i64>("", &cmd).await;
    }

    /// A page of the dead letters, newest first.
    pub async fn dead_page(&self, offset: usize, limit: usize) -> Result<Vec<DeadJob>> {
        let dead = &self.keys.dead;
        let cmd = redis::cmd("XREVRANGE")
            .arg(dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(offset + limit)
            .to_owned();
        let reply: Value = self.conn.query(dead, &cmd).await?;
        Ok(dead_entries(reply)
            .into_iter()
            .skip(offset)
            .map(|(_, job)| job)
            .collect())
    }

    /// The newest dead letter of job `id`: read page by page, newest first (O(dead letters)
    /// when it is not there).
    pub async fn dead_find(&self, id: &str) -> Result<Option<DeadJob>> {
        let dead = &self.keys.dead;
        let mut from = "+".to_owned();
        loop {
            let cmd = redis::cmd("XREVRANGE")
                .arg(dead)
                .arg(&from)
                .arg("-")
                .arg("COUNT")
                .arg(PAGE)
                .to_owned();
            let reply: Value = self.conn.query(dead, &cmd).await?;
            let page = dead_entries(reply);
            let full = page.len() == PAGE;
            for (entry_id, job) in page {
                if job.id == id {
                    return Ok(Some(job));
                }
                from = format!("({entry_id}");
            }
            if !full {
                return Ok(None);
            }
        }
    }

    /// The delayed job `id` (waiting for its start time or a retry backoff), and when it is
    /// due: ZSCAN with a pattern on the envelope's id (O(delayed jobs)).
    pub async fn delayed_find(&self, id: &str) -> Result<Option<(Job, u64)>> {
        let delayed = &self.keys.delayed;
        let pattern = format!("*|{}|{}*", id.len(), crate::keys::glob_escape(id));
        let mut cursor = 0u64;
        loop {
            let cmd = redis::cmd("ZSCAN")
                .arg(delayed)
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PAGE)
                .to_owned();
            let (next, pairs): (u64, Vec<Vec<u8>>) = self.conn.query(delayed, &cmd).await?;
            for pair in pairs.chunks_exact(2) {
                let env = crate::envelope::decode(&pair[0]);
                if env.id == id {
                    let due = text(&pair[1]).parse::<f64>().unwrap_or(0.0) as u64;
                    return Ok(Some((job_of_envelope(pair[0].clone()), due)));
                }
            }
            if next == 0 {
                return Ok(None);
            }
            cursor = next;
        }
    }

    /// Deletes every dead letter. Returns how many there were.
    pub async fn dead_purge(&self) -> Result<u64> {
        let dead = &self.keys.dead;
        let mut call = scripts::DEAD_PURGE.prepare_invoke();
        call.key(dead);
        self.conn.invoke(dead, &call).await
    }

    /// Runs `add.lua` (the mode's copy) into `target`. `entry_ids`: a job added now without a
    /// `jobId` takes the id Redis gives it (a stream entry id); otherwise every job gets one here.
    pub(super) async fn add_scripted(
        &self,
        script: &Script,
        target: &str,
        entry_ids: bool,
        jobs: &[NewJob],
    ) -> Result<Vec<String>> {
        let k = &self.keys;
        let now = now_ms();
        let mut ids = Vec::with_capacity(jobs.len());
        let mut call = script.prepare_invoke();
        call.key(target).key(&k.delayed);
        for job in jobs {
            if let Some(id) = &job.job_id {
                call.key(k.dedup(id));
            }
        }
        call.arg(now)
            .arg(self.dedup_window.as_millis() as u64)
            .arg(&k.events);
        for job in jobs {
            let due = job.run_at_ms.filter(|&t| t > now).unwrap_or(0);
            let id = match (&job.job_id, entry_ids && due == 0) {
                (Some(id), _) => id.clone(),
                (None, true) => String::new(),
                (None, false) => new_job_id(),
            };
            call.arg(u8::from(job.job_id.is_some()))
                .arg(due)
                .arg(&id)
                .arg(job.options().encode())
                .arg(&job.payload[..]);
            ids.push(id);
        }
        let (_, entries): (Vec<u8>, Vec<String>) = self.adds.invoke(target, &call).await?;
        Ok(ids
            .into_iter()
            .zip(entries)
            .map(|(id, entry)| if id.is_empty() { entry } else { id })
            .collect())
    }

    /// Runs `promote.lua` (the mode's copy) into `target`.
    pub(super) async fn promote(
        &self,
        script: &Script,
        target: &str,
        batch: usize,
        worker: Option<&str>,
    ) -> Result<Promoted> {
        let k = &self.keys;
        let mut call = script.prepare_invoke();
        call.key(&k.delayed)
            .key(target)
            .key(&k.scheduler)
            .key(&k.workers)
            .arg(now_ms())
            .arg(batch)
            .arg(worker.unwrap_or(""));
        let (moved, next, held): (usize, i64, u64) = self.conn.invoke(&k.delayed, &call).await?;
        Ok(Promoted {
            moved,
            next_due: u64::try_from(next).ok(),
            held_elsewhere: (held > 0).then(|| std::time::Duration::from_millis(held)),
        })
    }

    /// Gives up the scheduler lease if `worker` holds it, waking the queue's other workers.
    pub async fn release_scheduler(&self, worker: &str) -> Result<()> {
        let k = &self.keys;
        let mut call = scripts::SCHEDULER_RELEASE.prepare_invoke();
        call.key(&k.scheduler).arg(worker).arg(&k.events);
        let _: i64 = self.conn.invoke(&k.scheduler, &call).await?;
        Ok(())
    }

    /// Runs `dead_retry.lua` (the mode's copy) into `target`.
    pub(super) async fn dead_retry(
        &self,
        script: &Script,
        target: &str,
        ids: Option<&[String]>,
    ) -> Result<u64> {
        let dead = &self.keys.dead;
        let mut call = script.prepare_invoke();
        // stream mode: the jobs go back as this group's only
        let group = self.stream.as_ref().map_or("", |s| s.group.as_str());
        call.key(dead).key(target).arg(group);
        match ids {
            None => call.arg("all"),
            Some(ids) => call.arg("ids").arg(ids),
        };
        self.conn.invoke(dead, &call).await
    }
}

/// Dead-letter entries (`id d a o err t`) of an XRANGE / XREVRANGE reply, with their entry ids.
fn dead_entries(reply: Value) -> Vec<(String, DeadJob)> {
    let mut out = Vec::new();
    for entry in array(reply) {
        let mut parts = array(entry).into_iter();
        let entry_id = parts
            .next()
            .and_then(|id| as_str(&id).map(|s| s.into_owned()))
            .unwrap_or_default();
        let fields = parts.next().map(array).unwrap_or_default();
        let mut job = DeadJob::default();
        for pair in fields.chunks_exact(2) {
            let (Some(name), Some(value)) = (as_str(&pair[0]), as_bytes(&pair[1])) else {
                continue;
            };
            match name.as_ref() {
                "id" => job.id = text(&value),
                "d" => job.payload = Bytes::copy_from_slice(&value),
                "a" => job.attempts = text(&value).parse().unwrap_or(0),
                "o" => job.binary = JobOptions::decode(&text(&value)).binary,
                "err" => job.error = text(&value),
                "t" => job.failed_at_ms = text(&value).parse().unwrap_or(0),
                _ => {}
            }
        }
        out.push((entry_id, job));
    }
    out
}
