//! Stream mode: jobs are entries of one stream read by one consumer group (`workers` unless the
//! queue names another; other groups may read the same stream). A delivery
//! is an entry in the group's pending list; its lease is its idle time there, renewed with
//! `XCLAIM ... JUSTID`; expired ones are claimed with `XAUTOCLAIM`. Finished entries leave the
//! stream by trimming to a safe low-water mark (`stream_trim.lua`).

use bytes::Bytes;
use std::time::Duration;

use redis::Value;

use super::{
    dead_pairs, Common, Consumer, Cursor, Place, Promoted, Protocol, Reaped, Recovered, PAGE,
};
use crate::config::GroupStart;
use crate::error::{Error, Result};
use crate::job::{array, as_str, from_fields, Job, NewJob, Stats};
use crate::keys::StreamKeys;
use crate::resp::RespConn;
use crate::scripts;
use crate::util::now_ms;

/// Entries per XCLAIM when renewing leases.
const RENEW_CHUNK: usize = 1000;

/// `stats().waiting` of a group whose lag Redis does not know (Redis 6.2, or entries deleted
/// from the middle) while other groups share the stream: the entries after its position are
/// counted one by one, up to this many.
const WAITING_COUNT_CAP: usize = 10_000;

/// Stream mode's fetch connection: `resp.rs`, since this reply is the hottest one in the system.
pub struct StreamReader(RespConn);

pub struct StreamProtocol {
    pub common: Common,
    pub keys: StreamKeys,
    /// Where the group starts when this queue creates it.
    pub group_start: GroupStart,
}

impl Protocol for StreamProtocol {
    type Reader = StreamReader;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn add(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let stream = &self.keys.stream;
        let mut pipe = redis::pipe();
        if jobs.len() > 1 {
            pipe.atomic();
        }
        for job in jobs {
            let cmd = pipe
                .cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("d")
                .arg(&job.payload[..]);
            let options = job.options().encode();
            if !options.is_empty() {
                cmd.arg("o").arg(options);
            }
        }
        self.common.adds.pipe(stream, &pipe).await
    }

    async fn add_scripted(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let script = &scripts::STREAM_ADD;
        self.common
            .add_scripted(script, &self.keys.stream, true, jobs)
            .await
    }

    async fn stats(&self) -> Result<Stats> {
        let k = &self.common.keys;
        let mut call = scripts::STREAM_STATS.prepare_invoke();
        call.key(&self.keys.stream)
            .key(&k.delayed)
            .key(&k.dead)
            .key(&k.workers)
            .key(&k.meta)
            .arg(&self.keys.group)
            .arg(now_ms())
            .arg(WAITING_COUNT_CAP);
        let what = format!("{} (or another key of this queue)", self.keys.stream);
        let reply: Value = self.common.conn.invoke(&what, &call).await?;
        Ok(Stats::from_reply(reply))
    }

    /// The stream page by page: an entry after the group's last delivered one waits; one at or
    /// before it is active while pending (else finished and not yet trimmed: read on, a retry
    /// is a newer entry).
    async fn locate(&self, id: &str) -> Result<Option<(Place, Job)>> {
        let stream = &self.keys.stream;
        let conn = &self.common.conn;
        let Some(last) = self.last_delivered().await? else {
            return Ok(None);
        };
        let last = entry_order(&last);
        let mut from = "-".to_owned();
        loop {
            let cmd = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .to_owned();
            let page = entries(conn.query(stream, &cmd).await?);
            let full = page.len() == PAGE;
            for job in page {
                let entry = String::from_utf8_lossy(&job.receipt).into_owned();
                from = format!("({entry}");
                if job.id != id || !self.is_ours(&job) {
                    continue;
                }
                if entry_order(&entry) > last {
                    return Ok(Some((Place::Waiting, job)));
                }
                let cmd = redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(&self.keys.group)
                    .arg(&entry)
                    .arg(&entry)
                    .arg(1)
                    .to_owned();
                let pending: Value = conn.query(stream, &cmd).await?;
                if !array(pending).is_empty() {
                    return Ok(Some((Place::Active, job)));
                }
            }
            if !full {
                return Ok(None);
            }
        }
    }

