//! Stream mode: jobs are entries of one stream read by the consumer group `workers`. Every
//! Redis operation of this mode is here; `backend.rs` picks between this and `list.rs`.

use redis::Value;

use crate::error::{Error, Result};
use crate::job::{as_str, from_fields, Job, NewJob};
use crate::keys::GROUP;
use crate::queue::{DeadJob, Queue, Stats};
use crate::resp::RespConn;
use crate::worker::{Inner, WorkerEvent};
use crate::{now_ms, scripts};

const RENEW_CHUNK: usize = 1000;

/// The plain path: no `jobId` to deduplicate and no start time (see `Queue::add`).
pub(crate) async fn add(queue: &Queue, jobs: &[NewJob]) -> Result<Vec<String>> {
    let stream = &queue.keys().stream;
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
            .arg(&job.payload);
        let options = job.options().encode();
        if !options.is_empty() {
            cmd.arg("o").arg(options);
        }
    }
    let entry_ids: Vec<String> = queue.query_pipe(stream, &pipe).await?;
    Ok(entry_ids)
}

pub(crate) async fn stats(queue: &Queue) -> Result<Stats> {
    let k = queue.keys();
    let mut call = scripts::STATS.prepare_invoke();
    call.key(&k.stream)
        .key(&k.delayed)
        .key(&k.dead)
        .key(&k.workers)
        .key(&k.meta)
        .arg(GROUP)
        .arg(now_ms());
    let counts: Vec<u64> = queue
        .invoke(
            &format!("{} (or another key of this queue)", k.stream),
            &call,
        )
        .await?;
    Ok(Stats::from_counts(&counts))
}

/// Creates the consumer group (from the first entry, so jobs added before any worker are kept).
pub(crate) async fn ensure_group(inner: &Inner) -> Result<()> {
    let keys = inner.queue.keys();
    let mut conn = inner.queue.worker_conn().await?;
    let res: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await;
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") || e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(Error::from_redis(e, &keys.stream)),
    }
}

pub(crate) fn is_missing_group(err: &Error) -> bool {
    matches!(err, Error::Redis(msg) if msg.contains("NOGROUP"))
}

pub(crate) async fn read(
    inner: &Inner,
    conn: &mut RespConn,
    count: usize,
    block_ms: u64,
) -> Result<Vec<Job>> {
    let stream = &inner.queue.keys().stream;
    conn.xreadgroup(GROUP, &inner.consumer, count, block_ms, stream)
        .await
}

/// One step of the XAUTOCLAIM scan. Returns the claimed jobs and whether the scan has more.
pub(crate) async fn recover(
    inner: &Inner,
    cursor: &mut String,
    count: usize,
) -> Result<(Vec<Job>, bool)> {
    let keys = inner.queue.keys();
    let mut conn = inner.queue.worker_conn().await?;
    let reply: Value = scripts::RECOVER
        .key(&keys.stream)
        .key(&keys.dead)
        .arg(GROUP)
        .arg(&inner.consumer)
        .arg(inner.cfg.visibility_timeout.as_millis() as u64)
        .arg(cursor.as_str())
        .arg(count)
        .arg(inner.cfg.max_deliveries)
        .arg(now_ms())
        .arg(inner.queue.config().dead_max_len)
        .arg(inner.queue.dead_cutoff())
        .invoke_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.stream))?;
    let mut parts = array(reply).into_iter();
    *cursor = parts
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
    if !dead.is_empty() {
        inner.request_trim();
    }
    for id in dead.iter().filter_map(as_str) {
        inner.emit(WorkerEvent::Dead {
            id: id.into_owned(),
            reason: format!(
                "delivered more than maxDeliveries ({}) times",
                inner.cfg.max_deliveries
            ),
        });
    }
    Ok((jobs, cursor.as_str() != "0-0"))
}

pub(crate) async fn ack(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipts: &[String],
) -> Result<()> {
    let stream = &inner.queue.keys().stream;
    redis::cmd("XACK")
        .arg(stream)
        .arg(GROUP)
        .arg(receipts)
        .query_async::<i64>(conn)
        .await
        .map_err(|e| Error::from_redis(e, stream))?;
    Ok(())
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
    scripts::RETRY
        .key(&keys.stream)
        .key(&keys.delayed)
        .arg(GROUP)
        .arg(receipt)
        .arg(id)
        .arg(next_attempt)
        .arg(due_ms)
        .invoke_async::<i64>(conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.stream))?;
    Ok(())
}

