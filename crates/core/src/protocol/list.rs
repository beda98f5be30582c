//! List mode: the reliable two-list queue. Producers LPUSH to `wait`; a worker moves jobs to its
//! own `active:<worker id>` list (one script for a batch, else a blocking BLMOVE) and LREMs them
//! when done. A worker whose heartbeat deadline passes has its whole `active` list returned to
//! `wait` by whichever worker reaps it first; that heartbeat is the only lease.
//!
//! holdfast's own elements are envelopes (`envelope.rs`); any other element is raw data from
//! another producer (a plain `LPUSH jobs '<json>'`).

use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::{
    dead_pairs, job_of_envelope, Common, Consumer, Place, Promoted, Protocol, Reaped, PAGE,
};
use crate::conn::dedicated;
use crate::envelope::{decode, encode};
use crate::error::{Error, Result};
use crate::job::{Job, NewJob, Stats};
use crate::keys::ListKeys;
use crate::scripts;
use crate::util::{job_id_ms, new_job_id, now_ms};

/// How often an idle worker polls a full Redis, which refuses its blocking read.
const FULL_POLL: Duration = Duration::from_millis(100);
/// Jobs at least this large (on average, in the last batch) are fetched with LMOVE: every
/// byte that passes through the fetch script costs Redis ~3 ns of Lua conversions (a 100 KB job
/// ~300 us, against ~25 us for an LMOVE), while for small jobs one script call for the batch is
/// cheaper than a command per job. Measured: `node benchmark/bench.js` cost scenario.
const LARGE_JOB: usize = 1024;
/// LMOVEs per pipelined read.
const LMOVE_BATCH: usize = 64;

/// A list-mode worker's fetch connection, and what its last read saw.
pub struct ListReader {
    conn: MultiplexedConnection,
    /// The last jobs were large: fetch with LMOVE, not the script.
    large: bool,
    /// The last read found the wait list empty: block at once.
    dry: bool,
}

pub struct ListProtocol {
    pub common: Common,
    pub keys: ListKeys,
}

impl Protocol for ListProtocol {
    type Reader = ListReader;

    fn common(&self) -> &Common {
        &self.common
    }

    async fn add(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let ids: Vec<String> = jobs.iter().map(|_| new_job_id()).collect();
        let elements: Vec<Vec<u8>> = jobs
            .iter()
            .zip(&ids)
            .map(|(job, id)| encode(id, 1, 0, &job.options().encode(), &job.payload))
            .collect();
        let wait = &self.keys.wait;
        // One LPUSH with many values is atomic on its own.
        let cmd = redis::cmd("LPUSH").arg(wait).arg(&elements).to_owned();
        self.common.adds.query::<i64>(wait, &cmd).await?;
        Ok(ids)
    }

    async fn add_scripted(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let script = &scripts::LIST_ADD;
        self.common
            .add_scripted(script, &self.keys.wait, false, jobs)
            .await
    }