    /// The entries after the group's last delivered one (all of them before any worker made
    /// the group). Two reads, not atomic: a job read meanwhile may still be listed.
    async fn peek(&self, limit: usize) -> Result<Vec<Job>> {
        let stream = &self.keys.stream;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(last) = self.last_delivered().await? else {
            return Ok(Vec::new());
        };
        let cmd = redis::cmd("XRANGE")
            .arg(stream)
            .arg(format!("({last}"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .to_owned();
        let mut jobs = entries(self.common.conn.query(stream, &cmd).await?);
        jobs.retain(|job| self.is_ours(job));
        Ok(jobs)
    }

    async fn dead_retry(&self, ids: Option<&[String]>) -> Result<u64> {
        let script = &scripts::STREAM_DEAD_RETRY;
        self.common.dead_retry(script, &self.keys.stream, ids).await
    }

    async fn promote(&self, batch: usize, worker: Option<&str>) -> Result<Promoted> {
        let script = &scripts::STREAM_PROMOTE;
        self.common
            .promote(script, &self.keys.stream, batch, worker)
            .await
    }

    /// Creates the consumer group (from the first entry, so jobs added before any worker are
    /// kept), also on a full Redis (`stream_group.lua`).
    async fn prepare(&self) -> Result<()> {
        let stream = &self.keys.stream;
        let mut call = scripts::STREAM_GROUP.prepare_invoke();
        call.key(stream)
            .arg(&self.keys.group)
            .arg(match self.group_start {
                GroupStart::Earliest => "0",
                GroupStart::Latest => "$",
            });
        self.common.conn.invoke::<i64>(stream, &call).await?;
        Ok(())
    }

    fn needs_prepare(&self, err: &Error) -> bool {
        err.is_server_code("NOGROUP")
    }

    async fn connect_reader(&self, block: Duration) -> Result<(StreamReader, i64)> {
        let endpoint = self.common.conn.endpoint();
        let conn = RespConn::connect(endpoint, block + Duration::from_secs(2)).await?;
        let id = conn.client_id;
        Ok((StreamReader(conn), id))
    }

    async fn read(
        &self,
        reader: &mut StreamReader,
        c: &Consumer,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Job>> {
        let mut jobs = reader
            .0
            .xreadgroup(&self.keys.group, &c.id, count, block_ms, &self.keys.stream)
            .await?;
        if jobs.iter().any(|job| !self.is_ours(job)) {
            // another group's retries: acknowledged here, never run (if this fails, they stay
            // pending and recovery drops them the same way; ours are delivered all the same)
            let (ours, others): (Vec<Job>, Vec<Job>) =
                jobs.into_iter().partition(|job| self.is_ours(job));
            let receipts: Vec<Bytes> = others.into_iter().map(|job| job.receipt).collect();
            // and trimmed now: when this group is the last to pass them, no ack of ours may
            // follow to trim them (retries are rare, so this runs rarely)
            if self.ack(c, &receipts).await.is_ok() {
                let _ = self.trim().await;
            }
            jobs = ours;
        }
        Ok(jobs)
    }

    /// One step of the XAUTOCLAIM scan.
    async fn recover(
        &self,
        c: &Consumer,
        cursor: &mut Cursor,
        count: usize,
        not_after: u64,
    ) -> Result<Recovered> {
        let stream = &self.keys.stream;
        let dead = &self.common.dead;
        let mut call = scripts::STREAM_RECOVER.prepare_invoke();
        call.key(stream)
            .key(&self.common.keys.dead)
            .key(&self.common.keys.outcomes)
            .arg(&self.keys.group)
            .arg(&c.id)
            .arg(c.visibility_timeout.as_millis() as u64)
            .arg(&cursor.0)
            .arg(count)
            .arg(c.max_deliveries)
            .arg(now_ms())
            .arg(dead.max_len)
            .arg(dead.cutoff())
            .arg(not_after)
            .arg(&self.common.keys.outcome_prefix);
        let reply: Value = self.common.conn.invoke(stream, &call).await?;
        let mut parts = array(reply).into_iter();
        cursor.0 = parts
            .next()
            .and_then(|v| as_str(&v).map(|s| s.into_owned()))
            .unwrap_or_else(|| "0-0".into());
        let claimed = parts.next().map(array).unwrap_or_default();
        let mut jobs = Vec::with_capacity(claimed.len() / 3);
        for triple in claimed.chunks(3) {
            if let [id, Value::Array(fields), _deliveries] = triple {
                if let Some(id) = as_str(id) {
                    jobs.push(from_fields(id.into_owned(), fields));
                }
            }
        }
        let dead = parts.next().map(array).unwrap_or_default();
        Ok(Recovered {
            jobs,
            dead: dead_pairs(&dead),
            more: cursor.0 != "0-0",
        })
    }

    async fn ack(&self, _c: &Consumer, receipts: &[Bytes]) -> Result<()> {
        let stream = &self.keys.stream;
        let cmd = redis::cmd("XACK")
            .arg(stream)
            .arg(&self.keys.group)
            .arg(receipts.iter().map(|r| &r[..]).collect::<Vec<_>>())
            .to_owned();
        self.common.conn.query::<i64>(stream, &cmd).await?;
        Ok(())
    }

    async fn retry(
        &self,
        _c: &Consumer,
        receipt: &[u8],
        id: &str,
        next_attempt: u32,
        due_ms: u64,
    ) -> Result<()> {
        let stream = &self.keys.stream;
        let mut call = scripts::STREAM_RETRY.prepare_invoke();
        call.key(stream)
            .key(&self.common.keys.delayed)
            .arg(&self.keys.group)
            .arg(receipt)
            .arg(id)
            .arg(next_attempt)
            .arg(due_ms)
            .arg(&self.common.keys.events);
        self.common.conn.invoke::<i64>(stream, &call).await?;
        Ok(())
    }

    async fn dead(
        &self,
        _c: &Consumer,
        receipt: &[u8],
        id: &str,
        attempts: u32,
        reason: &str,
    ) -> Result<bool> {
        let stream = &self.keys.stream;
        let dead = &self.common.dead;
        let mut call = scripts::STREAM_DEAD.prepare_invoke();
        call.key(stream)
            .key(&self.common.keys.dead)
            .key(&self.common.keys.outcomes)
            .arg(&self.keys.group)
            .arg(receipt)
            .arg(id)
            .arg(attempts)
            .arg(reason)
            .arg(now_ms())
            .arg(dead.max_len)
            .arg(dead.cutoff())
            .arg(&self.common.keys.outcome_prefix);
        let moved: i64 = self.common.conn.invoke(stream, &call).await?;
        Ok(moved == 1)
    }

    fn trims(&self) -> bool {
        true
    }

    async fn trim(&self) -> Result<()> {
        let stream = &self.keys.stream;
        let mut call = scripts::STREAM_TRIM.prepare_invoke();
        call.key(stream);
        self.common.conn.invoke::<i64>(stream, &call).await?;
        Ok(())
    }

    /// XCLAIM ... JUSTID resets the idle time of every entry in flight without counting a
    /// delivery.
    async fn renew(&self, c: &Consumer, receipts: &[Bytes]) -> Result<()> {
        let stream = &self.keys.stream;
        let mut pipe = redis::pipe();
        for chunk in receipts.chunks(RENEW_CHUNK) {
            pipe.cmd("XCLAIM")
                .arg(stream)
                .arg(&self.keys.group)
                .arg(&c.id)
                .arg(0)
                .arg(chunk.iter().map(|r| &r[..]).collect::<Vec<_>>())
                .arg("JUSTID")
                .ignore();
        }
        self.common.adds.pipe(stream, &pipe).await
    }

    /// Forgets workers whose heartbeat deadline passed, once nothing is pending for them (their
    /// entries are recovered by XAUTOCLAIM, so nothing comes back to report here).
    /// Forgets dead workers and their consumers once nothing is pending for them (XAUTOCLAIM
    /// takes their entries: their leases expire with them).
    async fn reap(&self, c: &Consumer, overdue: &[String], _not_after: u64) -> Result<Reaped> {
        let workers = &self.common.keys.workers;
        let mut call = scripts::STREAM_REAP.prepare_invoke();
        call.key(&self.keys.stream)
            .key(workers)
            .arg(&self.keys.group);
        for worker in overdue.iter().filter(|w| **w != c.id) {
            call.arg(worker);
        }
        self.common.conn.invoke::<i64>(workers, &call).await?;
        Ok(Reaped::default())
    }

    /// Deletes the consumer if nothing is pending for it any more. Entries still pending (acks
    /// that failed during close) are recovered by XAUTOCLAIM all the same, so the heartbeat may
    /// go either way.
    async fn leave(&self, c: &Consumer) -> Result<bool> {
        let stream = &self.keys.stream;
        let conn = &self.common.conn;
        let cmd = redis::cmd("XPENDING")
            .arg(stream)
            .arg(&self.keys.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&c.id)
            .to_owned();
        let pending: Value = conn.query(stream, &cmd).await.unwrap_or(Value::Nil);
        if matches!(&pending, Value::Array(items) if items.is_empty()) {
            let cmd = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(stream)
                .arg(&self.keys.group)
                .arg(&c.id)
                .to_owned();
            let _ = conn.query::<i64>(stream, &cmd).await;
        }
        Ok(true)
    }
}

impl StreamProtocol {
    /// Whether this group runs the entry: every group runs an entry, except a retry marked as
    /// another group's (`JobOptions::group`).
    fn is_ours(&self, job: &Job) -> bool {
        job.for_group.as_ref().is_none_or(|g| *g == self.keys.group)
    }

    /// The group's last delivered entry id ("0-0" before any worker made the group); None when
    /// the stream does not exist.
    async fn last_delivered(&self) -> Result<Option<String>> {
        let stream = &self.keys.stream;
        let conn = &self.common.conn;
        let exists: bool = conn.query(stream, redis::cmd("EXISTS").arg(stream)).await?;
        if !exists {
            return Ok(None);
        }
        let groups: Value = conn
            .query(stream, redis::cmd("XINFO").arg("GROUPS").arg(stream))
            .await?;
        for g in array(groups) {
            let fields = array(g);
            let field = |name: &str| {
                fields
                    .chunks_exact(2)
                    .find(|p| as_str(&p[0]).as_deref() == Some(name))
                    .and_then(|p| as_str(&p[1]).map(|v| v.into_owned()))
            };
            if field("name").as_deref() == Some(self.keys.group.as_str()) {
                return Ok(Some(
                    field("last-delivered-id").unwrap_or_else(|| "0-0".into()),
                ));
            }
        }
        Ok(Some("0-0".to_owned()))
    }
}

/// The jobs of an XRANGE reply.
fn entries(reply: Value) -> Vec<Job> {
    array(reply)
        .into_iter()
        .filter_map(|e| {
            let mut parts = array(e).into_iter();
            let id = as_str(&parts.next()?)?.into_owned();
            Some(from_fields(id, &array(parts.next()?)))
        })
        .collect()
}

/// A stream entry id as a number pair, to compare ids.
fn entry_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}
