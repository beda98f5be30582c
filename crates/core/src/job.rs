//! Jobs as the core hands them out and takes them in, and what a queue reports about them.

use bytes::Bytes;
use redis::Value;

use crate::envelope::JobOptions;

/// A job to enqueue. `payload` is the encoded data: text (JSON, from the JS layer), or bytes to
/// hand back as they are when `binary` is set.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub payload: Bytes,
    /// The payload is bytes, not text; it travels as it is and comes back flagged the same.
    pub binary: bool,
    /// Your id for the job; deduplicates adds within the queue's dedup window.
    pub job_id: Option<String>,
    pub max_attempts: Option<u32>,
    /// Backoff spec that travels with the job (opaque to the core; no `|` or `;`).
    pub backoff: Option<String>,
    /// Not before this time, unix ms.
    pub run_at_ms: Option<u64>,
    /// Record the outcome for this long once the job finishes (`Queue::wait_for`).
    pub keep_outcome_ms: Option<u64>,
}

impl NewJob {
    /// A job of text (or bytes) `payload`, copied.
    pub fn new(payload: impl AsRef<[u8]>) -> Self {
        Self {
            payload: Bytes::copy_from_slice(payload.as_ref()),
            ..Default::default()
        }
    }

    pub(crate) fn options(&self) -> JobOptions {
        JobOptions {
            max_attempts: self.max_attempts,
            backoff: self.backoff.clone(),
            binary: self.binary,
            keep_outcome_ms: self.keep_outcome_ms,
            group: None,
        }
    }
}

/// A delivered job. `token` identifies it in this worker until it is completed.
#[derive(Debug, Clone)]
pub struct Job {
    pub token: u32,
    /// What identifies this delivery in Redis, to finish it: the stream entry id (stream mode;
    /// a retry is a new entry) or the exact list element (list mode), which may hold any bytes.
    pub receipt: Bytes,
    /// Stable across attempts: the `jobId` given to `add`, else the first entry id.
    pub id: String,
    pub payload: Bytes,
    /// Added as bytes (`NewJob::binary`). Other producers' data is not flagged, whatever it holds.
    pub binary: bool,
    /// 1-based.
    pub attempt: u32,
    /// Per-job override of the worker's `max_attempts`.
    pub max_attempts: Option<u32>,
    /// Per-job backoff spec, as given to `add`.
    pub backoff: Option<String>,
    /// The job keeps its outcome this long (`NewJob::keep_outcome_ms`): complete it with
    /// [`crate::Outcome::Returned`] to record its result.
    pub keep_outcome_ms: Option<u64>,
    /// Stream mode: a retry for this consumer group only; the other groups skip it.
    pub for_group: Option<String>,
}

/// Counts of one queue, from [`crate::Queue::stats`]. In stream mode `waiting`, `active` and
/// `oldest_waiting_ms` are this queue's consumer group's; `groups` has every group's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Added and not yet delivered to any worker.
    pub waiting: u64,
    /// Delivered and not yet finished (held by a live worker, or by a dead one until recovered).
    pub active: u64,
    pub delayed: u64,
    pub dead: u64,
    /// Workers whose heartbeat deadline has not passed.
    pub workers: u64,
    /// Set by [`crate::Queue::pause`]: workers fetch nothing new.
    pub paused: bool,
    /// How long the next job to be delivered has waited, in ms: since it was added (stream
    /// mode: its entry id; list mode: its generated id). None when nothing waits, or when the
    /// next job cannot be dated (list mode: a `jobId` of the caller's, or raw data).
    pub oldest_waiting_ms: Option<u64>,
    /// Jobs completed by every process's workers, ever (written about once a second by each
    /// process, so a little behind; a process killed loses its last second).
    pub completed: u64,
    /// Handler failures, likewise: retried or dead-lettered.
    pub failed: u64,
    /// Stream mode: every consumer group reading the stream (several fan out from one
    /// stream, each getting every job), this queue's too once its workers made it.
    pub groups: Vec<GroupStats>,
}

/// One consumer group of a stream. A group that lags holds back every entry it has not
/// finished: entries leave the stream only once every group has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub name: String,
    pub consumers: u64,
    /// Delivered to this group and not yet finished.
    pub active: u64,
    /// Not yet delivered to this group (its lag); None when Redis cannot tell (before 7.0).
    pub waiting: Option<u64>,
    /// How long the next entry this group is to get has waited, in ms; None when none waits.
    pub oldest_waiting_ms: Option<u64>,
}

impl Stats {
    /// `{ waiting, active, delayed, dead, workers, paused (1/0), oldest waiting (ms, -1: none),
    /// completed, failed, { name, consumers, active, waiting (-1: unknown), oldest (-1: none),
    /// ... } }`, as the stream stats script replies.
    pub(crate) fn from_reply(reply: Value) -> Self {
        let mut parts = array(reply);
        let groups = if parts.len() > 9 {
            array(parts.remove(9))
        } else {
            Vec::new()
        };
        let counts: Vec<i64> = parts.iter().map(as_int).collect();
        let known = |v: &Value| u64::try_from(as_int(v)).ok();
        let mut stats = Self::from_counts(&counts);
        stats.groups = groups
            .chunks_exact(5)
            .map(|g| GroupStats {
                name: as_str(&g[0]).unwrap_or_default().into_owned(),
                consumers: known(&g[1]).unwrap_or(0),
                active: known(&g[2]).unwrap_or(0),
                waiting: known(&g[3]),
                oldest_waiting_ms: known(&g[4]),
            })
            .collect();
        stats
    }

