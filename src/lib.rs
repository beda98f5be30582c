//! The napi binding: converts options with `TryFrom`, maps every core error through
//! [`to_js_error`], and bridges worker batches to JS through threadsafe functions. The queue
//! logic lives in `holdfast-core`; the user-facing API (EventEmitter, AbortSignal, JSON) lives in
//! the hand-written `lib/holdfast.js`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use holdfast_core as core;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// Every core error crosses as an Error whose message starts with its stable code
/// (`ERR_HOLDFAST_...: message`); `lib/holdfast.js` moves the code to `error.code`. napi-rs sets
/// `code` from its own status enum on async rejections, so the code has to travel in the text.
fn to_js_error(err: core::Error) -> Error {
    Error::new(Status::GenericFailure, format!("{}: {}", err.code(), err))
}

fn invalid(msg: String) -> Error {
    to_js_error(core::Error::InvalidArgument(msg))
}

/// A non-negative integer option given as a JS number.
fn whole(name: &str, value: Option<f64>) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v)
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 =>
        {
            Ok(Some(v as u64))
        }
        Some(v) => Err(invalid(format!(
            "{name} must be a whole number >= 0, got {v}"
        ))),
    }
}

fn positive(name: &str, value: Option<f64>) -> Result<Option<u64>> {
    match whole(name, value)? {
        Some(0) => Err(invalid(format!("{name} must be greater than 0"))),
        v => Ok(v),
    }
}

fn small(name: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| invalid(format!("{name} is too large: {v}")))
}

/// Options of the native queue. An unset option takes the core's default (`QueueConfig::new`),
/// the one place defaults live; the docs here repeat them.
#[napi(object)]
pub struct QueueOptions {
    /// Redis url, `redis[s]://[[user]:password@]host[:port][/db]` (default
    /// `redis://127.0.0.1:6379`; `lib/holdfast.js` passes `REDIS_URL` when set). `rediss://`
    /// turns TLS on.
    pub url: Option<String>,
    /// TLS on every connection (a `redis://` url too).
    pub tls: Option<TlsOptions>,
    /// Adds resolve only once replicas and / or the AOF fsync confirm them.
    pub durable: Option<DurableOptions>,
    /// Find the master through Redis Sentinel (`url` then gives only credentials and database).
    pub sentinel: Option<SentinelOptions>,
    /// Redis Cluster seed nodes (`host[:port]` or `redis[s]://` urls; `url` then gives only
    /// credentials and scheme).
    pub cluster: Option<Vec<String>>,
    /// `'stream'` (default) or `'list'`.
    pub mode: Option<String>,
    /// List mode: consume this existing list (filled by other clients with LPUSH).
    pub list_key: Option<String>,
    /// Stream mode: consume this existing stream (filled by other clients with XADD).
    pub stream_key: Option<String>,
    /// Stream mode: the consumer group to join, or to create when missing. Default `workers`.
    pub group: Option<String>,
    /// Where a group this queue creates starts: `'earliest'` (default) or `'latest'`.
    pub group_start: Option<String>,
    /// Key prefix, default `holdfast`.
    pub prefix: Option<String>,
    /// Largest encoded payload accepted by `add`, default 512 KiB.
    pub max_payload_bytes: Option<f64>,
    /// An add with a `jobId` seen within this many ms adds nothing (default 24 h).
    pub dedup_window_ms: Option<f64>,
    /// Cap of the dead letters (default 10000).
    pub dead_letter_max_len: Option<f64>,
    /// Dead letters older than this many ms are dropped (default 7 days).
    pub dead_letter_max_age_ms: Option<f64>,
}

/// TLS settings; `lib/holdfast.js` turns PEM strings and arrays into one Buffer each.
#[napi(object)]
pub struct TlsOptions {
    /// PEM CA certificates to trust instead of Mozilla's roots.
    pub ca: Option<Buffer>,
    /// PEM client certificate chain, for mutual TLS (with `key`).
    pub cert: Option<Buffer>,
    /// PEM private key of `cert` (not encrypted).
    pub key: Option<Buffer>,
    /// The name the server's certificate must carry, when not the url's host.
    pub servername: Option<String>,
    /// `false` accepts any server certificate (default `true`).
    pub reject_unauthorized: Option<bool>,
}

impl From<&TlsOptions> for core::TlsConfig {
    fn from(o: &TlsOptions) -> Self {
        Self {
            ca: o.ca.as_ref().map(|b| b.to_vec()),
            cert: o.cert.as_ref().map(|b| b.to_vec()),
            key: o.key.as_ref().map(|b| b.to_vec()),
            servername: o.servername.clone(),
            reject_unauthorized: o.reject_unauthorized.unwrap_or(true),
        }
    }
}

