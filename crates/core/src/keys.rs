//! The only place that formats a Redis key. Every key of one queue shares the hash tag `{name}`,
//! so all of them hash to one Cluster slot and every multi-key script stays legal there.
//!
//! [`QueueKeys`] are the keys every mode has; [`StreamKeys`] and [`ListKeys`] belong to one
//! mode's protocol each (`protocol/stream.rs`, `protocol/list.rs`) and are built here too.

fn key(prefix: &str, name: &str, part: &str) -> String {
    format!("{prefix}:{{{name}}}:{part}")
}

/// Keys of one queue that every mode has: `<prefix>:{<name>}:<part>`. A stream-mode queue
/// whose consumer group is not the default one keeps what belongs to its group (dead letters,
/// workers, totals and pause flag, outcomes, scheduler lease) apart, under
/// `<prefix>:{<name>}:g:<group>:<part>`, so several groups fan out from one stream; the jobs
/// (`delayed`, `dedup`) and the wake-up channel stay the queue's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    dedup_prefix: String,
    /// zset: job envelope -> due time (unix ms), for delayed adds and retries after a backoff.
    pub delayed: String,
    /// The dead letters: a capped stream, in both modes.
    pub dead: String,
    /// zset: worker id -> heartbeat deadline (unix ms).
    pub workers: String,
    /// hash: `paused`, and the finished-job totals `completed`, `failed`.
    pub meta: String,
    /// A short capped stream of the ids whose outcome was just recorded (an entry per up to 100
    /// jobs, a field `id` each): what `waitFor` reads.
    pub outcomes: String,
    /// Prefix of `outcome:<job id>`: a finished job's outcome, for jobs that keep it.
    pub outcome_prefix: String,
    /// string: the id of the worker whose scheduler moves due jobs (`promote.lua`).
    pub scheduler: String,
    /// Not a key: the pub/sub channel that wakes the queue's idle workers (`signals.rs`):
    /// `d` a job became the earliest in `delayed`, `p` the paused flag changed, `l` the
    /// scheduler lease was given up.
    pub events: String,
}

impl QueueKeys {
    /// `group`: the consumer group whose keys these are, None for the default group (and list
    /// mode).
    pub fn new(prefix: &str, name: &str, group: Option<&str>) -> Self {
        let own = |part: &str| match group {
            Some(g) => key(prefix, name, &format!("g:{g}:{part}")),
            None => key(prefix, name, part),
        };
        Self {
            dedup_prefix: key(prefix, name, "dedup:"),
            delayed: key(prefix, name, "delayed"),
            dead: own("dead"),
            workers: own("workers"),
            meta: own("meta"),
            outcomes: own("outcomes"),
            outcome_prefix: own("outcome:"),
            scheduler: own("scheduler"),
            events: key(prefix, name, "events"),
        }
    }

    /// The recorded outcome of one job (`c` + result, or `d` + error), for jobs that keep it.
    pub fn outcome(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.outcome_prefix)
    }

    /// Marks a `jobId` as seen, for the dedup window.
    pub fn dedup(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.dedup_prefix)
    }
}

/// Stream mode's own key, and the consumer group that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKeys {
    /// The stream of jobs: `streamKey` when given (an existing stream other clients `XADD`
    /// to), else `<prefix>:{<name>}:stream`.
    pub stream: String,
    /// Not a key: the consumer group this queue's workers join (`group`, default `workers`).
    pub group: String,
}

impl StreamKeys {
    pub fn new(prefix: &str, name: &str, stream_key: Option<&str>, group: &str) -> Self {
        Self {
            stream: stream_key
                .map(str::to_owned)
                .unwrap_or_else(|| key(prefix, name, "stream")),
            group: group.to_owned(),
        }
    }
}

/// List mode's own keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKeys {
    /// The list producers LPUSH to (`listKey` when given, to consume a list that other clients
    /// fill).
    pub wait: String,
    /// Prefix of the per-worker processing lists, `active:<worker id>`.
    active_prefix: String,
}

impl ListKeys {
    pub fn new(prefix: &str, name: &str, list_key: Option<&str>) -> Self {
        Self {
            wait: list_key
                .map(str::to_owned)
                .unwrap_or_else(|| key(prefix, name, "wait")),
            active_prefix: key(prefix, name, "active:"),
        }
    }

    /// The processing list of one worker.
    pub fn active(&self, worker_id: &str) -> String {
        format!("{}{worker_id}", self.active_prefix)
    }
}

/// A SCAN pattern for every key of every queue under `prefix` (its glob characters escaped).
pub fn scan_pattern(prefix: &str) -> String {
    format!("{}:{{*", glob_escape(prefix))
}

