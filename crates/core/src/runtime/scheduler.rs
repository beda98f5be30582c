//! The scheduler: moves due jobs (delayed adds, retries waiting for their backoff) from the
//! `delayed` zset to where workers fetch them. Every worker runs one, but one worker per queue
//! schedules at a time: the one holding the queue's scheduler lease (`promote.lua`), which stays
//! its own for as long as its heartbeat does. So many workers do not multiply the work.
//!
//! The holder sleeps until the earliest due time it knows of. A job added due sooner (by any
//! process) wakes it through the queue's channel (`signals.rs`, `lua/lib/delay.lua`); while that
//! channel is not heard (reconnecting, or an ACL without channels) it looks every 25 ms instead.
//!
//! The others stand by: each looks again just after the holder's heartbeat deadline, which the
//! holder's beats keep moving on, and at once when the holder gives the lease up on close (`l`).
//! When the holder dies without closing, one of them takes over once its deadline has passed:
//! within the visibility timeout (a resting holder: within ~20 s).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::shared::Shared;
use crate::protocol::{Promoted, Protocol};
use crate::util::now_ms;

/// Jobs moved per script call: bounded, so a backlog of millions never stalls Redis.
const BATCH: usize = 500;
/// Longest wait between looks at the zset when wake-ups are not heard: a new delayed job may
/// be due sooner than the next one the last look saw.
const POLL_WAIT: Duration = Duration::from_millis(25);
/// Longest wait when they are: a safety net for a wake-up lost on the way.
const SIGNALLED_WAIT: Duration = Duration::from_secs(30);
/// A standby looks this long after the holder's deadline, by when a live holder has beaten.
const STANDBY_MARGIN: Duration = Duration::from_millis(50);
/// Longest standby wait when wake-ups are not heard (a holder's release is not heard either).
const STANDBY_POLL: Duration = Duration::from_secs(1);

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let me = shared.consumer.id.as_str();
    let mut standby = false;
    loop {
        let signalled = shared.signalled();
        let longest = match signalled {
            true => SIGNALLED_WAIT,
            false => POLL_WAIT,
        };
        let res = shared.protocol.promote(BATCH, Some(me)).await;
        standby = match &res {
            Ok(p) => p.held_elsewhere.is_some(),
            Err(_) => standby,
        };
        let wait = match res {
            Ok(Promoted {
                held_elsewhere: Some(held),
                ..
            }) => (held + STANDBY_MARGIN).min(match signalled {
                true => SIGNALLED_WAIT,
                false => STANDBY_POLL,
            }),
            Ok(p) if p.moved == BATCH => Duration::ZERO,
            Ok(Promoted {
                next_due: Some(next_due),
                ..
            }) => Duration::from_millis(next_due.saturating_sub(now_ms())).min(longest),
            Ok(_) => longest,
            Err(e) => {
                // the fetch loop reports connection trouble
                if !e.is_connection() {
                    shared.emit(WorkerEvent::Error(e));
                }
                Duration::from_secs(1)
            }
        };
        let wakers = shared.wakers();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wakers.delayed.notified(), if !standby => {}
            _ = wakers.lease.notified(), if standby => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if !standby {
        // best effort: else the others take over once this worker's heartbeat is gone
        let _ = shared.protocol.common().release_scheduler(me).await;
    }
}