/// A server setting that loses jobs or defeats an option.
#[napi(object)]
pub struct ServerWarning {
    /// `HOLDFAST_EVICTION` or `HOLDFAST_NO_AOF`.
    pub code: String,
    pub message: String,
}

/// Redis Sentinel: the master's name and the sentinels to ask for it.
#[napi(object)]
pub struct SentinelOptions {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// Sentinels, asked in order: `host[:port]` (26379 by default) or `redis[s]://` urls.
    pub nodes: Vec<String>,
}

/// What `add` waits for: `WAIT` (replicas) and / or `WAITAOF` (fsync).
#[napi(object)]
pub struct DurableOptions {
    /// Replicas that must have each added job (default 0).
    pub replicas: Option<f64>,
    /// The master must have fsynced it to its AOF (Redis 7.2+, Valkey; default false).
    pub fsync: Option<bool>,
    /// Longest wait for the confirmation, ms (default 2000).
    pub timeout_ms: Option<f64>,
}

impl TryFrom<&DurableOptions> for core::Durable {
    type Error = Error;

    fn try_from(o: &DurableOptions) -> Result<Self> {
        let mut d = core::Durable::default();
        if let Some(n) = whole("durable.replicas", o.replicas)? {
            d.replicas = small("durable.replicas", n)?;
        }
        d.fsync = o.fsync.unwrap_or(false);
        if let Some(ms) = positive("durable.timeoutMs", o.timeout_ms)? {
            d.timeout = Duration::from_millis(ms);
        }
        Ok(d)
    }
}

struct QueueArgs<'a>(&'a str, Option<&'a QueueOptions>);

impl TryFrom<QueueArgs<'_>> for core::QueueConfig {
    type Error = Error;

    fn try_from(QueueArgs(name, opts): QueueArgs<'_>) -> Result<Self> {
        let mut cfg = core::QueueConfig::new(name);
        if let Some(o) = opts {
            if let Some(url) = &o.url {
                cfg.url = url.clone();
            }
            if let Some(prefix) = &o.prefix {
                cfg.prefix = prefix.clone();
            }
            if let Some(mode) = &o.mode {
                cfg.mode = core::Mode::parse(mode).map_err(to_js_error)?;
            }
            cfg.list_key = o.list_key.clone();
            cfg.stream_key = o.stream_key.clone();
            if let Some(group) = &o.group {
                cfg.group = group.clone();
            }
            if let Some(start) = &o.group_start {
                cfg.group_start = core::GroupStart::parse(start).map_err(to_js_error)?;
            }
            cfg.tls = o.tls.as_ref().map(core::TlsConfig::from);
            cfg.durable = o
                .durable
                .as_ref()
                .map(core::Durable::try_from)
                .transpose()?;
            cfg.sentinel = o.sentinel.as_ref().map(|s| core::SentinelConfig {
                master_name: s.master_name.clone(),
                nodes: s.nodes.clone(),
            });
            cfg.cluster = o.cluster.clone();
            if let Some(max) = positive("maxPayloadBytes", o.max_payload_bytes)? {
                cfg.max_payload_bytes = max as usize;
            }
            if let Some(ms) = positive("dedupWindowMs", o.dedup_window_ms)? {
                cfg.dedup_window = Duration::from_millis(ms);
            }
            if let Some(n) = positive("deadLetter.maxLen", o.dead_letter_max_len)? {
                cfg.dead_max_len = n;
            }
            if let Some(ms) = positive("deadLetter.maxAgeMs", o.dead_letter_max_age_ms)? {
                cfg.dead_max_age = Duration::from_millis(ms);
            }
        }
        Ok(cfg)
    }
}

/// Per-job columns of a native `add`, parallel to its payloads.
#[napi(object)]
#[derive(Default)]
pub struct AddColumns {
    pub job_ids: Option<Vec<Option<String>>>,
    pub max_attempts: Option<Vec<Option<f64>>>,
    /// Backoff specs (written and read by lib/holdfast.js).
    pub backoffs: Option<Vec<Option<String>>>,
    /// Not before, unix ms.
    pub run_ats: Option<Vec<Option<f64>>>,
    /// Bytes payloads (`payloads[i]` is then ignored): stored as they are and delivered back as
    /// Buffers.
    pub binaries: Option<Vec<Option<Buffer>>>,
    /// Record the outcome for this many ms once the job finishes (`waitFor`, `getJob`).
    pub keep_outcome_ms: Option<Vec<Option<f64>>>,
}

