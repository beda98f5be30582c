//! The scheduler: moves due jobs (delayed adds, retries waiting for their backoff) from the
//! `delayed` zset to where workers fetch them. Every worker runs one; `promote.lua` removes each
//! job from the zset before adding it, so racing schedulers move each due job exactly once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::dispatch::WorkerEvent;
use super::shared::Shared;
use crate::protocol::Protocol;
use crate::util::now_ms;

/// Jobs moved per script call: bounded, so a backlog of millions never stalls Redis.
const BATCH: usize = 500;
/// Longest wait between looks at the zset: a new delayed job may be due sooner than the next
/// one the last look saw. Keeps a due job's start within ~this under light load.
const MAX_WAIT: Duration = Duration::from_millis(25);

pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = match shared.protocol.promote(BATCH).await {
            Ok((moved, _)) if moved == BATCH => Duration::ZERO,
            Ok((_, Some(next_due))) => {
                Duration::from_millis(next_due.saturating_sub(now_ms())).min(MAX_WAIT)
            }
            Ok((_, None)) => MAX_WAIT,
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
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
