//! The fetch loop, shared by both modes: runs the recovery step when due (recovered jobs go
//! first: they have waited longest), then a blocking read on its own connection for the free
//! slots. On any error it reports, drops the connection, backs off with jitter and tries again;
//! after a reconnect it returns jobs whose fetch reply was lost. It ends only on close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::shared::Shared;
use crate::error::{Error, Result};
use crate::protocol::{AnyReader, Cursor, Protocol};
use crate::util::Backoff;

/// How often maintenance reads the queue's paused flag, and how often a paused loop looks at it.
pub(super) const PAUSE_POLL: Duration = Duration::from_millis(200);

pub(super) async fn run(shared: Arc<Shared>) {
    let mut closing = shared.closing.subscribe();
    let mut conn: Option<AnyReader> = None;
    let mut connected_before = false;
    let mut backoff = Backoff::default();
    let mut cursor = Cursor::default();
    let mut next_recover = Instant::now();
    // The last read found fewer jobs than it asked for: the queue ran dry, so the next read will
    // likely block, and asks for no more than the configured prefetch (see `free_slots`).
    let mut drained = true;
    let p = &*shared.protocol;
    let c = &shared.consumer;

    while !shared.is_closing() {
        if shared.gate.is_paused() {
            tokio::select! {
                _ = tokio::time::sleep(PAUSE_POLL) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
            continue;
        }
        let free = shared.free_slots(drained);
        if free == 0 {
            let freed = shared.freed.notified();
            if shared.free_slots(drained) == 0 && !shared.is_closing() {
                freed.await;
            }
            continue;
        }

        let reader = match conn.as_mut() {
            Some(r) => r,
            None => match connect(&shared, connected_before).await {
                Ok(r) => {
                    connected_before = true;
                    conn.insert(r)
                }
                Err(e) => {
                    fail(&shared, e, &mut conn, &mut backoff, &mut closing).await;
                    continue;
                }
            },
        };

        let recovery = match Instant::now() >= next_recover {
            true => shared.recovery_deadline(),
            false => None,
        };
        if Instant::now() >= next_recover && recovery.is_none() {
            // not in touch with Redis long enough to judge other workers' leases
            next_recover = Instant::now() + shared.cfg.recover_every();
        }
        if let Some(not_after) = recovery {
            match p.recover(c, &mut cursor, free, not_after).await {
                Ok(found) => {
                    next_recover = match found.more {
                        true => Instant::now(), // more of the pending list to scan
                        false => Instant::now() + shared.cfg.recover_every(),
                    };
                    if !found.dead.is_empty() {
                        shared.request_trim();
                        shared.emit_dead(found.dead);
                    }
                    if !found.jobs.is_empty() {
                        shared.stop_resting().await;
                        shared.emit(WorkerEvent::Stalled {
                            ids: found.jobs.iter().map(|j| j.id.clone()).collect(),
                        });
                        shared.deliver(found.jobs);
                    }
                }
                Err(e) => {
                    next_recover = Instant::now() + shared.cfg.recover_every();
                    handle(&shared, e, &mut conn, &mut backoff, &mut closing).await;
                }
            }
            continue;
        }

        // a worker out of steady contact (resting, see maintenance.rs) recovers nothing: it
        // blocks the whole time
        let block = match shared.recovery_deadline() {
            Some(_) => shared
                .cfg
                .block
                .min(next_recover.saturating_duration_since(Instant::now())),
            None => shared.cfg.block,
        };
        let block_ms = block.as_millis().max(1) as u64;
        if !shared.gate.enter_read() {
            continue;
        }
        let read = p.read(reader, c, free, block_ms).await;
        shared.gate.leave_read();
        match read {
            Ok(jobs) => {
                drained = jobs.len() < free;
                if drained {
                    shared.prefetch.reset();
                }
                backoff.reset();
                if !jobs.is_empty() {
                    shared.stop_resting().await;
                }
                shared.deliver(jobs);
            }
            Err(e) => handle(&shared, e, &mut conn, &mut backoff, &mut closing).await,
        }
    }
    shared.gate.set_client(-1);
}

async fn handle(
    shared: &Shared,
    err: Error,
    conn: &mut Option<AnyReader>,
    backoff: &mut Backoff,
    closing: &mut watch::Receiver<bool>,
) {
    if shared.protocol.needs_prepare(&err) {
        if let Err(e) = shared.protocol.prepare().await {
            fail(shared, e, conn, backoff, closing).await;
        }
    } else {
        fail(shared, err, conn, backoff, closing).await;
    }
}

/// Reports the error, drops the connection, and sleeps the backoff (cut short by close).
async fn fail(
    shared: &Shared,
    err: Error,
    conn: &mut Option<AnyReader>,
    backoff: &mut Backoff,
    closing: &mut watch::Receiver<bool>,
) {
    if shared.is_closing() {
        return;
    }
    shared.emit(WorkerEvent::Error(err));
    *conn = None;
    shared.gate.set_client(-1);
    let wait = backoff.next();
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = closing.wait_for(|c| *c) => {}
    }
}

/// A fresh blocking connection, after registering this worker (its heartbeat must exist before
/// it holds any job) and, on a reconnect, returning jobs whose fetch reply was lost.
async fn connect(shared: &Shared, reconnect: bool) -> Result<AnyReader> {
    let p = &*shared.protocol;
    let c = &shared.consumer;
    {
        // not racing a rest heartbeat of maintenance's; it beats next at the busy rhythm
        let _beating = shared.beating.lock().await;
        shared
            .resting
            .store(false, std::sync::atomic::Ordering::Release);
        shared
            .heartbeat(shared.cfg.visibility_timeout, true)
            .await?;
    }
    shared.woke.notify_one();
    p.prepare().await?;
    if reconnect {
        if let Some(listed) = p.listed(c).await? {
            // In this order: a job acked after `held` is taken is flushed before the compare.
            let held = shared.slab().receipts();
            shared.flush_acks().await?;
            p.return_orphans(c, listed, held).await?;
        }
    }
    let block = shared.cfg.block;
    let (reader, id) = p.connect_reader(block).await?;
    shared.gate.set_client(id);
    Ok(reader)
}