/// Options of a native worker. An unset option takes the core's default
/// (`WorkerConfig::default`).
#[napi(object)]
pub struct WorkerOptions {
    /// Jobs in flight at once in this worker (default 64).
    pub concurrency: Option<f64>,
    /// Lease length in ms (default 3000): how long a dead or cut-off worker's jobs wait before
    /// another worker takes them. Renewed by Rust timers while the handler runs, so it does not
    /// limit how long a handler may run.
    pub visibility_timeout_ms: Option<f64>,
    /// Handler runs per job before it goes to `dead` (default 3).
    pub max_attempts: Option<f64>,
    /// Deliveries (crashes, expired leases) per entry before it goes to `dead` (default 5).
    pub max_deliveries: Option<f64>,
    /// Longest wait of one blocking read (XREADGROUP BLOCK, BLMOVE) in ms (default 5000).
    pub block_ms: Option<f64>,
    /// Jobs fetched ahead of free handler slots. Default: adaptive, from `concurrency` up to
    /// 10 x `concurrency` while handlers finish fast. A number fixes it (0: none).
    pub prefetch: Option<f64>,
}

impl TryFrom<&WorkerOptions> for core::WorkerConfig {
    type Error = Error;

    fn try_from(o: &WorkerOptions) -> Result<Self> {
        let mut cfg = core::WorkerConfig::default();
        if let Some(v) = positive("concurrency", o.concurrency)? {
            cfg.concurrency = v as usize;
        }
        if let Some(v) = whole("prefetch", o.prefetch)? {
            cfg.prefetch =
                core::PrefetchPolicy::Fixed(v.min(core::config::MAX_PREFETCH as u64) as usize);
        }
        if let Some(v) = positive("visibilityTimeoutMs", o.visibility_timeout_ms)? {
            cfg.visibility_timeout = Duration::from_millis(v);
        }
        if let Some(v) = positive("maxAttempts", o.max_attempts)? {
            cfg.max_attempts = small("maxAttempts", v)?;
        }
        if let Some(v) = positive("maxDeliveries", o.max_deliveries)? {
            cfg.max_deliveries = small("maxDeliveries", v)?;
        }
        if let Some(v) = positive("blockMs", o.block_ms)? {
            cfg.block = Duration::from_millis(v);
        }
        cfg.validate().map_err(to_js_error)?;
        Ok(cfg)
    }
}

/// Queue counts.
#[napi(object)]
pub struct QueueStats {
    pub waiting: f64,
    pub active: f64,
    pub delayed: f64,
    pub dead: f64,
    pub workers: f64,
    pub paused: bool,
    /// How long the next job to be delivered has waited (ms); null when nothing waits or it
    /// cannot be dated.
    pub oldest_waiting_ms: Option<f64>,
    /// Jobs completed by every process's workers, ever (about a second behind).
    pub completed: f64,
    /// Handler failures (retried or dead-lettered) in every process, ever.
    pub failed: f64,
    /// Stream mode: every consumer group reading the stream, each getting every job.
    pub groups: Vec<GroupStats>,
}

/// One consumer group of a stream, from `stats()`.
#[napi(object)]
pub struct GroupStats {
    pub name: String,
    pub consumers: f64,
    /// Delivered to this group, not yet finished.
    pub active: f64,
    /// Not yet delivered to this group (its lag); null when Redis cannot tell (before 7.0).
    pub waiting: Option<f64>,
    /// How long the next job this group is to get has waited (ms); null when none waits.
    pub oldest_waiting_ms: Option<f64>,
}

/// This process's counters for one queue.
#[napi(object, object_from_js = false)]
pub struct QueueCounters {
    pub completed: f64,
    pub failed: f64,
    pub retried: f64,
    pub dead: f64,
    pub stalled: f64,
    /// Upper bounds of the duration histogram's buckets, in seconds (`+Inf` not included).
    pub duration_bounds: Vec<f64>,
    /// Cumulative counts per bound, then the `+Inf` bucket (= the count).
    pub duration_buckets: Vec<f64>,
    pub duration_sum_seconds: f64,
}

/// A job waiting in the queue, as `peek` reads it.
#[napi(object, object_from_js = false)]
pub struct NativeWaitingJob {
    pub id: String,
    /// Encoded (JSON) data; '' when the data is bytes.
    pub payload: String,
    pub bytes: Option<Buffer>,
    pub attempt: u32,
}

/// How a job that keeps its outcome finished.
#[napi(object, object_from_js = false)]
pub struct NativeOutcome {
    /// 'completed' or 'dead'.
    pub state: String,
    /// The handler's result, JSON ('' when it returned nothing); completed jobs.
    pub result: Option<String>,
    /// The last error; dead jobs.
    pub error: Option<String>,
}

