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

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (p, c) = (&*shared.protocol, &shared.consumer);
    let reap_every = p.reap_every(c);
    let tick = [
        shared.cfg.renew_every(),
        shared.cfg.heartbeat_every(),
        reap_every,
        PAUSE_POLL,
    ]
    .into_iter()
    .min()
    .unwrap_or(PAUSE_POLL);
    let mut next_renew = Instant::now() + shared.cfg.renew_every();
    let mut next_heartbeat = Instant::now();
    let mut next_reap = Instant::now() + reap_every;
    let mut next_pause_check = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_heartbeat {
            next_heartbeat = now + shared.cfg.heartbeat_every();
            report(&shared, p.common().heartbeat(c).await);
        }
        if now >= next_renew {
            next_renew = now + shared.cfg.renew_every();
            let receipts = shared.slab().receipts();
            if !receipts.is_empty() {
                report(&shared, p.renew(c, &receipts).await);
            }
        }
        if now >= next_pause_check {
            next_pause_check = now + PAUSE_POLL;
            report(&shared, poll_paused(&shared).await);
        }
        if now >= next_reap {
            next_reap = now + reap_every;
            match p.reap(c).await {
                Ok(reaped) => {
                    if !reaped.stalled.is_empty() {
                        shared.emit(WorkerEvent::Stalled {
                            ids: reaped.stalled,
                        });
                    }
                    shared.emit_dead(reaped.dead);
                }
                Err(e) => report(&shared, Err(e)),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Connection errors are reported by the fetch loop; reporting them here too would only repeat.
fn report(shared: &Shared, res: Result<()>) {
    if let Err(e) = res {
        if !e.is_connection() {
            shared.emit(WorkerEvent::Error(e));
        }
    }
}

async fn poll_paused(shared: &Shared) -> Result<()> {
    let paused = shared.protocol.common().is_paused().await?;
    if shared.gate.set_paused(paused) {
        // Wake this worker's blocking read so it takes nothing more. The read may be sent
        // after an UNBLOCK (they travel on different connections), so repeat until the loop
        // is out of it; the loop checks the flag before its next read.
        for _ in 0..UNBLOCK_TRIES {
            if !shared.gate.is_reading() {
                break;
            }
            shared.unblock_read().await;
            tokio::time::sleep(UNBLOCK_RETRY).await;
        }
    }
    Ok(())
}