/// Returns whether the job was moved (false: it was no longer pending here).
pub(crate) async fn dead(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipt: &str,
    id: &str,
    attempts: u32,
    reason: &str,
) -> Result<bool> {
    let keys = inner.queue.keys();
    let moved: i64 = scripts::DEAD
        .key(&keys.stream)
        .key(&keys.dead)
        .arg(GROUP)
        .arg(receipt)
        .arg(id)
        .arg(attempts)
        .arg(reason)
        .arg(now_ms())
        .arg(inner.queue.config().dead_max_len)
        .arg(inner.queue.dead_cutoff())
        .invoke_async(conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.stream))?;
    Ok(moved == 1)
}

pub(crate) async fn trim(inner: &Inner) -> Result<()> {
    let stream = &inner.queue.keys().stream;
    let mut conn = inner.queue.worker_conn().await?;
    scripts::TRIM
        .key(stream)
        .invoke_async::<i64>(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, stream))?;
    Ok(())
}

/// XCLAIM ... JUSTID resets the idle time of every entry in flight without counting a delivery.
pub(crate) async fn renew(inner: &Inner, receipts: &[String]) -> Result<()> {
    let stream = &inner.queue.keys().stream;
    let mut conn = inner.queue.worker_conn().await?;
    let mut pipe = redis::pipe();
    for chunk in receipts.chunks(RENEW_CHUNK) {
        pipe.cmd("XCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(&inner.consumer)
            .arg(0)
            .arg(chunk)
            .arg("JUSTID")
            .ignore();
    }
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, stream))
}

/// Forgets workers whose heartbeat deadline passed, once nothing is pending for them.
pub(crate) async fn reap(inner: &Inner) -> Result<()> {
    let keys = inner.queue.keys();
    let mut conn = inner.queue.worker_conn().await?;
    scripts::REAP
        .key(&keys.stream)
        .key(&keys.workers)
        .arg(GROUP)
        .arg(now_ms())
        .invoke_async::<i64>(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.workers))?;
    Ok(())
}

/// Drops the heartbeat (entries still pending, if acks failed, are recovered by XAUTOCLAIM
/// all the same), and the consumer if nothing is pending for it any more.
pub(crate) async fn leave(inner: &Inner) -> Result<()> {
    let keys = inner.queue.keys();
    let mut conn = inner.queue.worker_conn().await?;
    redis::cmd("ZREM")
        .arg(&keys.workers)
        .arg(&inner.consumer)
        .query_async::<i64>(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.workers))?;
    let pending: Value = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(1)
        .arg(&inner.consumer)
        .query_async(&mut conn)
        .await
        .unwrap_or(Value::Nil);
    if matches!(&pending, Value::Array(items) if items.is_empty()) {
        let _: redis::RedisResult<i64> = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(&inner.consumer)
            .query_async(&mut conn)
            .await;
    }
    Ok(())
}

pub(crate) fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// A page of dead letters, newest first.
pub(crate) async fn dead_page(queue: &Queue, offset: usize, limit: usize) -> Result<Vec<DeadJob>> {
    let dead = &queue.keys().dead;
    let cmd = redis::cmd("XREVRANGE")
        .arg(dead)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(offset + limit)
        .to_owned();
    let reply: Value = queue.query(dead, &cmd).await?;
    let mut out = Vec::new();
    for entry in array(reply).into_iter().skip(offset) {
        let fields = array(entry)
            .into_iter()
            .nth(1)
            .map(array)
            .unwrap_or_default();
        let mut job = DeadJob::default();
        for pair in fields.chunks_exact(2) {
            let (Some(name), Some(value)) = (as_str(&pair[0]), as_str(&pair[1])) else {
                continue;
            };
            match name.as_ref() {
                "id" => job.id = value.into_owned(),
                "d" => job.payload = value.into_owned(),
                "a" => job.attempts = value.parse().unwrap_or(0),
                "err" => job.error = value.into_owned(),
                "t" => job.failed_at_ms = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        out.push(job);
    }
    Ok(out)
}