/// Where a job is, from `getJob`.
#[napi(object, object_from_js = false)]
pub struct NativeJobStatus {
    /// 'waiting', 'active', 'delayed', 'completed', 'dead' or 'unknown'.
    pub state: String,
    /// The stored data (waiting, active, delayed, dead letters): JSON, '' when bytes.
    pub payload: Option<String>,
    pub bytes: Option<Buffer>,
    pub attempt: Option<u32>,
    pub result: Option<String>,
    pub error: Option<String>,
    /// Unix ms: when a dead letter failed.
    pub failed_at: Option<f64>,
    /// Unix ms: when a delayed job is due.
    pub due_at: Option<f64>,
}

fn native_outcome(o: core::JobOutcome) -> NativeOutcome {
    match o {
        core::JobOutcome::Completed(result) => NativeOutcome {
            state: "completed".into(),
            result: Some(String::from_utf8_lossy(&result).into_owned()),
            error: None,
        },
        core::JobOutcome::Dead(error) => NativeOutcome {
            state: "dead".into(),
            result: None,
            error: Some(error),
        },
    }
}

/// A queue found under a prefix: its name, and its mode when its keys tell ('stream', 'list').
#[napi(object, object_from_js = false)]
pub struct FoundQueue {
    pub name: String,
    pub mode: Option<String>,
}

/// A job in the dead letters.
#[napi(object, object_from_js = false)]
pub struct NativeDeadJob {
    pub id: String,
    /// Encoded (JSON) data; '' when the data is bytes.
    pub payload: String,
    /// The data, when it is bytes (added as bytes, or not UTF-8).
    pub bytes: Option<Buffer>,
    pub error: String,
    pub attempts: u32,
    /// Unix ms.
    pub failed_at: f64,
}

/// A batch of delivered jobs, as columns (one crossing per batch, not per job). Ids and payloads
/// each travel as one string with offsets, and the numbers as one array: creating one JS string
/// per job was a visible share of the drain profile, and each typed array (an external buffer
/// with a finalizer) a visible share of a single job's delivery.
#[napi(object, object_from_js = false)]
pub struct JobBatch {
    /// Five columns of `n = numbers.length / 5` each, in this order: the token to hand back to
    /// `complete`; the end of the job's id in `ids` and of its data in `payloads` (UTF-16
    /// offsets: job `i`'s id is `ids.slice(idEnd[i - 1] ?? 0, idEnd[i])`); the attempt; the
    /// job's max attempts (0 where the worker's applies). A plain array for small batches
    /// (cheaper to create), a typed one for large ones (cheaper per element).
    pub numbers: Either<Vec<u32>, Uint32Array>,
    pub ids: String,
    /// Encoded (JSON) data, sliced like `ids`.
    pub payloads: String,
    /// Per-job backoff specs ('' where none); absent when no job of the batch has one.
    pub backoffs: Option<Vec<String>>,
    /// Per-job data that is bytes (added as bytes, or not UTF-8; null where the data is text in
    /// `payloads`); absent when no job of the batch has any.
    pub binaries: Option<Vec<Option<Buffer>>>,
    /// 1 where the job keeps its outcome (report its result through `complete`'s `returned`);
    /// absent when no job of the batch does.
    pub keeps: Option<Uint8Array>,
}

/// Up to this many jobs, a batch's numbers cross as a plain array: each element costs a call, but
/// a typed array costs ~4 us of its own (measured on single-job deliveries).
const SMALL_BATCH: usize = 16;

/// Keeps a batch's payload string far below V8's string length limit (~2^29 UTF-16 units).
const MAX_BATCH_TEXT: usize = 128 << 20;

/// A payload as JS gets it: text to decode, or bytes (added as bytes, or another producer's
/// data that is not UTF-8).
fn mode_name(mode: core::Mode) -> String {
    match mode {
        core::Mode::Stream => "stream".to_owned(),
        core::Mode::List => "list".to_owned(),
    }
}

/// A payload as an object field pair: the text, or '' and the bytes.
fn payload_or_bytes(payload: &core::Bytes, binary: bool) -> (String, Option<Buffer>) {
    match text_or_bytes(payload, binary) {
        Ok(text) => (text.to_owned(), None),
        Err(bytes) => (String::new(), Some(bytes)),
    }
}

fn text_or_bytes(payload: &core::Bytes, binary: bool) -> std::result::Result<&str, Buffer> {
    if !binary {
        if let Ok(text) = std::str::from_utf8(payload) {
            return Ok(text);
        }
    }
    Err(Buffer::from(payload.to_vec()))
}

