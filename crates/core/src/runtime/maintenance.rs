//! Timers that keep a worker's claims alive, independent of the JS event loop: heartbeats in the
//! `workers` zset (score = the deadline by which the next one must come), lease renewal of every
//! job in flight, reaping workers whose deadline passed, and the queue's pause flag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::fetch::PAUSE_POLL;
use super::shared::Shared;
use crate::error::Result;
use crate::protocol::Protocol;

/// Bounds the unblocking on pause to ~1 s; a read still running then ends by its own BLOCK.
const UNBLOCK_TRIES: u32 = 50;
const UNBLOCK_RETRY: Duration = Duration::from_millis(20);

pub(super) async fn run(inner: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (p, c) = (&*inner.protocol, &inner.consumer);
    let reap_every = p.reap_every(c);
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
            report(&inner, p.common().heartbeat(c).await);
        }
        if now >= next_renew {
            next_renew = now + inner.cfg.renew_every();
            let receipts = inner.slab().receipts();
            if !receipts.is_empty() {
                report(&inner, p.renew(c, &receipts).await);
            }
        }
        if now >= next_pause_check {
            next_pause_check = now + PAUSE_POLL;
            report(&inner, poll_paused(&inner).await);
        }
        if now >= next_reap {
            next_reap = now + reap_every;
            match p.reap(c).await {
                Ok(reaped) => {
                    if !reaped.stalled.is_empty() {
                        inner.emit(WorkerEvent::Stalled {
                            ids: reaped.stalled,
                        });
                    }
                    inner.emit_dead(reaped.dead);
                }
                Err(e) => report(&inner, Err(e)),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Connection errors are reported by the fetch loop; reporting them here too would only repeat.
fn report(inner: &Shared, res: Result<()>) {
    if let Err(e) = res {
        if !e.is_connection() {
            inner.emit(WorkerEvent::Error(e));
        }
    }
}

async fn poll_paused(inner: &Shared) -> Result<()> {
    let paused = inner.protocol.common().is_paused().await?;
    if inner.gate.set_paused(paused) {
        // Wake this worker's blocking read so it takes nothing more. The read may be sent
        // after an UNBLOCK (they travel on different connections), so repeat until the loop
        // is out of it; the loop checks the flag before its next read.
        for _ in 0..UNBLOCK_TRIES {
            if !inner.gate.is_reading() {
                break;
            }
            inner.unblock_read().await;
            tokio::time::sleep(UNBLOCK_RETRY).await;
        }
    }
    Ok(())
}