    /// Two round trips, not atomic: the processing lists to count are known only from the first.
    async fn stats(&self) -> Result<Stats> {
        let k = &self.common.keys;
        let conn = &self.common.conn;
        let mut pipe = redis::pipe();
        pipe.cmd("LLEN").arg(&self.keys.wait);
        pipe.cmd("ZCARD").arg(&k.delayed);
        pipe.cmd("XLEN").arg(&k.dead);
        pipe.cmd("ZCOUNT").arg(&k.workers).arg(now_ms()).arg("+inf");
        pipe.cmd("ZRANGE").arg(&k.workers).arg(0).arg(-1);
        pipe.cmd("HEXISTS").arg(&k.meta).arg("paused");
        pipe.cmd("LINDEX").arg(&self.keys.wait).arg(-1);
        pipe.cmd("HMGET")
            .arg(&k.meta)
            .arg("completed")
            .arg("failed");
        let what = format!("{} (or another key of this queue)", self.keys.wait);
        #[allow(clippy::type_complexity)]
        let (waiting, delayed, dead, workers, ids, paused, next, totals): (
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
            bool,
            Option<Vec<u8>>,
            (Option<u64>, Option<u64>),
        ) = conn.pipe(&what, &pipe).await?;
        let added_ms = next.and_then(|el| job_id_ms(&decode(&el).id));
        // Every registered worker's processing list, the dead-but-not-yet-reaped ones included.
        let mut active = 0;
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("LLEN").arg(self.keys.active(id));
            }
            let lens: Vec<u64> = conn.pipe(&what, &pipe).await?;
            active = lens.iter().sum();
        }
        Ok(Stats {
            waiting,
            active,
            delayed,
            dead,
            workers,
            paused,
            oldest_waiting_ms: added_ms.map(|ms| now_ms().saturating_sub(ms)),
            completed: totals.0.unwrap_or(0),
            failed: totals.1.unwrap_or(0),
            groups: Vec::new(),
        })
    }

    /// The wait list page by page, then every registered worker's processing list.
    async fn locate(&self, id: &str) -> Result<Option<(Place, Job)>> {
        let conn = &self.common.conn;
        let matches = |el: &Vec<u8>| decode(el).id == id;
        let wait = &self.keys.wait;
        let mut start = 0i64;
        loop {
            let cmd = redis::cmd("LRANGE")
                .arg(wait)
                .arg(start)
                .arg(start + PAGE as i64 - 1)
                .to_owned();
            let page: Vec<Vec<u8>> = conn.query(wait, &cmd).await?;
            if let Some(el) = page.iter().find(|el| matches(el)) {
                return Ok(Some((Place::Waiting, job_of_envelope(el.clone()))));
            }
            if page.len() < PAGE {
                break;
            }
            start += PAGE as i64;
        }
        let workers = &self.common.keys.workers;
        let cmd = redis::cmd("ZRANGE").arg(workers).arg(0).arg(-1).to_owned();
        let ids: Vec<String> = conn.query(workers, &cmd).await?;
        for worker in ids {
            let active = self.keys.active(&worker);
            let cmd = redis::cmd("LRANGE").arg(&active).arg(0).arg(-1).to_owned();
            let held: Vec<Vec<u8>> = conn.query(&active, &cmd).await?;
            if let Some(el) = held.into_iter().find(|el| matches(el)) {
                return Ok(Some((Place::Active, job_of_envelope(el))));
            }
        }
        Ok(None)
    }

    /// The consuming end of the wait list (its right), oldest first.
    async fn peek(&self, limit: usize) -> Result<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let wait = &self.keys.wait;
        let cmd = redis::cmd("LRANGE")
            .arg(wait)
            .arg(-(limit as i64))
            .arg(-1)
            .to_owned();
        let elements: Vec<Vec<u8>> = self.common.conn.query(wait, &cmd).await?;
        Ok(elements.into_iter().rev().map(job_of_envelope).collect())
    }

    async fn dead_retry(&self, ids: Option<&[String]>) -> Result<u64> {
        let script = &scripts::LIST_DEAD_RETRY;
        self.common.dead_retry(script, &self.keys.wait, ids).await
    }

    async fn promote(&self, batch: usize, worker: Option<&str>) -> Result<Promoted> {
        let script = &scripts::LIST_PROMOTE;
        self.common
            .promote(script, &self.keys.wait, batch, worker)
            .await
    }

    /// A redis-crate connection of its own: the fetch script and BLMOVE block it.
    async fn connect_reader(&self, block: Duration) -> Result<(ListReader, i64)> {
        let mut conn = dedicated(self.common.conn.endpoint(), block).await?;
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await
            .map_err(|e| Error::from_redis(e, ""))?;
        // a first read of up to 64 with LMOVE costs little if the jobs are small; one script
        // call for a whole prefetch of large ones costs much
        let reader = ListReader {
            conn,
            large: true,
            dry: false,
        };
        Ok((reader, id))
    }

    /// Up to `count` jobs: moved at once when the wait list has them (small jobs with the fetch
    /// script, large ones with pipelined LMOVEs: see [`ListReader`]), else one BLMOVE that
    /// blocks up to `block_ms` (the loop comes back for the rest at once). After a read that
    /// found nothing, the next one blocks at once: an idle worker sends one command per block.
    async fn read(
        &self,
        reader: &mut ListReader,
        c: &Consumer,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Job>> {
        let wait = &self.keys.wait;
        let active = self.keys.active(&c.id);
        let map = |e| Error::from_redis(e, &format!("{wait} or {active}"));
        // Bytes, not String: one element that is not UTF-8 must not wedge the worker.
        let mut elements: Vec<Vec<u8>> = Vec::new();
        if !reader.dry && reader.large {
            let mut pipe = redis::pipe();
            // each reply on its own: what moved before a refusal is ours and must be run
            pipe.ignore_errors();
            for _ in 0..count.min(LMOVE_BATCH) {
                pipe.cmd("LMOVE")
                    .arg(wait)
                    .arg(&active)
                    .arg("RIGHT")
                    .arg("LEFT");
            }
            let replies: Vec<redis::RedisResult<Option<Vec<u8>>>> =
                pipe.query_async(&mut reader.conn).await.map_err(map)?;
            let mut refused = None;
            for reply in replies {
                match reply {
                    Ok(el) => elements.extend(el),
                    Err(e) => refused = refused.or(Some(map(e))),
                }
            }
            match refused {
                None => {}
                // a full Redis refuses LMOVE; the script, which frees first, still moves jobs
                Some(Error::RedisFull(_)) => reader.large = false,
                Some(e) if elements.is_empty() => return Err(e),
                Some(_) => {} // the next read meets it again
            }
        }
        if !reader.dry && !reader.large && elements.is_empty() {
            elements = scripts::LIST_FETCH
                .key(wait)
                .key(&active)
                .arg(count)
                .invoke_async(&mut reader.conn)
                .await
                .map_err(map)?;
        }
        if !elements.is_empty() {
            let bytes: usize = elements.iter().map(Vec::len).sum();
            reader.large = bytes / elements.len() >= LARGE_JOB;
        }
        reader.dry = elements.is_empty();
        if elements.is_empty() {
            let secs = Duration::from_millis(block_ms).as_secs_f64();
            let el: Result<Option<Vec<u8>>> = redis::cmd("BLMOVE")
                .arg(wait)
                .arg(&active)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(format!("{secs:.3}"))
                .query_async(&mut reader.conn)
                .await
                .map_err(map);
            match el {
                Ok(el) => {
                    // a job arrived: the next read takes what followed it without blocking
                    reader.dry = el.is_none();
                    elements.extend(el)
                }
                // A full Redis refuses BLMOVE (it may grow memory) but not the fetch script,
                // which writes first: poll with that until memory is freed.
                Err(Error::RedisFull(_)) => {
                    reader.dry = false; // the fetch script next, which a full Redis allows
                    tokio::time::sleep(Duration::from_millis(block_ms).min(FULL_POLL)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(elements.into_iter().map(job_of_envelope).collect())
    }

    async fn listed(&self, c: &Consumer) -> Result<Option<Vec<Vec<u8>>>> {
        self.listed_now(c).await.map(Some)
    }

    async fn return_orphans(
        &self,
        c: &Consumer,
        listed: Vec<Vec<u8>>,
        held: Vec<Bytes>,
    ) -> Result<u64> {
        let mut holding: HashMap<&[u8], usize> = HashMap::new();
        for el in &held {
            *holding.entry(&el[..]).or_default() += 1;
        }
        let orphans: Vec<&Vec<u8>> = listed
            .iter()
            .filter(|el| match holding.get_mut(el.as_slice()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            })
            .collect();
        if orphans.is_empty() {
            return Ok(0);
        }
        let active = self.keys.active(&c.id);
        let mut call = scripts::LIST_RETURN_ORPHANS.prepare_invoke();
        call.key(&active).key(&self.keys.wait).arg(orphans);
        self.common.conn.invoke(&active, &call).await
    }

    async fn ack(&self, c: &Consumer, receipts: &[Bytes]) -> Result<()> {
        let active = self.keys.active(&c.id);
        let mut pipe = redis::pipe();
        // -1: search from the tail, where the oldest deliveries sit (jobs finish roughly in order).
        for el in receipts {
            pipe.cmd("LREM").arg(&active).arg(-1).arg(&el[..]).ignore();
        }
        self.common.conn.pipe(&active, &pipe).await
    }

    async fn retry(
        &self,
        c: &Consumer,
        receipt: &[u8],
        id: &str,
        next_attempt: u32,
        due_ms: u64,
    ) -> Result<()> {
        let active = self.keys.active(&c.id);
        let env = decode(receipt);
        let next = encode(id, next_attempt, env.recoveries, env.options, env.payload);
        let mut call = scripts::LIST_RETRY.prepare_invoke();
        call.key(&active)
            .key(&self.keys.wait)
            .key(&self.common.keys.delayed)
            .arg(receipt)
            .arg(next)
            .arg(due_ms)
            .arg(&self.common.keys.events);
        self.common.conn.invoke::<i64>(&active, &call).await?;
        Ok(())
    }

    async fn dead(
        &self,
        c: &Consumer,
        receipt: &[u8],
        id: &str,
        attempts: u32,
        reason: &str,
    ) -> Result<bool> {
        let active = self.keys.active(&c.id);
        let env = decode(receipt);
        let call = self.dead_call(
            &active,
            receipt,
            id,
            env.payload,
            attempts,
            reason,
            env.options,
        );
        let moved: i64 = self.common.conn.invoke(&active, &call).await?;
        Ok(moved == 1)
    }

    /// Returns dead workers' processing lists to `wait` (counting a recovery per element;
    /// poison elements go to `dead`). Exactly once per dead worker, however many reapers race:
    /// the script checks and removes the worker atomically.
    async fn reap(&self, c: &Consumer, overdue: &[String], not_after: u64) -> Result<Reaped> {
        let k = &self.common.keys;
        let conn = &self.common.conn;
        let mut reaped = Reaped::default();
        for worker in overdue.iter().filter(|w| **w != c.id) {
            let active = self.keys.active(worker);
            let mut call = scripts::LIST_REAP.prepare_invoke();
            call.key(&k.workers)
                .key(&active)
                .key(&self.keys.wait)
                .key(&k.dead)
                .key(&k.outcomes)
                .arg(worker)
                .arg(c.max_deliveries)
                .arg(self.common.dead.max_len)
                .arg(self.common.dead.cutoff())
                .arg(not_after)
                .arg(&k.outcome_prefix);
            let res: Option<(Vec<String>, Vec<redis::Value>)> = conn.invoke(&active, &call).await?;
            if let Some((requeued, dead)) = res {
                reaped.stalled.extend(requeued);
                reaped.dead.extend(dead_pairs(&dead));
            }
        }
        Ok(reaped)
    }

    /// The heartbeat may go only when the processing list is empty. If acks failed during
    /// close, it stays, its deadline passes, and a reaper returns what is left to `wait`.
    async fn leave(&self, c: &Consumer) -> Result<bool> {
        Ok(self.listed_now(c).await?.is_empty())
    }
}

impl ListProtocol {
    async fn listed_now(&self, c: &Consumer) -> Result<Vec<Vec<u8>>> {
        let active = self.keys.active(&c.id);
        let cmd = redis::cmd("LRANGE").arg(&active).arg(0).arg(-1).to_owned();
        self.common.conn.query(&active, &cmd).await
    }

    /// `list_dead.lua` for one delivery.
    #[allow(clippy::too_many_arguments)]
    fn dead_call(
        &self,
        active: &str,
        element: &[u8],
        id: &str,
        payload: &[u8],
        attempts: u32,
        reason: &str,
        options: &str,
    ) -> redis::ScriptInvocation<'static> {
        let dead = &self.common.dead;
        let mut call = scripts::LIST_DEAD.prepare_invoke();
        call.key(active)
            .key(&self.common.keys.dead)
            .key(&self.common.keys.outcomes)
            .arg(element)
            .arg(id)
            .arg(payload)
            .arg(attempts)
            .arg(reason)
            .arg(now_ms())
            .arg(dead.max_len)
            .arg(dead.cutoff())
            .arg(options)
            .arg(&self.common.keys.outcome_prefix);
        call
    }
}
