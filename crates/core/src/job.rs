//! Jobs as the core hands them out and takes them in.

use redis::Value;

use crate::envelope::JobOptions;

/// A job to enqueue. `payload` is the encoded data (JSON, produced by the caller).
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub payload: String,
    /// Your id for the job; deduplicates adds within the queue's dedup window.
    pub job_id: Option<String>,
    pub max_attempts: Option<u32>,
    /// Backoff spec that travels with the job (opaque to the core; no `|` or `;`).
    pub backoff: Option<String>,
    /// Not before this time, unix ms.
    pub run_at_ms: Option<u64>,
}

impl NewJob {
    pub fn new(payload: impl Into<String>) -> Self {
        Self {
            payload: payload.into(),
            ..Default::default()
        }
    }

    pub(crate) fn options(&self) -> JobOptions {
        JobOptions {
            max_attempts: self.max_attempts,
            backoff: self.backoff.clone(),
        }
    }
}

/// A delivered job. `token` identifies it in this worker until it is completed.
#[derive(Debug, Clone)]
pub struct Job {
    pub token: u32,
    /// What identifies this delivery in Redis, to finish it: the stream entry id (stream mode;
    /// a retry is a new entry) or the exact list element (list mode).
    pub receipt: String,
    /// Stable across attempts: the `jobId` given to `add`, else the first entry id.
    pub id: String,
    pub payload: String,
    /// 1-based.
    pub attempt: u32,
    /// Per-job override of the worker's `max_attempts`.
    pub max_attempts: Option<u32>,
    /// Per-job backoff spec, as given to `add`.
    pub backoff: Option<String>,
}

/// Stream fields: `d` payload, `id` job id, `a` attempt, `o` job options (see `envelope.rs`).
/// Absent fields take their defaults, so an entry added by plain `XADD key * d <json>` is a
/// valid job too.
pub(crate) fn from_fields(entry_id: String, fields: &[Value]) -> Job {
    let pairs: Vec<_> = fields
        .chunks_exact(2)
        .filter_map(|pair| Some((as_str(&pair[0])?, as_str(&pair[1])?)))
        .collect();
    from_pairs(
        entry_id,
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    )
}

/// `from_fields` over (name, value) pairs, as `resp.rs` reads them straight off the wire.
pub(crate) fn from_pairs<'a>(
    entry_id: String,
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Job {
    let mut job = Job {
        token: 0,
        id: String::new(),
        receipt: entry_id,
        payload: String::new(),
        attempt: 1,
        max_attempts: None,
        backoff: None,
    };
    for (name, value) in pairs {
        match name {
            b"d" => job.payload = text(value),
            b"id" => job.id = text(value),
            b"a" => job.attempt = text(value).parse().unwrap_or(1).max(1),
            b"o" => {
                let opts = JobOptions::decode(&text(value));
                job.max_attempts = opts.max_attempts;
                job.backoff = opts.backoff;
            }
            _ => {}
        }
    }
    if job.id.is_empty() {
        job.id = job.receipt.clone();
    }
    job
}

/// Bytes as text; invalid UTF-8 is replaced rather than refused (another producer's data).
pub(crate) fn text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v).into_owned(),
    }
}

pub(crate) fn as_str(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b)),
        Value::SimpleString(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Int(i) => Some(std::borrow::Cow::Owned(i.to_string())),
        _ => None,
    }
}
