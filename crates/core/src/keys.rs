//! The only place that formats a Redis key. Every key of one queue shares the hash tag `{name}`,
//! so all of them hash to one Cluster slot and every multi-key script stays legal there.

/// The consumer group every stream-mode worker joins.
pub const GROUP: &str = "workers";

/// Keys of one queue: `<prefix>:{<name>}:<part>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// Stream mode: the stream.
    pub stream: String,
    /// List mode: the list producers LPUSH to (`listKey` when given, to consume a list that
    /// other clients fill).
    pub wait: String,
    /// List mode: prefix of the per-worker processing lists, `active:<worker id>`.
    active_prefix: String,
    dedup_prefix: String,
    pub delayed: String,
    pub dead: String,
    pub workers: String,
    pub meta: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, name: &str, list_key: Option<&str>) -> Self {
        let key = |part: &str| format!("{prefix}:{{{name}}}:{part}");
        Self {
            stream: key("stream"),
            wait: list_key.map(str::to_owned).unwrap_or_else(|| key("wait")),
            active_prefix: key("active:"),
            dedup_prefix: key("dedup:"),
            delayed: key("delayed"),
            dead: key("dead"),
            workers: key("workers"),
            meta: key("meta"),
        }
    }

    /// Marks a `jobId` as seen, for the dedup window.
    pub fn dedup(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.dedup_prefix)
    }

    /// The processing list of one list-mode worker.
    pub fn active(&self, worker_id: &str) -> String {
        format!("{}{worker_id}", self.active_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = QueueKeys::new("holdfast", "email", None);
        assert_eq!(k.stream, "holdfast:{email}:stream");
        assert_eq!(k.dead, "holdfast:{email}:dead");
        assert_eq!(k.active("w1"), "holdfast:{email}:active:w1");
        assert_eq!(k.dedup("j"), "holdfast:{email}:dedup:j");
        for key in [
            &k.stream,
            &k.wait,
            &k.delayed,
            &k.dead,
            &k.workers,
            &k.meta,
            &k.active("w"),
        ] {
            assert!(key.starts_with("holdfast:{email}:"), "{key}");
        }
        assert_eq!(
            QueueKeys::new("hf", "email", Some("jobs:email")).wait,
            "jobs:email"
        );
    }
}
