//! The fetch loop, shared by both modes: runs the recovery step when due (recovered jobs go
//! first: they have waited longest), then a blocking read on its own connection for the free
//! slots. On any error it reports, drops the connection, backs off with jitter and tries again;
//! after a reconnect it reclaims jobs whose fetch reply was lost. It ends only on close.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backend::{self, FetchConn, Recovery};
use crate::error::{Error, Result};
use crate::maintenance;
use crate::worker::{random_u64, Inner, WorkerEvent};

/// How often maintenance reads the queue's paused flag, and how often a paused loop looks at it.
pub(crate) const PAUSE_POLL: Duration = Duration::from_millis(200);

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut closing = inner.closing.subscribe();
    let mut conn: Option<FetchConn> = None;
    let mut connected_before = false;
    let mut backoff = Backoff::default();
    let mut recovery = Recovery::default();
    let mut next_recover = Instant::now();
    // The last read found fewer jobs than it asked for: the queue ran dry, so the next read will
    // likely block, and asks for no more than the configured prefetch (see `free_slots`).
    let mut drained = true;

    while !inner.is_closing() {
        if inner.paused.load(Ordering::Acquire) {
            tokio::select! {
                _ = tokio::time::sleep(PAUSE_POLL) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
            continue;
        }
        let free = inner.free_slots(drained);
        if free == 0 {
            let freed = inner.freed.notified();
            if inner.free_slots(drained) == 0 && !inner.is_closing() {
                freed.await;
            }
            continue;
        }

        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&inner, connected_before).await {
                Ok(c) => {
                    connected_before = true;
                    conn.insert(c)
                }
                Err(e) => {
                    fail(&inner, e, &mut conn, &mut backoff, &mut closing).await;
                    continue;
                }
            },
        };

        if Instant::now() >= next_recover {
            match backend::recover(&inner, &mut recovery, free).await {
                Ok(found) => {
                    next_recover = match found.more {
                        true => Instant::now(), // more of the pending list to scan
                        false => Instant::now() + inner.cfg.recover_every(),
                    };
                    if !found.jobs.is_empty() {
                        inner.emit(WorkerEvent::Stalled {
                            ids: found.jobs.iter().map(|j| j.id.clone()).collect(),
                        });
                        inner.deliver(found.jobs);
                    }
                }
                Err(e) => {
                    next_recover = Instant::now() + inner.cfg.recover_every();
                    handle(&inner, e, &mut conn, &mut backoff, &mut closing).await;
                }
            }
            continue;
        }

        let block = inner
            .cfg
            .block
            .min(next_recover.saturating_duration_since(Instant::now()));
        let block_ms = block.as_millis().max(1) as u64;
        inner.reading.store(true, Ordering::SeqCst);
        if inner.paused.load(Ordering::SeqCst) {
            inner.reading.store(false, Ordering::SeqCst);
            continue;
        }
        let read = backend::read(&inner, c, free, block_ms).await;
        inner.reading.store(false, Ordering::SeqCst);
        match read {
            Ok(jobs) => {
                drained = jobs.len() < free;
                if drained {
                    inner.prefetch.reset();
                }
                backoff.reset();
                inner.deliver(jobs);
            }
            Err(e) => handle(&inner, e, &mut conn, &mut backoff, &mut closing).await,
        }
    }
    inner.blocked_client.store(-1, Ordering::Release);
}

async fn handle(
    inner: &Inner,
    err: Error,
    conn: &mut Option<FetchConn>,
    backoff: &mut Backoff,
    closing: &mut watch::Receiver<bool>,
) {
    if backend::needs_prepare(inner, &err) {
        if let Err(e) = backend::prepare(inner).await {
            fail(inner, e, conn, backoff, closing).await;
        }
    } else {
        fail(inner, err, conn, backoff, closing).await;
    }
}

/// Reports the error, drops the connection, and sleeps the backoff (cut short by close).
async fn fail(
    inner: &Inner,
    err: Error,
    conn: &mut Option<FetchConn>,
    backoff: &mut Backoff,
    closing: &mut watch::Receiver<bool>,
) {
    if inner.is_closing() {
        return;
    }
    inner.emit(WorkerEvent::Error(err));
    *conn = None;
    inner.blocked_client.store(-1, Ordering::Release);
    let wait = backoff.next();
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = closing.wait_for(|c| *c) => {}
    }
}

/// A fresh blocking connection, after registering this worker (its heartbeat must exist before
/// it holds any job) and, on a reconnect, reclaiming jobs whose fetch reply was lost.
async fn connect(inner: &Inner, reconnect: bool) -> Result<FetchConn> {
    maintenance::heartbeat(inner).await?;
    backend::prepare(inner).await?;
    if reconnect {
        backend::reclaim(inner).await?;
    }
    let (conn, id) = backend::connect(inner).await?;
    inner.blocked_client.store(id, Ordering::Release);
    Ok(conn)
}

/// Exponential backoff from 100 ms to 5 s, with +-50 % jitter so restarted workers don't stampede.
#[derive(Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn next(&mut self) -> Duration {
        let base = 100u64.saturating_mul(1 << self.attempt.min(6)).min(5_000);
        self.attempt += 1;
        let jitter = random_u64() % (base + 1);
        Duration::from_millis(base / 2 + jitter)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}