/// Length in UTF-16 units, which is what JS string offsets count.
fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// Jobs as batches for JS, split where the payload text would grow past `MAX_BATCH_TEXT`.
fn to_batches(jobs: Vec<core::Job>) -> Vec<JobBatch> {
    let mut batches = Vec::new();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let mut size = 0;
        let mut chunk = Vec::new();
        while let Some(job) =
            jobs.next_if(|j| chunk.is_empty() || size + j.payload.len() <= MAX_BATCH_TEXT)
        {
            size += job.payload.len();
            chunk.push(job);
        }
        batches.push(to_batch(chunk));
    }
    batches
}

fn to_batch(jobs: Vec<core::Job>) -> JobBatch {
    let n = jobs.len();
    // the five columns, filled in place
    let mut numbers = vec![0u32; 5 * n];
    let mut ids = String::with_capacity(jobs.iter().map(|j| j.id.len()).sum());
    let mut payloads = String::with_capacity(jobs.iter().map(|j| j.payload.len()).sum());
    let (mut id_end, mut payload_end) = (0, 0);
    let mut backoffs: Option<Vec<String>> = None;
    let mut binaries: Option<Vec<Option<Buffer>>> = None;
    let mut keeps: Option<Vec<u8>> = None;
    for (i, job) in jobs.into_iter().enumerate() {
        if job.keep_outcome_ms.is_some() {
            keeps.get_or_insert_with(|| vec![0; n])[i] = 1;
        }
        ids.push_str(&job.id);
        id_end += utf16_len(&job.id);
        match text_or_bytes(&job.payload, job.binary) {
            Ok(text) => {
                payloads.push_str(text);
                payload_end += utf16_len(text);
            }
            Err(bytes) => {
                binaries.get_or_insert_with(|| (0..n).map(|_| None).collect())[i] = Some(bytes)
            }
        }
        numbers[i] = job.token;
        numbers[n + i] = id_end as u32;
        numbers[2 * n + i] = payload_end as u32;
        numbers[3 * n + i] = job.attempt;
        numbers[4 * n + i] = job.max_attempts.unwrap_or(0);
        if let Some(b) = job.backoff {
            backoffs.get_or_insert_with(|| vec![String::new(); n])[i] = b;
        }
    }
    JobBatch {
        numbers: match n <= SMALL_BATCH {
            true => Either::A(numbers),
            false => Either::B(Uint32Array::new(numbers)),
        },
        ids,
        payloads,
        backoffs,
        binaries,
        keeps: keeps.map(Uint8Array::new),
    }
}

/// What a worker's close could not do cleanly.
#[napi(object, object_from_js = false)]
pub struct CloseResult {
    /// Handlers still running at `timeoutMs`: their jobs went back to the queue at once.
    pub timed_out: u32,
    /// Jobs whose outcome could not be written (Redis unreachable): recovered when their
    /// leases expire.
    pub left_to_lease_expiry: u32,
}

/// Something a worker reports: `kind` is `'error'`, `'stalled'` or `'dead'`.
#[napi(object, object_from_js = false)]
pub struct NativeEvent {
    pub kind: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub ids: Option<Vec<String>>,
}

type JobsFn = ThreadsafeFunction<JobBatch, (), JobBatch, Status, false>;
type EventFn = ThreadsafeFunction<NativeEvent, (), NativeEvent, Status, false>;

/// Forwards a worker's output to JS. The functions are strong (they keep node running while
/// the worker runs) and are released on close, so the process can then exit.
struct JsDispatch {
    jobs: RwLock<Option<JobsFn>>,
    events: RwLock<Option<EventFn>>,
}

impl JsDispatch {
    fn release(&self) {
        self.jobs.write().unwrap().take();
        self.events.write().unwrap().take();
    }
}

