//! holdfast-core: a reliable job queue on Redis, in two modes: Streams consumer groups
//! (default) and the reliable two-list queue (LMOVE into per-worker processing lists).
//!
//! A [`Queue`] adds jobs; a [`Worker`] fetches them, hands batches to a [`Dispatch`]
//! implementation (the JS binding, or plain Rust), keeps its claims alive from its own timers,
//! and acknowledges in batches. Jobs of a worker that dies are recovered by the others
//! (XAUTOCLAIM in stream mode; a reaper that returns its processing list in list mode). Nothing
//! here depends on napi.

mod acker;
mod backend;
pub mod config;
mod connection;
pub mod envelope;
pub mod error;
mod fetch;
pub mod job;
pub mod keys;
mod list;
mod maintenance;
mod prefetch;
mod queue;
mod resp;
mod scheduler;
mod scripts;
mod stream;
mod worker;

pub use config::{Mode, QueueConfig, WorkerConfig};
pub use envelope::JobOptions;
pub use error::{Error, Result};
pub use job::{Job, NewJob};
pub use keys::QueueKeys;
pub use queue::{DeadJob, Queue, Stats, MAX_JOB_ID_LEN};
pub use worker::{Dispatch, Outcome, Worker, WorkerEvent};

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
