//! Timers that keep a worker's claims alive, independent of the JS event loop: heartbeats in the
//! `workers` zset (score = the deadline by which the next one must come), lease renewal of every
//! job in flight, reaping workers whose deadline passed, and the queue's pause flag.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::fetch::PAUSE_POLL;
use super::shared::Shared;
use crate::error::Result;
use crate::protocol::Protocol;

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
    let epoch = shared.gate.epoch();
    let paused = shared.protocol.common().is_paused().await?;
    // a pause or resume made here while the flag was read is newer than what was read
    if shared.gate.epoch() == epoch {
        shared.apply_pause(paused).await;
    }
    Ok(())
}
