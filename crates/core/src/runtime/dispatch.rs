//! What a worker hands out and takes back: the [`Dispatch`] a binding implements, the events
//! it receives, and the outcome of each job.

use crate::error::Error;
use crate::job::Job;

/// Receives what a worker produces. Implementations must not block: hand the batch to another
/// thread or event loop and report outcomes later through [`Worker::complete`].
pub trait Dispatch: Send + Sync + 'static {
    /// A batch of jobs to run, oldest first.
    fn jobs(&self, jobs: Vec<Job>);
    /// Something the application may want to know; the worker keeps going.
    fn event(&self, event: WorkerEvent);
}

#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// A Redis or connection problem. The worker retries with backoff.
    Error(Error),
    /// Jobs recovered from a dead worker or an expired lease: about to run again here (stream
    /// mode), or returned to the wait list by this worker's reaper (list mode).
    Stalled { ids: Vec<String> },
    /// A job moved to the dead letters.
    Dead { id: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Completed, with the handler's result (encoded): recorded when the job keeps its outcome
    /// (`Job::keep_outcome_ms`), else the same as `Completed`.
    Returned(bytes::Bytes),
    /// The handler failed. If attempts remain, the next one starts after `retry_in` (waiting in
    /// the `delayed` zset, so a crash meanwhile loses nothing).
    Failed {
        reason: String,
        retry_in: std::time::Duration,
    },
}

impl Outcome {
    /// A failure retried at once (while attempts remain).
    pub fn failed(reason: impl Into<String>) -> Self {
        Outcome::Failed {
            reason: reason.into(),
            retry_in: std::time::Duration::ZERO,
        }
    }
}
