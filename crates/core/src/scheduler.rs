//! The scheduler: moves due jobs (delayed adds, retries waiting for their backoff) from the
//! `delayed` zset to where workers fetch them. Every worker runs one; `promote.lua` removes each
//! job from the zset before adding it, so racing schedulers move each due job exactly once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Mode;
use crate::error::{Error, Result};
use crate::worker::{Inner, WorkerEvent};
use crate::{now_ms, scripts};

/// Jobs moved per script call: bounded, so a backlog of millions never stalls Redis.
const BATCH: usize = 500;
/// Longest wait between looks at the zset: a new delayed job may be due sooner than the next
/// one the last look saw. Keeps a due job's start within ~this under light load.
const MAX_WAIT: Duration = Duration::from_millis(25);

pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = match promote(&inner).await {
            Ok((moved, _)) if moved == BATCH => Duration::ZERO,
            Ok((_, Some(next_due))) => {
                Duration::from_millis(next_due.saturating_sub(now_ms())).min(MAX_WAIT)
            }
            Ok((_, None)) => MAX_WAIT,
            Err(e) => {
                // the fetch loop reports connection trouble
                if !e.is_connection() {
                    inner.emit(WorkerEvent::Error(e));
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

/// Returns how many jobs moved and when the next delayed one is due.
async fn promote(inner: &Inner) -> Result<(usize, Option<u64>)> {
    let keys = inner.queue.keys();
    let (mode, target) = match inner.queue.config().mode {
        Mode::Stream => ("stream", &keys.stream),
        Mode::List => ("list", &keys.wait),
    };
    let mut conn = inner.queue.worker_conn().await?;
    let (moved, next): (usize, i64) = scripts::PROMOTE
        .key(&keys.delayed)
        .key(target)
        .arg(mode)
        .arg(now_ms())
        .arg(BATCH)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, &keys.delayed))?;
    Ok((moved, u64::try_from(next).ok()))
}
