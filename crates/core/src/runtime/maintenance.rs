//! Timers that keep a worker's claims alive, independent of the JS event loop: heartbeats in the
//! `workers` zset (score = the deadline by which the next one must come, in server time), lease
//! renewal of every job in flight, reaping the workers a heartbeat finds past their deadline,
//! and the queue's pause flag.
//!
//! An idle worker rests: it beats every [`REST_EVERY`] with a deadline four beats away instead of
//! every quarter visibility timeout, so an idle queue costs Redis about one script call per
//! worker per 5 s. It may rest only when nothing it could be asked to do is pending: it holds no
//! job, no worker is overdue, and no other worker holds work whose loss it must notice in time
//! (stream mode: the group has no pending entry; list mode: no other worker's deadline is a
//! short, busy one). A resting worker is out of steady contact (`Contact`), so it recovers and
//! reaps nothing; the first jobs it gets wake it (`Shared::deliver`) and it beats at once with the
//! short lease.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::fetch::PAUSE_POLL;
use super::shared::Shared;
use crate::error::Result;
use crate::protocol::{Heartbeat, Protocol};

/// How often a resting worker beats.
pub(super) const REST_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let p = &*shared.protocol;
    let c = &shared.consumer;
    let cfg = &shared.cfg;
    let rest_every = REST_EVERY.max(cfg.heartbeat_every());
    let rest_lease = cfg.visibility_timeout.max(4 * rest_every);
    let mut first = true;
    let mut last: Option<Heartbeat> = None;
    let mut next_renew = Instant::now() + cfg.renew_every();
    let mut next_heartbeat = Instant::now();
    let mut next_pause_check = Instant::now();
    let mut next_totals = Instant::now() + TOTALS_EVERY;
    loop {
        let now = Instant::now();
        if now >= next_heartbeat {
            // a rest beat is sent with `resting` set, under `beating`: a fetch that gets jobs
            // meanwhile waits for it, then shortens the deadline (`Shared::stop_resting`)
            let beating = shared.beating.lock().await;
            let delivered = shared.delivered.swap(false, Ordering::AcqRel);
            let rest = !delivered
                && !shared.busy()
                && last.as_ref().is_some_and(|hb| may_rest(&shared, hb));
            shared.resting.store(rest, Ordering::Release);
            let lease = if rest {
                rest_lease
            } else {
                cfg.visibility_timeout
            };
            let epoch = shared.gate.epoch();
            let res = shared.heartbeat(lease, first).await;
            drop(beating);
            // rest on only while the reply agrees (`resting` stays set: the deadline is long)
            let resting = rest && res.as_ref().is_ok_and(|hb| may_rest(&shared, hb));
            match res {
                Ok(hb) => {
                    first = false;
                    // a pause or resume made here while the flag was read is newer
                    if shared.gate.epoch() == epoch {
                        shared.apply_pause(hb.paused).await;
                    }
                    if !hb.overdue.is_empty() {
                        if let Some(not_after) = shared.recovery_deadline() {
                            reap(&shared, &hb.overdue, not_after).await
                        }
                    }
                    next_heartbeat = Instant::now()
                        + match resting {
                            true => rest_every,
                            false => cfg.heartbeat_every(),
                        };
                    last = Some(hb);
                }
                Err(e) => {
                    next_heartbeat = now + cfg.heartbeat_every();
                    last = None;
                    report(&shared, Err(e));
                }
            }
        }
        if now >= next_renew {
            next_renew = now + cfg.renew_every();
            let receipts = shared.slab().receipts();
            if !receipts.is_empty() {
                report(&shared, p.renew(c, &receipts).await);
            }
        }
        if now >= next_totals {
            next_totals = now + TOTALS_EVERY;
            match flush_totals(&shared).await {
                // approximate by design: kept until Redis has room again
                Err(crate::error::Error::RedisFull(_)) => {}
                res => report(&shared, res),
            }
        }
        let signalled = shared.signalled();
        if now >= next_pause_check {
            next_pause_check = now + PAUSE_POLL;
            if !signalled {
                report(&shared, poll_paused(&shared).await);
            }
        }
        let mut wake = next_heartbeat.min(next_totals);
        if shared.busy() {
            wake = wake.min(next_renew);
        }
        if !signalled {
            wake = wake.min(next_pause_check);
        }
        let pause_changed = tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => false,
            _ = shared.woke.notified() => {
                // it just beat with the short lease: the next beat is due at the busy rhythm
                next_heartbeat = Instant::now() + cfg.heartbeat_every();
                false
            }
            _ = shared.wakers().pause.notified() => true,
            _ = stop.wait_for(|s| *s) => return,
        };
        if pause_changed {
            report(&shared, poll_paused(&shared).await);
        }
    }
}

/// Whether what a heartbeat saw lets an idle worker rest (see the module doc).
fn may_rest(shared: &Shared, hb: &Heartbeat) -> bool {
    if !hb.overdue.is_empty() {
        return false;
    }
    match hb.pending {
        Some(pending) => pending == 0,
        None => {
            // a busy list-mode worker's deadline is at most a visibility timeout (plus a beat)
            // away; a resting one's is further
            let busy_within = shared.cfg.visibility_timeout + shared.cfg.heartbeat_every();
            hb.next_deadline
                .is_none_or(|d| d > hb.server_ms + busy_within.as_millis() as u64)
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