/// A SCAN pattern for the processing lists of one list-mode queue.
pub fn active_pattern(prefix: &str, name: &str) -> String {
    format!("{}*", glob_escape(&key(prefix, name, "active:")))
}

/// `s` with SCAN / ZSCAN glob characters escaped.
pub fn glob_escape(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p
}

/// The queue a key under `prefix` belongs to, and which part it is (`stream`, `wait`,
/// `active`, `dedup`, `outcome`, `outcomes`, `delayed`, `dead`, `workers`, `meta`,
/// `scheduler`, or `g` for any key of a consumer group's own); None for any other key.
pub fn parse_queue_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'static str)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{")?;
    // parts with an id (or group) of their own after them, which may hold anything: found
    // first, the earliest of them wins
    let with_id = ["active", "dedup", "outcome", "g"]
        .into_iter()
        .filter_map(|part| Some((rest.find(&format!("}}:{part}:"))?, part)))
        .min()
        .map(|(at, part)| (&rest[..at], part));
    const WHOLE: [&str; 8] = [
        "stream",
        "wait",
        "delayed",
        "dead",
        "workers",
        "meta",
        "outcomes",
        "scheduler",
    ];
    let whole = || {
        let (name, part) = rest.rsplit_once("}:")?;
        WHOLE.into_iter().find(|&p| p == part).map(|p| (name, p))
    };
    with_id.or_else(whole).filter(|(name, _)| !name.is_empty())
}

/// Redis Cluster slots.
pub const SLOTS: u16 = 16384;

/// The Cluster slot of a key: CRC16 (XMODEM) of its hash tag (the part between the first `{`
/// and the next `}`, when not empty) or of the whole key, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&len| len > 0)
            .map(|len| &rest[..len])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// The slot every key of a queue hashes to.
pub fn queue_slot(prefix: &str, name: &str) -> u16 {
    slot(key(prefix, name, "meta").as_bytes())
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // the spec's check value, and slots CLUSTER KEYSLOT gives (tests/cluster.rs asks a
        // real node too)
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}")); // empty tag: whole key
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(
            queue_slot("holdfast", "email"),
            slot(b"holdfast:{email}:stream")
        );
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = QueueKeys::new("holdfast", "email", None);
        let s = StreamKeys::new("holdfast", "email", None, "workers");
        let l = ListKeys::new("holdfast", "email", None);
        assert_eq!(s.stream, "holdfast:{email}:stream");
        assert_eq!(k.dead, "holdfast:{email}:dead");
        assert_eq!(l.active("w1"), "holdfast:{email}:active:w1");
        assert_eq!(k.dedup("j"), "holdfast:{email}:dedup:j");
        for key in [
            &s.stream,
            &l.wait,
            &k.delayed,
            &k.dead,
            &k.workers,
            &k.meta,
            &l.active("w"),
        ] {
            assert!(key.starts_with("holdfast:{email}:"), "{key}");
        }
        assert_eq!(
            ListKeys::new("hf", "email", Some("jobs:email")).wait,
            "jobs:email"
        );
    }

    #[test]
    fn keys_tell_their_queue() {
        let k = QueueKeys::new("hf", "a b/c", None);
        let g = QueueKeys::new("hf", "a b/c", Some("bill:ing}"));
        assert_eq!(g.dead, "hf:{a b/c}:g:bill:ing}:dead");
        assert_eq!((&g.delayed, &g.events), (&k.delayed, &k.events));
        assert_eq!(parse_queue_key("hf", &g.meta), Some(("a b/c", "g")));
        assert_eq!(parse_queue_key("hf", &g.outcome("x")), Some(("a b/c", "g")));
        let l = ListKeys::new("hf", "a b/c", None);
        assert_eq!(parse_queue_key("hf", &k.meta), Some(("a b/c", "meta")));
        assert_eq!(
            parse_queue_key("hf", &k.scheduler),
            Some(("a b/c", "scheduler"))
        );
        assert_eq!(parse_queue_key("hf", &l.wait), Some(("a b/c", "wait")));
        assert_eq!(
            parse_queue_key("hf", &l.active("host:1:ab")),
            Some(("a b/c", "active"))
        );
        assert_eq!(
            parse_queue_key("hf", &k.dedup("x}:meta")),
            Some(("a b/c", "dedup"))
        );
        assert_eq!(parse_queue_key("hf", "hf:{q}:other"), None);
        assert_eq!(parse_queue_key("hf", "hfx:{q}:meta"), None);
        assert_eq!(parse_queue_key("hf", "hf:{}:meta"), None);
        assert_eq!(scan_pattern("a*b[1]"), "a\\*b\\[1\\]:{*");
    }
}
