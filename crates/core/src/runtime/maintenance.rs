//! Timers that keep a worker's claims alive, independent of the JS event loop: heartbeats in the
//! `workers` zset (score = the deadline by which the next one must come, in server time), lease
//! renewal of every job in flight, reaping the workers a heartbeat finds past their deadline,
//! and the queue's pause flag.

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
    let tick = [
        shared.cfg.renew_every(),
        shared.cfg.heartbeat_every(),
        PAUSE_POLL,
    ]
    .into_iter()
    .min()
    .unwrap_or(PAUSE_POLL);
    let mut next_renew = Instant::now() + shared.cfg.renew_every();
    let mut next_heartbeat = Instant::now();
    let mut next_pause_check = Instant::now();
    let mut next_totals = Instant::now() + TOTALS_EVERY;
    loop {
        let now = Instant::now();
        if now >= next_heartbeat {
            next_heartbeat = now + shared.cfg.heartbeat_every();
            match shared.heartbeat().await {
                Ok(overdue) if !overdue.is_empty() => {
                    if let Some(not_after) = shared.recovery_deadline() {
                        reap(&shared, &overdue, not_after).await
                    }
                }
                Ok(_) => {}
                Err(e) => report(&shared, Err(e)),
            }
        }
        if now >= next_renew {
            next_renew = now + shared.cfg.renew_every();
            let receipts = shared.slab().receipts();
            if !receipts.is_empty() {
                report(&shared, p.renew(c, &receipts).await);
            }
        }
        if now >= next_totals {
            next_totals = now + TOTALS_EVERY;
            report(&shared, flush_totals(&shared).await);
        }
        if now >= next_pause_check {
            next_pause_check = now + PAUSE_POLL;
            report(&shared, poll_paused(&shared).await);
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often finished jobs are added to the queue-wide totals in Redis.
const TOTALS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Adds this process's finished jobs since the last flush to the totals in Redis; kept for the
/// next try when that fails. Any worker of the queue in this process may write them.
pub(super) async fn flush_totals(shared: &Shared) -> Result<()> {
    let (completed, failed) = shared.counters.take_unflushed();
    if completed == 0 && failed == 0 {
        return Ok(());
    }
    let res = shared.protocol.common().add_totals(completed, failed).await;
    if res.is_err() {
        shared.counters.unflush(completed, failed);
    }
    res
}

async fn reap(shared: &Shared, overdue: &[String], not_after: u64) {
    match shared
        .protocol
        .reap(&shared.consumer, overdue, not_after)
        .await
    {
        Ok(reaped) => {
            if !reaped.stalled.is_empty() {
                shared.emit(WorkerEvent::Stalled {
                    ids: reaped.stalled,
                });
            }
            shared.emit_dead(reaped.dead);
        }
        Err(e) => report(shared, Err(e)),
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
