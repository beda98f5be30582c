//! The one place that switches on the queue's mode. The worker's tasks (fetch, acker,
//! maintenance) are shared by both modes and call these; `stream.rs` and `list.rs` hold the
//! Redis side of each.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::config::Mode;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::resp::RespConn;
use crate::worker::Inner;
use crate::{connection, list, stream};

/// The fetch loop's own connection. Stream mode reads through `resp.rs` (its reply is the
/// hottest one); list mode's reads are a script and BLMOVE, through the redis crate.
pub(crate) enum FetchConn {
    Stream(RespConn),
    List(MultiplexedConnection),
}

/// A new fetch connection, whose reply timeout outlasts its BLOCK, and its CLIENT ID.
pub(crate) async fn connect(inner: &Inner) -> Result<(FetchConn, i64)> {
    let block = inner.cfg.block;
    match mode(inner) {
        Mode::Stream => {
            let info = inner.queue.client().get_connection_info();
            let conn = RespConn::connect(info, block + Duration::from_secs(2)).await?;
            let id = conn.client_id;
            Ok((FetchConn::Stream(conn), id))
        }
        Mode::List => {
            let mut conn = connection::dedicated(inner.queue.client(), block).await?;
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await
                .map_err(|e| Error::from_redis(e, ""))?;
            Ok((FetchConn::List(conn), id))
        }
    }
}

/// State of the periodic recovery step.
#[derive(Default)]
pub(crate) struct Recovery {
    /// Stream mode: XAUTOCLAIM cursor.
    cursor: Option<String>,
}

/// Jobs claimed by recovery (to run here at once), and whether more remain to scan now.
pub(crate) struct Recovered {
    pub jobs: Vec<Job>,
    pub more: bool,
}

fn mode(inner: &Inner) -> Mode {
    inner.queue.config().mode
}

/// Whatever must exist before the first read (the consumer group).
pub(crate) async fn prepare(inner: &Inner) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::ensure_group(inner).await,
        Mode::List => Ok(()),
    }
}

/// True for an error that `prepare` repairs (a fresh or restarted Redis has no group).
pub(crate) fn needs_prepare(inner: &Inner, err: &crate::Error) -> bool {
    mode(inner) == Mode::Stream && stream::is_missing_group(err)
}

pub(crate) async fn read(
    inner: &Inner,
    conn: &mut FetchConn,
    count: usize,
    block_ms: u64,
) -> Result<Vec<Job>> {
    match conn {
        FetchConn::Stream(c) => stream::read(inner, c, count, block_ms).await,
        FetchConn::List(c) => list::read(inner, c, count, block_ms).await,
    }
}

/// Stream mode claims expired leases for this worker's free slots; list mode returns dead
/// workers' processing lists to `wait`, where any worker picks them up.
pub(crate) async fn recover(inner: &Inner, state: &mut Recovery, free: usize) -> Result<Recovered> {
    match mode(inner) {
        Mode::Stream => {
            let cursor = state.cursor.get_or_insert_with(|| "0-0".into());
            let (jobs, more) = stream::recover(inner, cursor, free).await?;
            Ok(Recovered { jobs, more })
        }
        Mode::List => {
            list::recover(inner).await?;
            Ok(Recovered {
                jobs: Vec::new(),
                more: false,
            })
        }
    }
}

/// After a reconnect: return jobs whose fetch reply was lost. Stream mode needs nothing here:
/// such entries sit in this consumer's pending list, unrenewed, until XAUTOCLAIM takes them.
pub(crate) async fn reclaim(inner: &Inner) -> Result<()> {
    if mode(inner) != Mode::List {
        return Ok(());
    }
    let listed = list::listed(inner).await?;
    let held = inner.inflight.lock().unwrap().receipts();
    inner.flush_acks().await?;
    list::reclaim(inner, listed, held).await?;
    Ok(())
}

pub(crate) async fn ack(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipts: &[String],
) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::ack(inner, conn, receipts).await,
        Mode::List => list::ack(inner, conn, receipts).await,
    }
}

pub(crate) async fn retry(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipt: &str,
    id: &str,
    next_attempt: u32,
    due_ms: u64,
) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::retry(inner, conn, receipt, id, next_attempt, due_ms).await,
        Mode::List => list::retry(inner, conn, receipt, id, next_attempt, due_ms).await,
    }
}

pub(crate) async fn dead(
    inner: &Inner,
    conn: &mut impl redis::aio::ConnectionLike,
    receipt: &str,
    id: &str,
    attempts: u32,
    reason: &str,
) -> Result<bool> {
    match mode(inner) {
        Mode::Stream => stream::dead(inner, conn, receipt, id, attempts, reason).await,
        Mode::List => list::dead(inner, conn, receipt, id, attempts, reason).await,
    }
}

/// Whether finished work needs a cleanup pass after acks (stream mode trims the stream).
pub(crate) fn needs_trim(inner: &Inner) -> bool {
    mode(inner) == Mode::Stream
}

pub(crate) async fn trim(inner: &Inner) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::trim(inner).await,
        Mode::List => Ok(()),
    }
}

/// Keeps the claims on jobs in flight alive. List mode's lease is the heartbeat itself.
pub(crate) async fn renew(inner: &Inner, receipts: &[String]) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::renew(inner, receipts).await,
        Mode::List => Ok(()),
    }
}

/// Deals with workers whose heartbeat deadline passed. Stream mode deletes their consumers
/// (their entries are recovered by XAUTOCLAIM); list mode returns their processing lists to
/// `wait`, where any worker picks the jobs up.
pub(crate) async fn reap(inner: &Inner) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::reap(inner).await,
        Mode::List => list::recover(inner).await,
    }
}

/// List mode reaps as often as stream mode scans for expired leases: a dead worker's jobs run
/// again within ~1.25 x the visibility timeout in both modes.
pub(crate) fn reap_every(inner: &Inner) -> std::time::Duration {
    match mode(inner) {
        Mode::Stream => std::time::Duration::from_secs(15),
        Mode::List => inner.cfg.recover_every(),
    }
}

/// Last step of a graceful close: unregister this worker.
pub(crate) async fn leave(inner: &Inner) -> Result<()> {
    match mode(inner) {
        Mode::Stream => stream::leave(inner).await,
        Mode::List => list::leave(inner).await,
    }
}
