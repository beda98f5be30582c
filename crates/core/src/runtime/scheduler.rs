//! The scheduler: moves due jobs (delayed adds, retries waiting for their backoff) from the
//! `delayed` zset to where workers fetch them. Every worker runs one; `promote.lua` removes each
//! job from the zset before adding it, so racing schedulers move each due job exactly once.
//!
//! It sleeps until the earliest due time it knows of. A job added due sooner (by any process)
//! wakes it through the queue's channel (`signals.rs`, `lua/lib/delay.lua`); while that channel
//! is not heard (reconnecting, or an ACL without channels) it looks every 25 ms instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::shared::Shared;
use crate::protocol::Protocol;
use crate::util::now_ms;

/// Jobs moved per script call: bounded, so a backlog of millions never stalls Redis.
const BATCH: usize = 500;
/// Longest wait between looks at the zset when wake-ups are not heard: a new delayed job may
/// be due sooner than the next one the last look saw.
const POLL_WAIT: Duration = Duration::from_millis(25);
/// Longest wait when they are: a safety net for a wake-up lost on the way.
const SIGNALLED_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let longest = match shared.signalled() {
            true => SIGNALLED_WAIT,
            false => POLL_WAIT,
        };
        let wait = match shared.protocol.promote(BATCH).await {
            Ok((moved, _)) if moved == BATCH => Duration::ZERO,
            Ok((_, Some(next_due))) => {
                Duration::from_millis(next_due.saturating_sub(now_ms())).min(longest)
            }
            Ok((_, None)) => longest,
            Err(e) => {
                // the fetch loop reports connection trouble
                if !e.is_connection() {
                    shared.emit(WorkerEvent::Error(e));
                }
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.wakers().delayed.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