    fn from_counts(counts: &[i64]) -> Self {
        let at = |i: usize| counts.get(i).copied().unwrap_or(0).max(0) as u64;
        Stats {
            waiting: at(0),
            active: at(1),
            delayed: at(2),
            dead: at(3),
            workers: at(4),
            paused: at(5) == 1,
            oldest_waiting_ms: counts.get(6).filter(|&&ms| ms >= 0).map(|&ms| ms as u64),
            completed: at(7),
            failed: at(8),
            groups: Vec::new(),
        }
    }
}

/// A finished job's outcome to record, for a job that keeps it: `record` is `c` + result (or
/// `d` + error), kept `keep_ms` at `outcome:<id>`.
pub(crate) struct KeptOutcome {
    pub id: String,
    pub keep_ms: u64,
    pub record: Vec<u8>,
}

/// A job in the dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadJob {
    pub id: String,
    /// The encoded data, as added.
    pub payload: Bytes,
    /// Added as bytes (`NewJob::binary`).
    pub binary: bool,
    pub attempts: u32,
    pub error: String,
    pub failed_at_ms: u64,
}

/// Stream fields: `d` payload, `id` job id, `a` attempt, `o` job options (see `envelope.rs`).
/// Absent fields take their defaults, so an entry added by plain `XADD key * d <json>` is a
/// valid job too. An entry without `d` is another producer's (`XADD jobs * type email to ...`):
/// its fields are its data, as a JSON object of strings (`field_map_json`), and none of them is
/// read as holdfast's.
pub(crate) fn from_fields(entry_id: String, fields: &[Value]) -> Job {
    let pairs: Vec<_> = fields
        .chunks_exact(2)
        .filter_map(|pair| Some((as_bytes(&pair[0])?, as_bytes(&pair[1])?)))
        .collect();
    from_pairs(
        entry_id,
        pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
    )
}

/// `from_fields` over (name, value) pairs, as `resp.rs` reads them straight off the wire.
pub(crate) fn from_pairs<'a>(
    entry_id: String,
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Job {
    let mut job = Job {
        token: 0,
        id: String::new(),
        receipt: Bytes::new(),
        payload: Bytes::new(),
        binary: false,
        attempt: 1,
        max_attempts: None,
        backoff: None,
        keep_outcome_ms: None,
        for_group: None,
    };
    if !pairs.clone().any(|(name, _)| name == b"d") {
        job.payload = Bytes::from(field_map_json(pairs));
        job.receipt = Bytes::from(entry_id.clone());
        job.id = entry_id;
        return job;
    }
    for (name, value) in pairs {
        match name {
            b"d" => job.payload = Bytes::copy_from_slice(value),
            b"id" => job.id = text(value),
            b"a" => job.attempt = text(value).parse().unwrap_or(1).max(1),
            b"o" => {
                let opts = JobOptions::decode(&text(value));
                job.max_attempts = opts.max_attempts;
                job.backoff = opts.backoff;
                job.binary = opts.binary;
                job.keep_outcome_ms = opts.keep_outcome_ms;
                job.for_group = opts.group;
            }
            _ => {}
        }
    }
    if job.id.is_empty() {
        job.id = entry_id.clone();
    }
    job.receipt = Bytes::from(entry_id);
    job
}

/// An entry's fields as a JSON object, in the entry's order (a repeated name: the last wins in
/// `JSON.parse`). Bytes that are not UTF-8 become U+FFFD. `lua/lib/stream.lua`'s
/// `hf_entry` builds the same object for the scripts that retry or dead-letter an entry.
pub(crate) fn field_map_json<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, &String::from_utf8_lossy(name));
        out.push(':');
        json_string(&mut out, &String::from_utf8_lossy(value));
    }
    out.push('}');
    out
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Bytes as text; invalid UTF-8 is replaced rather than refused (another producer's data).
pub(crate) fn text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v).into_owned(),
    }
}

/// A reply's bytes as they are (a payload may be any bytes).
pub(crate) fn as_bytes(v: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    match v {
        Value::BulkString(b) => Some(std::borrow::Cow::Borrowed(b)),
        Value::SimpleString(s) => Some(std::borrow::Cow::Borrowed(s.as_bytes())),
        Value::Int(i) => Some(std::borrow::Cow::Owned(i.to_string().into_bytes())),
        _ => None,
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

/// An integer reply (or its text); -1 for anything else.
fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => as_str(other).and_then(|s| s.parse().ok()).unwrap_or(-1),
    }
}

/// The items of an array reply (a RESP3 map flattened), or none.
pub(crate) fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_without_d_is_its_field_map() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"type", b"email"),
            (b"to", b"a\"b\\c\n\x01"),
            (b"id", b"42"),
            (b"\xff", b"caf\xc3\xa9"),
        ];
        let job = from_pairs("1-0".into(), pairs.into_iter());
        assert_eq!(
            std::str::from_utf8(&job.payload).unwrap(),
            r#"{"type":"email","to":"a\"b\\c\n\u0001","id":"42","\u{fffd}":"café"}"#
                .replace(r"\u{fffd}", "\u{fffd}")
        );
        // `id` and `a` are the producer's data here, not holdfast's
        assert_eq!((job.id.as_str(), job.attempt), ("1-0", 1));
        assert_eq!(&job.receipt[..], b"1-0");
    }

    #[test]
    fn an_entry_with_d_is_a_job() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"d", b"{\"n\":1}"), (b"id", b"j"), (b"a", b"3")];
        let job = from_pairs("1-0".into(), pairs.into_iter());
        assert_eq!(
            (&job.payload[..], job.id.as_str(), job.attempt),
            (&b"{\"n\":1}"[..], "j", 3)
        );
    }
}
