//! The acker: the one task that writes finished work back to Redis. Acks accumulate while the
//! previous write is in flight, so under load one write carries many jobs and at low load
//! latency stays one round trip. Where the mode trims (stream mode), finished entries are then
//! trimmed away, at most every TRIM_EVERY.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::dispatch::WorkerEvent;
use super::shared::{Finish, Shared};
use crate::error::Result;
use crate::job::KeptOutcome;
use crate::protocol::Protocol;
use crate::util::Backoff;

const MAX_BATCH: usize = 4096;
const TRIM_EVERY: Duration = Duration::from_millis(20);
/// On close, give up writing after this many failed tries; what is left unacked is recovered by
/// another worker later (at-least-once, never lost).
const CLOSE_TRIES: u32 = 5;

#[derive(Default)]
struct Batch {
    acks: Vec<Bytes>,
    outcomes: Vec<KeptOutcome>,
    others: Vec<Finish>,
    flushed: Vec<oneshot::Sender<()>>,
    untrimmed: bool,
}

impl Batch {
    fn add(&mut self, m: Finish) {
        match m {
            Finish::Acks(mut receipts) => self.acks.append(&mut receipts),
            Finish::Outcomes(mut kept) => self.outcomes.append(&mut kept),
            Finish::Trim => self.untrimmed = true,
            Finish::Flush(tx) => self.flushed.push(tx),
            other => self.others.push(other),
        }
    }

    fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.others.is_empty() && self.outcomes.is_empty()
    }
}

/// Runs until the worker closes; returns how many finished jobs it could not write back (Redis
/// unreachable at close): their deliveries are recovered when their leases expire.
pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Finish>) -> usize {
    let mut batch = Batch::default();
    let mut next_trim = Instant::now();
    let mut open = true;
    let mut backoff = Backoff::default();
    let mut close_tries = 0;

    loop {
        if batch.is_empty() {
            for tx in batch.flushed.drain(..) {
                let _ = tx.send(());
            }
            if !open {
                break;
            }
            let msg = if batch.untrimmed {
                let left = next_trim.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        trim(&shared, &mut batch, &mut next_trim).await;
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            match msg {
                Some(m) => batch.add(m),
                None => open = false,
            }
        }
        while batch.acks.len() + batch.others.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.add(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        match flush(&shared, &mut batch.outcomes, &batch.acks, &mut batch.others).await {
            Ok(()) => {
                batch.acks.clear();
                backoff.reset();
                batch.untrimmed |= shared.protocol.trims();
                if batch.untrimmed && (Instant::now() >= next_trim || !open) {
                    trim(&shared, &mut batch, &mut next_trim).await;
                }
            }
            Err(e) => {
                shared.emit(WorkerEvent::Error(e));
                if !open {
                    close_tries += 1;
                    if close_tries >= CLOSE_TRIES {
                        break;
                    }
                }
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
    if batch.untrimmed {
        trim(&shared, &mut batch, &mut next_trim).await;
    }
    while let Ok(m) = rx.try_recv() {
        batch.add(m);
    }
    batch.acks.len() + batch.others.len()
}

/// Writes one batch: outcomes to keep, then acks in one go, then failures and dead letters one
/// script call each (they are rare). What is done is removed, so a retry after an error repeats
/// none of it.
async fn flush(
    shared: &Shared,
    outcomes: &mut Vec<KeptOutcome>,
    acks: &[Bytes],
    others: &mut Vec<Finish>,
) -> Result<()> {
    let (p, c) = (&*shared.protocol, &shared.consumer);
    if !outcomes.is_empty() {
        p.common().record_outcomes(outcomes).await?;
        outcomes.clear();
    }
    if !acks.is_empty() {
        p.ack(c, acks).await?;
    }
    while let Some(finish) = others.last() {
        match finish {
            Finish::Retry {
                receipt,
                id,
                next_attempt,
                due_ms,
            } => {
                p.retry(c, receipt, id, *next_attempt, *due_ms).await?;
            }
            Finish::Dead {
                receipt,
                id,
                attempts,
                reason,
            } => {
                if p.dead(c, receipt, id, *attempts, reason).await? {
                    shared.emit(WorkerEvent::Dead {
                        id: id.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            Finish::Acks(_) | Finish::Outcomes(_) | Finish::Trim | Finish::Flush(_) => {}
        }
        others.pop();
    }
    Ok(())
}

async fn trim(shared: &Shared, batch: &mut Batch, next_trim: &mut Instant) {
    *next_trim = Instant::now() + TRIM_EVERY;
    match shared.protocol.trim().await {
        Ok(()) => batch.untrimmed = false,
        // Trimming is housekeeping: try again later.
        Err(e) => {
            *next_trim = Instant::now() + Duration::from_secs(1);
            if !e.is_connection() {
                shared.emit(WorkerEvent::Error(e));
            }
        }
    }
}
