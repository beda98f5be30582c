//! List mode: the reliable two-list queue. Producers LPUSH to `wait`; a worker moves jobs to its
//! own `active:<worker id>` list (a Lua loop of LMOVE, else a blocking BLMOVE) and LREMs them when
//! done. A worker whose heartbeat deadline passes has its whole `active` list returned to `wait`
//! by whichever worker reaps it first. Every Redis operation of this mode is here.
//!
//! holdfast's own elements are envelopes (`envelope.rs`); any other element is raw data from
//! another producer (a plain `LPUSH jobs '<json>'`).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::envelope::{decode, encode, raw_id, JobOptions};
use crate::error::{Error, Result};
use crate::job::{Job, NewJob};
use crate::queue::{DeadJob, Queue, Stats};
use crate::worker::{random_u64, Inner, WorkerEvent};
use crate::{now_ms, scripts};

/// Ids for jobs added without a `jobId`: unique without a round trip, and time-ordered (as
/// strings, until 2059). Base 36 keeps them short: each waiting element carries its id.
pub(crate) fn new_id() -> String {
    let mut id = String::with_capacity(17);
    push_base36(&mut id, now_ms(), 8);
    id.push('-');
    push_base36(&mut id, random_u64() % 36u64.pow(8), 8);
    id
}

/// `n` in base 36, zero-padded to `width` digits.
fn push_base36(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 13];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width {
        i -= 1;
        digits[i] = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII"));
}

/// The plain path: no `jobId` to deduplicate and no start time (see `Queue::add`).
pub(crate) async fn add(queue: &Queue, jobs: &[NewJob]) -> Result<Vec<String>> {
    let ids: Vec<String> = jobs.iter().map(|_| new_id()).collect();
    let elements: Vec<String> = jobs
        .iter()
        .zip(&ids)
        .map(|(job, id)| encode(id, 1, 0, &job.options().encode(), &job.payload))
        .collect();
    let wait = &queue.keys().wait;
    // One LPUSH with many values is atomic on its own.
    let cmd = redis::cmd("LPUSH").arg(wait).arg(&elements).to_owned();
    queue.query::<i64>(wait, &cmd).await?;
    Ok(ids)
}

pub(crate) async fn stats(queue: &Queue) -> Result<Stats> {
    let k = queue.keys();
    let now = now_ms();
    let mut pipe = redis::pipe();
    pipe.cmd("LLEN").arg(&k.wait);
    pipe.cmd("ZCARD").arg(&k.delayed);
    pipe.cmd("LLEN").arg(&k.dead);
    pipe.cmd("ZCOUNT").arg(&k.workers).arg(now).arg("+inf");
    pipe.cmd("ZRANGE").arg(&k.workers).arg(0).arg(-1);
    pipe.cmd("HEXISTS").arg(&k.meta).arg("paused");
    let what = format!("{} (or another key of this queue)", k.wait);
    let (waiting, delayed, dead, workers, ids, paused): (u64, u64, u64, u64, Vec<String>, bool) =
        queue.query_pipe(&what, &pipe).await?;
    // Every registered worker's processing list, the dead-but-not-yet-reaped ones included.
    let mut active = 0;
    if !ids.is_empty() {
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("LLEN").arg(k.active(id));
        }
        let lens: Vec<u64> = queue.query_pipe(&what, &pipe).await?;
        active = lens.iter().sum();
    }
    Ok(Stats {
        waiting,
        active,
        delayed,
        dead,
        workers,
        paused,
    })
}

/// Up to `count` jobs: moved at once when the wait list has them, else one BLMOVE that blocks
/// up to `block_ms` (the loop comes back for the rest at once).
pub(crate) async fn read(
    inner: &Inner,
    conn: &mut MultiplexedConnection,
    count: usize,
    block_ms: u64,
) -> Result<Vec<Job>> {
    let keys = inner.queue.keys();
    let active = keys.active(&inner.consumer);
    let map = |e| Error::from_redis(e, &format!("{} or {active}", keys.wait));
    // Bytes, not String: one element that is not UTF-8 must not wedge the worker.
    let mut elements: Vec<Vec<u8>> = scripts::LIST_FETCH
        .key(&keys.wait)
        .key(&active)
        .arg(count)
        .invoke_async(conn)
        .await
        .map_err(map)?;
    if elements.is_empty() {
        let secs = Duration::from_millis(block_ms).as_secs_f64();
        let el: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&keys.wait)
            .arg(&active)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(format!("{secs:.3}"))
            .query_async(conn)
            .await
            .map_err(map)?;
        elements.extend(el);
    }
    let mut jobs = Vec::with_capacity(elements.len());
    for element in elements {
        match String::from_utf8(element) {
            Ok(text) => jobs.push(to_job(text)),
            Err(e) => reject_binary(inner, conn, e.into_bytes()).await?,
        }
    }
    Ok(jobs)
}

