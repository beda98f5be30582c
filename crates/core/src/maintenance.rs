//! Timers that keep a worker's claims alive, independent of the JS event loop: heartbeats in the
//! `workers` zset (score = the deadline by which the next one must come), lease renewal of every
//! job in flight, and reaping workers whose deadline passed (list mode: returning their jobs).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::fetch::PAUSE_POLL;
use crate::worker::{Inner, WorkerEvent};
use crate::{backend, now_ms};

pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let reap_every = backend::reap_every(&inner);
    let tick = [
        inner.cfg.renew_every(),
        inner.cfg.heartbeat_every(),
        reap_every,
        PAUSE_POLL,
    ]
    .into_iter()
    .min()
    .unwrap_or(PAUSE_POLL);
    let mut next_renew = Instant::now() + inner.cfg.renew_every();
    let mut next_heartbeat = Instant::now();
    let mut next_reap = Instant::now() + reap_every;
    let mut next_pause_check = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_heartbeat {
            next_heartbeat = now + inner.cfg.heartbeat_every();
            report(&inner, heartbeat(&inner).await);
        }
        if now >= next_renew {
            next_renew = now + inner.cfg.renew_every();
            let receipts = inner.inflight.lock().unwrap().receipts();
            if !receipts.is_empty() {
                report(&inner, backend::renew(&inner, &receipts).await);
            }
        }
        if now >= next_pause_check {
            next_pause_check = now + PAUSE_POLL;
            report(&inner, poll_paused(&inner).await);
        }
        if now >= next_reap {
            next_reap = now + reap_every;
            report(&inner, backend::reap(&inner).await);
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Connection errors are reported by the fetch loop; reporting them here too would only repeat.
fn report(inner: &Inner, res: Result<()>) {
    if let Err(e) = res {
        if !e.is_connection() {
            inner.emit(WorkerEvent::Error(e));
        }
    }
}

async fn poll_paused(inner: &Inner) -> Result<()> {
    let meta = &inner.queue.keys().meta;
    let mut conn = inner.queue.worker_conn().await?;
    let paused: bool = redis::cmd("HEXISTS")
        .arg(meta)
        .arg("paused")
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, meta))?;
    let was = inner.paused.swap(paused, Ordering::SeqCst);
    if paused && !was {
        // Wake this worker's blocking read so it takes nothing more. The read may be sent
        // after an UNBLOCK (they travel on different connections), so repeat until the loop
        // is out of it; the loop checks `paused` before its next read.
        for _ in 0..UNBLOCK_TRIES {
            if !inner.reading.load(Ordering::SeqCst) {
                break;
            }
            inner.unblock_read().await;
            tokio::time::sleep(UNBLOCK_RETRY).await;
        }
    }
    Ok(())
}

/// Bounds the unblocking above to ~1 s; a read still running then ends by its own BLOCK.
const UNBLOCK_TRIES: u32 = 50;
const UNBLOCK_RETRY: Duration = Duration::from_millis(20);

/// The deadline is the visibility timeout from now: a worker silent past it is dead, and in
/// list mode its processing list is returned to `wait`.
pub(crate) async fn heartbeat(inner: &Inner) -> Result<()> {
    let keys = inner.queue.keys();
    let mut conn = inner.queue.worker_conn().await?;
    redis::cmd("ZADD")
        .arg(&keys.workers)
        .arg(now_ms() + inner.cfg.visibility_timeout.as_millis() as u64)
        .arg(&inner.consumer)
        .query_async::<i64>(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.workers))?;
    Ok(())
}
