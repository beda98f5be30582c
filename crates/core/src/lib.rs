//! holdfast-core: a reliable job queue on Redis, in two modes: Streams consumer groups
//! (default) and the reliable two-list queue (LMOVE into per-worker processing lists).
//!
//! A [`Queue`] adds jobs; a [`Worker`] fetches them, hands batches to a [`Dispatch`]
//! implementation (the JS binding, or plain Rust), keeps its claims alive from its own timers,
//! and acknowledges in batches. Jobs of a worker that dies are recovered by the others. Nothing
//! here depends on napi.
//!
//! Layers, each using only those above it (ARCHITECTURE.md draws them):
//! 1. leaf types: `error`, `config`, `keys`, `envelope`, `job`, `util`, `metrics`
//! 2. Redis plumbing: `net` (the endpoint and the one way to open a socket, with `tls`), `conn`
//!    (connections, the one command runner), `resp`, `scripts`, `signals` (wake-ups)
//! 3. [`protocol`]: each mode's Redis protocol, returning what happened as values
//! 4. `runtime`: the worker's tasks and jobs in flight, over any protocol
//! 4. `outcomes`: waiting for jobs that other processes run (beside the runtime)
//! 5. `queue`: the facade the binding uses

pub mod config;
mod conn;
pub mod envelope;
pub mod error;
pub mod job;
pub mod keys;
pub mod metrics;
mod net;
mod outcomes;
pub mod protocol;
mod queue;
mod resp;
mod runtime;
mod scripts;
mod server;
mod signals;
mod tls;
mod util;

pub use bytes::Bytes;
pub use config::{
    Durable, GroupStart, Mode, PrefetchPolicy, QueueConfig, SentinelConfig, TlsConfig, WorkerConfig,
};
pub use envelope::JobOptions;
pub use error::{Error, Result};
pub use job::{DeadJob, GroupStats, Job, NewJob, Stats};
pub use outcomes::JobOutcome;
pub use queue::{FoundQueue, JobState, JobStatus, Queue, MAX_JOB_ID_LEN};
pub use runtime::{CloseReport, Dispatch, Outcome, Worker, WorkerEvent};
pub use server::ServerWarning;