/// Jobs are text (JSON, or any string): an element that is not UTF-8 goes straight to `dead`.
async fn reject_binary(
    inner: &Inner,
    conn: &mut MultiplexedConnection,
    element: Vec<u8>,
) -> Result<()> {
    let keys = inner.queue.keys();
    let active = keys.active(&inner.consumer);
    let id = raw_id(&element);
    let reason = "the element is not UTF-8 text; holdfast jobs are strings (JSON or plain text)";
    let moved: i64 = scripts::LIST_DEAD
        .key(&active)
        .key(&keys.dead)
        .arg(&element)
        .arg(&id)
        .arg(String::from_utf8_lossy(&element).as_ref())
        .arg(1)
        .arg(reason)
        .arg(now_ms())
        .arg(inner.queue.config().dead_max_len)
        .arg(inner.queue.dead_cutoff())
        .arg("")
        .invoke_async(conn)
        .await
        .map_err(|e| Error::from_redis(e, &active))?;
    if moved == 1 {
        inner.emit(WorkerEvent::Dead {
            id,
            reason: reason.into(),
        });
    }
    Ok(())
}

fn to_job(element: String) -> Job {
    let env = decode(&element);
    let opts = JobOptions::decode(env.options);
    let job = Job {
        token: 0,
        id: env.id.into_owned(),
        payload: env.payload.to_owned(),
        attempt: env.attempt.max(1),
        max_attempts: opts.max_attempts,
        backoff: opts.backoff,
        receipt: String::new(),
    };
    Job {
        receipt: element,
        ..job
    }
}

/// Reaps workers whose heartbeat deadline passed: their processing lists go back to `wait`
/// (counting a recovery per element; poison elements go to `dead`). Exactly once per dead
/// worker, however many reapers race (the script checks and removes the worker atomically).
pub(crate) async fn recover(inner: &Inner) -> Result<()> {
    let keys = inner.queue.keys();
    let mut conn = inner.queue.worker_conn().await?;
    let now = now_ms();
    let stale: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(&keys.workers)
        .arg("-inf")
        .arg(format!("({now}"))
        .arg("LIMIT")
        .arg(0)
        .arg(20)
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.workers))?;
    for worker in stale.iter().filter(|w| **w != inner.consumer) {
        let res: Option<(Vec<String>, Vec<String>)> = scripts::LIST_REQUEUE_WORKER
            .key(&keys.workers)
            .key(keys.active(worker))
            .key(&keys.wait)
            .key(&keys.dead)
            .arg(worker)
            .arg(now)
            .arg(inner.cfg.max_deliveries)
            .arg(inner.queue.config().dead_max_len)
            .arg(inner.queue.dead_cutoff())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| Error::from_redis(e, &keys.active(worker)))?;
        let Some((requeued, dead)) = res else {
            continue;
        };
        if !requeued.is_empty() {
            inner.emit(WorkerEvent::Stalled { ids: requeued });
        }
        for id in dead {
            inner.emit(WorkerEvent::Dead {
                id,
                reason: format!(
                    "delivered more than maxDeliveries ({}) times",
                    inner.cfg.max_deliveries
                ),
            });
        }
    }
    Ok(())
}