impl core::Dispatch for JsDispatch {
    fn jobs(&self, jobs: Vec<core::Job>) {
        if let Some(f) = &*self.jobs.read().unwrap() {
            for batch in to_batches(jobs) {
                f.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }

    fn event(&self, event: core::WorkerEvent) {
        let event = match event {
            core::WorkerEvent::Error(e) => NativeEvent {
                kind: "error".into(),
                code: Some(e.code().into()),
                message: Some(e.to_string()),
                ids: None,
            },
            core::WorkerEvent::Stalled { ids } => NativeEvent {
                kind: "stalled".into(),
                code: None,
                message: None,
                ids: Some(ids),
            },
            core::WorkerEvent::Dead { id, reason } => NativeEvent {
                kind: "dead".into(),
                code: None,
                message: Some(reason),
                ids: Some(vec![id]),
            },
        };
        if let Some(f) = &*self.events.read().unwrap() {
            f.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// Longest `jobId`, in bytes (checked in JS per call, so one bad add never sinks a batch).
#[napi]
pub const MAX_JOB_ID_BYTES: u32 = core::MAX_JOB_ID_LEN as u32;

#[napi]
pub struct NativeQueue {
    inner: Arc<core::Queue>,
}

#[napi]
impl NativeQueue {
    /// Validates the options; connects lazily on first use.
    #[napi(constructor)]
    pub fn new(name: String, options: Option<QueueOptions>) -> Result<Self> {
        let cfg = core::QueueConfig::try_from(QueueArgs(&name, options.as_ref()))?;
        Ok(Self {
            inner: core::Queue::new(cfg).map_err(to_js_error)?,
        })
    }

    /// Adds encoded jobs in one atomic round trip; resolves to their ids. The columns of
    /// `options`, when given, run parallel to `payloads` (null where a job has none).
    #[napi]
    pub async fn add(
        &self,
        payloads: Vec<String>,
        options: Option<AddColumns>,
    ) -> Result<Vec<String>> {
        let mut o = options.unwrap_or_default();
        fn at<T: Clone>(col: &Option<Vec<Option<T>>>, i: usize) -> Option<T> {
            col.as_ref().and_then(|c| c.get(i).cloned().flatten())
        }
        let mut jobs = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.into_iter().enumerate() {
            let max_attempts = match positive("maxAttempts", at(&o.max_attempts, i))? {
                Some(v) => Some(small("maxAttempts", v)?),
                None => None,
            };
            let bytes = o.binaries.as_mut().and_then(|c| c.get_mut(i)?.take());
            jobs.push(core::NewJob {
                binary: bytes.is_some(),
                payload: match bytes {
                    Some(b) => core::Bytes::copy_from_slice(&b),
                    None => payload.into(),
                },
                job_id: at(&o.job_ids, i),
                max_attempts,
                backoff: at(&o.backoffs, i),
                run_at_ms: whole("runAt", at(&o.run_ats, i))?,
                keep_outcome_ms: whole("keepOutcomeMs", at(&o.keep_outcome_ms, i))?
                    .filter(|&ms| ms > 0),
            });
        }
        self.inner.add(jobs).await.map_err(to_js_error)
    }

    /// Server settings that lose jobs or defeat an option, as `{ code, message }`.
    #[napi]
    pub async fn server_warnings(&self) -> Result<Vec<ServerWarning>> {
        let warnings = self.inner.server_warnings().await.map_err(to_js_error)?;
        Ok(warnings
            .into_iter()
            .map(|w| ServerWarning {
                code: w.code.to_owned(),
                message: w.message,
            })
            .collect())
    }

    #[napi]
    pub async fn stats(&self) -> Result<QueueStats> {
        let s = self.inner.stats().await.map_err(to_js_error)?;
        Ok(QueueStats {
            waiting: s.waiting as f64,
            active: s.active as f64,
            delayed: s.delayed as f64,
            dead: s.dead as f64,
            workers: s.workers as f64,
            paused: s.paused,
            oldest_waiting_ms: s.oldest_waiting_ms.map(|ms| ms as f64),
            completed: s.completed as f64,
            failed: s.failed as f64,
            groups: s
                .groups
                .into_iter()
                .map(|g| GroupStats {
                    name: g.name,
                    consumers: g.consumers as f64,
                    active: g.active as f64,
                    waiting: g.waiting.map(|n| n as f64),
                    oldest_waiting_ms: g.oldest_waiting_ms.map(|ms| ms as f64),
                })
                .collect(),
        })
    }

    /// What this process's workers of this queue did (shared by every object for the queue).
    #[napi]
    pub fn counters(&self) -> QueueCounters {
        let c = self.inner.counters().snapshot();
        QueueCounters {
            completed: c.completed as f64,
            failed: c.failed as f64,
            retried: c.retried as f64,
            dead: c.dead as f64,
            stalled: c.stalled as f64,
            duration_bounds: core::metrics::DURATION_BUCKETS.to_vec(),
            duration_buckets: c.duration_buckets.iter().map(|&n| n as f64).collect(),
            duration_sum_seconds: c.duration_sum_seconds,
        }
    }

    /// The next `limit` jobs workers will be given, oldest first.
    #[napi]
    pub async fn peek(&self, limit: u32) -> Result<Vec<NativeWaitingJob>> {
        let jobs = self.inner.peek(limit as usize).await.map_err(to_js_error)?;
        Ok(jobs
            .into_iter()
            .map(|j| {
                let (payload, bytes) = payload_or_bytes(&j.payload, j.binary);
                NativeWaitingJob {
                    id: j.id,
                    payload,
                    bytes,
                    attempt: j.attempt,
                }
            })
            .collect())
    }

    /// The queues with keys under this queue's prefix, by name.
    #[napi]
    pub async fn find_queues(&self) -> Result<Vec<FoundQueue>> {
        let found = self.inner.find_queues().await.map_err(to_js_error)?;
        Ok(found
            .into_iter()
            .map(|q| FoundQueue {
                name: q.name,
                mode: q.mode.map(mode_name),
            })
            .collect())
    }

    /// Waits up to `timeoutMs` for job `id`'s recorded outcome; null when it did not come.
    #[napi]
    pub async fn wait_for(&self, id: String, timeout_ms: f64) -> Result<Option<NativeOutcome>> {
        let timeout = Duration::from_millis(whole("timeoutMs", Some(timeout_ms))?.unwrap_or(0));
        let outcome = self
            .inner
            .wait_for(&id, timeout)
            .await
            .map_err(to_js_error)?;
        Ok(outcome.map(native_outcome))
    }

    /// Where job `id` is now (see `Queue::get_job` for what that costs).
    #[napi]
    pub async fn get_job(&self, id: String) -> Result<NativeJobStatus> {
        let s = self.inner.get_job(&id).await.map_err(to_js_error)?;
        let state = match s.state {
            core::JobState::Waiting => "waiting",
            core::JobState::Active => "active",
            core::JobState::Delayed => "delayed",
            core::JobState::Completed => "completed",
            core::JobState::Dead => "dead",
            core::JobState::Unknown => "unknown",
        };
        let mut out = NativeJobStatus {
            state: state.into(),
            payload: None,
            bytes: None,
            attempt: None,
            result: None,
            error: None,
            failed_at: None,
            due_at: s.due_ms.map(|ms| ms as f64),
        };
        let mut data = |payload: &core::Bytes, binary: bool| match text_or_bytes(payload, binary) {
            Ok(text) => out.payload = Some(text.to_owned()),
            Err(bytes) => out.bytes = Some(bytes),
        };
        if let Some(job) = &s.job {
            data(&job.payload, job.binary);
            out.attempt = Some(job.attempt);
        }
        if let Some(dead) = &s.dead {
            data(&dead.payload, dead.binary);
            out.attempt = Some(dead.attempts);
            out.error = Some(dead.error.clone());
            out.failed_at = Some(dead.failed_at_ms as f64);
        }
        if let Some(o) = s.outcome {
            let o = native_outcome(o);
            out.result = o.result;
            out.error = o.error;
        }
        Ok(out)
    }

    /// 'stream' or 'list' as this queue's keys in Redis say; null when they do not tell.
    #[napi]
    pub async fn detect_mode(&self) -> Result<Option<String>> {
        let mode = self.inner.detect_mode().await.map_err(to_js_error)?;
        Ok(mode.map(mode_name))
    }

    /// Stops fetching in every worker of this queue, in every process.
    #[napi]
    pub async fn pause(&self) -> Result<()> {
        self.inner.pause().await.map_err(to_js_error)
    }

    #[napi]
    pub async fn resume(&self) -> Result<()> {
        self.inner.resume().await.map_err(to_js_error)
    }

    /// A page of the dead letters, newest first.
    #[napi]
    pub async fn dead_page(&self, offset: u32, limit: u32) -> Result<Vec<NativeDeadJob>> {
        let jobs = self
            .inner
            .dead_page(offset as usize, limit as usize)
            .await
            .map_err(to_js_error)?;
        Ok(jobs
            .into_iter()
            .map(|j| {
                let (payload, bytes) = payload_or_bytes(&j.payload, j.binary);
                NativeDeadJob {
                    id: j.id,
                    payload,
                    bytes,
                    error: j.error,
                    attempts: j.attempts,
                    failed_at: j.failed_at_ms as f64,
                }
            })
            .collect())
    }

    /// Moves dead letters back to the queue as fresh jobs: these ids, or all when null.
    #[napi]
    pub async fn dead_retry(&self, ids: Option<Vec<String>>) -> Result<f64> {
        let n = self
            .inner
            .dead_retry(ids.as_deref())
            .await
            .map_err(to_js_error)?;
        Ok(n as f64)
    }

    #[napi]
    pub async fn dead_purge(&self) -> Result<f64> {
        let n = self.inner.dead_purge().await.map_err(to_js_error)?;
        Ok(n as f64)
    }

    /// Starts a worker. `onJobs` receives batches; `onEvent` receives errors and notices.
    #[napi(
        ts_args_type = "options: WorkerOptions, onJobs: (batch: JobBatch) => void, onEvent: (event: NativeEvent) => void"
    )]
    pub fn create_worker(
        &self,
        options: WorkerOptions,
        on_jobs: Function<JobBatch, ()>,
        on_event: Function<NativeEvent, ()>,
    ) -> Result<NativeWorker> {
        let cfg = core::WorkerConfig::try_from(&options)?;
        let jobs: JobsFn = on_jobs
            .build_threadsafe_function()
            .callee_handled::<false>()
            .build()?;
        let events: EventFn = on_event
            .build_threadsafe_function()
            .callee_handled::<false>()
            .build()?;
        let dispatch = Arc::new(JsDispatch {
            jobs: RwLock::new(Some(jobs)),
            events: RwLock::new(Some(events)),
        });
        let worker = napi::bindgen_prelude::within_runtime_if_available(|| {
            self.inner.worker(cfg, dispatch.clone())
        })
        .map_err(|e| {
            dispatch.release();
            to_js_error(e)
        })?;
        Ok(NativeWorker {
            inner: Arc::new(worker),
            dispatch,
        })
    }

    /// Which queue this is, the same for every object made for it in this process: url, prefix
    /// and name, with their defaults applied.
    #[napi(getter)]
    pub fn identity(&self) -> String {
        let c = self.inner.config();
        format!("{}\0{}\0{}", c.url, c.prefix, c.name)
    }

    /// The payload limit in force (the option, or its default).
    #[napi(getter)]
    pub fn max_payload_bytes(&self) -> f64 {
        self.inner.config().max_payload_bytes as f64
    }

    /// Marks the queue closed; later calls reject with ERR_HOLDFAST_CLOSED.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}

#[napi]
pub struct NativeWorker {
    inner: Arc<core::Worker>,
    dispatch: Arc<JsDispatch>,
}

#[napi]
impl NativeWorker {
    /// Unique per process run.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_owned()
    }

    /// The worker's max attempts (the option, or its default).
    #[napi(getter)]
    pub fn max_attempts(&self) -> u32 {
        self.inner.config().max_attempts
    }

    /// Reports finished jobs: `ok` tokens succeeded; `returned[i]` succeeded with the encoded
    /// result `results[i]` (jobs that keep their outcome); `failed[i]` failed with
    /// `reasons[i]`, and its next attempt (if any remain) waits `delays[i]` ms. Returns the
    /// next jobs to run (prefetched, for the slots just freed), or null.
    #[napi]
    pub fn complete(
        &self,
        ok: Uint32Array,
        failed: Uint32Array,
        reasons: Vec<String>,
        delays: Uint32Array,
        returned: Option<Uint32Array>,
        results: Option<Vec<String>>,
    ) -> Result<Option<JobBatch>> {
        let ok = ok.iter().map(|&t| (t, core::Outcome::Completed));
        let returned: Vec<(u32, core::Outcome)> = match (returned, results) {
            (Some(tokens), Some(results)) => tokens
                .iter()
                .zip(results)
                .map(|(&t, r)| (t, core::Outcome::Returned(r.into())))
                .collect(),
            _ => Vec::new(),
        };
        let ok = ok.chain(returned);
        let failed = failed
            .iter()
            .zip(reasons)
            .enumerate()
            .map(|(i, (&t, reason))| {
                let delay = delays.get(i).copied().unwrap_or(0);
                let retry_in = Duration::from_millis(u64::from(delay));
                (t, core::Outcome::Failed { reason, retry_in })
            });
        let next = self.inner.complete(ok.chain(failed)).map_err(to_js_error)?;
        let mut batches = to_batches(next).into_iter();
        let first = batches.next();
        // rarely more than one (huge payloads): the rest go the usual way
        for rest in batches {
            if let Some(f) = &*self.dispatch.jobs.read().unwrap() {
                f.call(rest, ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
        Ok(first)
    }

    /// Pauses this worker now (the queue's flag reaches it at its next poll anyway); resolves
    /// once it reads nothing new.
    #[napi]
    pub async fn pause_here(&self) {
        self.inner.pause_here().await
    }

    /// Resumes this worker now.
    #[napi]
    pub fn resume_here(&self) {
        self.inner.resume_here()
    }

    /// Stops fetching, waits for jobs in flight (at most `timeoutMs`, then their jobs go back
    /// to the queue), flushes acks, then releases the JS callbacks. Never rejects for Redis
    /// errors: they arrive as events, and the result counts what could not be done.
    #[napi]
    pub async fn close(&self, timeout_ms: Option<f64>) -> Result<CloseResult> {
        let timeout = whole("timeoutMs", timeout_ms)?.map(Duration::from_millis);
        let report = self.inner.close_within(timeout).await;
        self.dispatch.release();
        Ok(CloseResult {
            timed_out: report.timed_out as u32,
            left_to_lease_expiry: report.left_to_lease_expiry as u32,
        })
    }
}