pub(crate) async fn ack(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipts: &[String],
) -> Result<()> {
    let active = inner.queue.keys().active(&inner.consumer);
    let mut pipe = redis::pipe();
    // -1: search from the tail, where the oldest deliveries sit (jobs finish roughly in order).
    for el in receipts {
        pipe.cmd("LREM").arg(&active).arg(-1).arg(el).ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .map_err(|e| Error::from_redis(e, &active))
}

pub(crate) async fn retry(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipt: &str,
    id: &str,
    next_attempt: u32,
    due_ms: u64,
) -> Result<()> {
    let keys = inner.queue.keys();
    let active = keys.active(&inner.consumer);
    let env = decode(receipt);
    let next = encode(id, next_attempt, env.recoveries, env.options, env.payload);
    scripts::LIST_RETRY
        .key(&active)
        .key(&keys.wait)
        .key(&keys.delayed)
        .arg(receipt)
        .arg(next)
        .arg(due_ms)
        .invoke_async::<i64>(conn)
        .await
        .map_err(|e| Error::from_redis(e, &active))?;
    Ok(())
}

pub(crate) async fn dead(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipt: &str,
    id: &str,
    attempts: u32,
    reason: &str,
) -> Result<bool> {
    let keys = inner.queue.keys();
    let active = keys.active(&inner.consumer);
    let env = decode(receipt);
    let moved: i64 = scripts::LIST_DEAD
        .key(&active)
        .key(&keys.dead)
        .arg(receipt)
        .arg(id)
        .arg(env.payload)
        .arg(attempts)
        .arg(reason)
        .arg(now_ms())
        .arg(inner.queue.config().dead_max_len)
        .arg(inner.queue.dead_cutoff())
        .arg(env.options)
        .invoke_async(conn)
        .await
        .map_err(|e| Error::from_redis(e, &active))?;
    Ok(moved == 1)
}

/// After a reconnect: elements in this worker's processing list that it does not hold are
/// orphans of a lost reply; return them to `wait`. `held` must be taken after `listed` and the
/// acker must have flushed after `held` was taken, so a finished job is never mistaken for one.
pub(crate) async fn reclaim(inner: &Inner, listed: Vec<Vec<u8>>, held: Vec<String>) -> Result<u64> {
    let mut holding: HashMap<&[u8], usize> = HashMap::new();
    for el in &held {
        *holding.entry(el.as_bytes()).or_default() += 1;
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
    let keys = inner.queue.keys();
    let active = keys.active(&inner.consumer);
    let mut conn = inner.queue.worker_conn().await?;
    scripts::LIST_RECLAIM
        .key(&active)
        .key(&keys.wait)
        .arg(orphans)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &active))
}

/// Drops the heartbeat only when the processing list is empty. If acks failed during close,
/// the heartbeat stays, its deadline passes, and a reaper returns what is left to `wait`.
pub(crate) async fn leave(inner: &Inner) -> Result<()> {
    let keys = inner.queue.keys();
    if !listed(inner).await?.is_empty() {
        return Ok(());
    }
    let mut conn = inner.queue.worker_conn().await?;
    redis::cmd("ZREM")
        .arg(&keys.workers)
        .arg(&inner.consumer)
        .query_async::<i64>(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.workers))?;
    Ok(())
}

pub(crate) async fn listed(inner: &Inner) -> Result<Vec<Vec<u8>>> {
    let active = inner.queue.keys().active(&inner.consumer);
    let mut conn = inner.queue.worker_conn().await?;
    redis::cmd("LRANGE")
        .arg(&active)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &active))
}

/// A page of dead letters, newest first.
pub(crate) async fn dead_page(queue: &Queue, offset: usize, limit: usize) -> Result<Vec<DeadJob>> {
    let dead = &queue.keys().dead;
    let mut call = scripts::LIST_DEAD_PAGE.prepare_invoke();
    call.key(dead).arg(offset).arg(limit);
    let flat: Vec<redis::Value> = queue.invoke(dead, &call).await?;
    let text = |v: &redis::Value| {
        crate::job::as_str(v)
            .map(|s| s.into_owned())
            .unwrap_or_default()
    };
    let num = |v: &redis::Value| text(v).parse().unwrap_or(0);
    Ok(flat
        .chunks_exact(5)
        .map(|r| DeadJob {
            id: text(&r[0]),
            payload: text(&r[1]),
            attempts: num(&r[2]) as u32,
            error: text(&r[3]),
            failed_at_ms: num(&r[4]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_short_fixed_width_and_ordered() {
        let mut s = String::new();
        super::push_base36(&mut s, 0, 3);
        assert_eq!(s, "000");
        s.clear();
        super::push_base36(&mut s, 36 * 36 + 35, 2);
        assert_eq!(s, "10z", "wider than width when it must be");
        s.clear();
        super::push_base36(&mut s, u64::MAX, 8);
        assert_eq!(s, "3w5e11264sgsf");
        let a = super::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_id();
        assert_eq!((a.len(), b.len()), (17, 17));
        assert!(a[..8] < b[..8], "{a} then {b}");
    }
}
