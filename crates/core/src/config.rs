//! Options of a queue and of a worker, with their defaults and validation. These defaults are
//! the only ones: the binding and the JS layer leave an option unset to get them.

use std::time::Duration;

use crate::error::{Error, Result};

pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_PREFIX: &str = "holdfast";
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 512 * 1024;
/// Longest queue name accepted: keys stay short and readable in `redis-cli`.
pub const MAX_NAME_LEN: usize = 200;
/// Most jobs a worker reads ahead of its handlers, whatever the setting.
pub const MAX_PREFETCH: usize = 100_000;

/// The consumer group stream-mode workers join unless told another.
pub const DEFAULT_GROUP: &str = "workers";
/// Longest consumer group name accepted.
pub const MAX_GROUP_LEN: usize = 200;

/// Where a consumer group that holdfast creates starts reading. A group that exists already
/// keeps its own position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupStart {
    /// From the stream's first entry: jobs added before any worker ran are kept.
    #[default]
    Earliest,
    /// From entries added after the group is created (`XGROUP CREATE ... $`).
    Latest,
}

impl GroupStart {
    pub fn parse(start: &str) -> Result<Self> {
        match start {
            "earliest" => Ok(GroupStart::Earliest),
            "latest" => Ok(GroupStart::Latest),
            other => Err(Error::InvalidArgument(format!(
                "unknown groupStart {other:?}: use 'earliest' or 'latest'"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redis Streams consumer groups.
    Stream,
    /// The reliable two-list queue (LMOVE/BLMOVE into per-worker processing lists).
    List,
}

impl Mode {
    pub fn parse(mode: &str) -> Result<Self> {
        match mode {
            "stream" => Ok(Mode::Stream),
            "list" => Ok(Mode::List),
            other => Err(Error::InvalidArgument(format!(
                "unknown mode {other:?}: use 'stream' or 'list'"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    pub url: String,
    pub prefix: String,
    pub mode: Mode,
    /// List mode only: consume this existing list instead of `<prefix>:{<name>}:wait`.
    pub list_key: Option<String>,
    /// Stream mode only: consume this existing stream instead of `<prefix>:{<name>}:stream`.
    pub stream_key: Option<String>,
    /// Stream mode: the consumer group to join, or create (at `group_start`) when missing.
    pub group: String,
    pub group_start: GroupStart,
    pub max_payload_bytes: usize,
    /// Cap of the dead letters.
    pub dead_max_len: u64,
    /// Dead letters older than this are dropped.
    pub dead_max_age: Duration,
    /// An add with a `jobId` seen within this window adds nothing.
    pub dedup_window: Duration,
    /// TLS on every connection; `rediss://` URLs turn it on with the defaults.
    pub tls: Option<TlsConfig>,
    /// Adds resolve only once replicas and / or the append-only file have them.
    pub durable: Option<Durable>,
    /// Find the master through Redis Sentinel; `url` then gives only its credentials, database
    /// and scheme.
    pub sentinel: Option<SentinelConfig>,
    /// Redis Cluster: seed nodes (`host[:port]` or `redis[s]://` URLs). The queue lives in the
    /// slot of its hash tag; `url` then gives only credentials and scheme.
    pub cluster: Option<Vec<String>>,
}

/// Redis Sentinel: the master's name and the sentinels to ask where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelConfig {
    pub master_name: String,
    /// `host[:port]` (port 26379 by default) or `redis[s]://[[user]:password@]host:port` URLs,
    /// asked in this order.
    pub nodes: Vec<String>,
}

/// What an add waits for before it resolves: `WAIT` (replicas) and / or `WAITAOF` (fsync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Replicas that must have the job (with `fsync`: have written it to their AOF and fsynced).
    pub replicas: u32,
    /// The master must have fsynced the job to its append-only file (`WAITAOF`, Redis 7.2+,
    /// Valkey; needs `appendonly yes`).
    pub fsync: bool,
    /// Longest wait for the confirmation.
    pub timeout: Duration,
}

impl Default for Durable {
    fn default() -> Self {
        Self {
            replicas: 0,
            fsync: false,
            timeout: Duration::from_secs(2),
        }
    }
}

/// TLS settings, as Node.js's `tls.connect` takes them.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM CA certificates to trust instead of Mozilla's roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate chain, for mutual TLS (with `key`).
    pub cert: Option<Vec<u8>>,
    /// PEM private key of `cert`.
    pub key: Option<Vec<u8>>,
    /// The name the server's certificate must carry (and the SNI), when not the URL's host.
    pub servername: Option<String>,
    /// `false` accepts any server certificate: encrypted, but not authenticated.
    pub reject_unauthorized: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca: None,
            cert: None,
            key: None,
            servername: None,
            reject_unauthorized: true,
        }
    }
}

impl std::fmt::Debug for TlsConfig {
    // never prints the key
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("cert", &self.cert.as_ref().map(|_| "<pem>"))
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("servername", &self.servername)
            .field("reject_unauthorized", &self.reject_unauthorized)
            .finish()
    }
}

impl QueueConfig {
    /// The queue's keys; a consumer group other than the default one has its own (see
    /// [`crate::keys::QueueKeys`]).
    pub fn queue_keys(&self) -> crate::keys::QueueKeys {
        let own = self.mode == Mode::Stream && self.group != DEFAULT_GROUP;
        crate::keys::QueueKeys::new(&self.prefix, &self.name, own.then_some(&*self.group))
    }

    /// Stream mode's stream and group, as these options give them.
    pub fn stream_keys(&self) -> crate::keys::StreamKeys {
        crate::keys::StreamKeys::new(
            &self.prefix,
            &self.name,
            self.stream_key.as_deref(),
            &self.group,
        )
    }

    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: DEFAULT_URL.into(),
            prefix: DEFAULT_PREFIX.into(),
            mode: Mode::Stream,
            list_key: None,
            stream_key: None,
            group: DEFAULT_GROUP.into(),
            group_start: GroupStart::Earliest,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            dead_max_len: 10_000,
            dead_max_age: Duration::from_secs(7 * 24 * 3600),
            dedup_window: Duration::from_secs(24 * 3600),
            tls: None,
            durable: None,
            sentinel: None,
            cluster: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        validate_name("queue name", &self.name)?;
        validate_name("prefix", &self.prefix)?;
        if let Some(key) = &self.list_key {
            if self.mode != Mode::List {
                return Err(Error::InvalidArgument("listKey needs mode 'list'".into()));
            }
            if key.is_empty() || key.len() > 1024 {
                return Err(Error::InvalidArgument(
                    "listKey must be a Redis key of 1 to 1024 bytes".into(),
                ));
            }
        }
        if let Some(key) = &self.stream_key {
            if self.mode != Mode::Stream {
                return Err(Error::InvalidArgument(
                    "streamKey needs mode 'stream'".into(),
                ));
            }
            if key.is_empty() || key.len() > 1024 {
                return Err(Error::InvalidArgument(
                    "streamKey must be a Redis key of 1 to 1024 bytes".into(),
                ));
            }
        }
        if self.group.is_empty() || self.group.len() > MAX_GROUP_LEN {
            return Err(Error::InvalidArgument(format!(
                "group must be a consumer group name of 1 to {MAX_GROUP_LEN} bytes"
            )));
        }
        if self.mode != Mode::Stream
            && (self.group != DEFAULT_GROUP || self.group_start != GroupStart::Earliest)
        {
            return Err(Error::InvalidArgument(
                "group and groupStart need mode 'stream'".into(),
            ));
        }
        if self.dead_max_len == 0 {
            return Err(Error::InvalidArgument(
                "deadLetter.maxLen must be at least 1".into(),
            ));
        }
        if self.dedup_window.is_zero() || self.dead_max_age.is_zero() {
            return Err(Error::InvalidArgument(
                "dedupWindowMs and deadLetter.maxAgeMs must be greater than 0".into(),
            ));
        }
        if let Some(d) = &self.durable {
            if d.replicas == 0 && !d.fsync {
                return Err(Error::InvalidArgument(
                    "durable needs replicas >= 1 or fsync: true".into(),
                ));
            }
            if d.timeout.is_zero() || d.timeout > Duration::from_secs(3600) {
                return Err(Error::InvalidArgument(
                    "durable.timeoutMs must be between 1 and 3600000".into(),
                ));
            }
        }
        if let Some(seeds) = &self.cluster {
            if seeds.is_empty() {
                return Err(Error::InvalidArgument(
                    "cluster must list at least one seed node (host:port or a redis[s]:// url)"
                        .into(),
                ));
            }
            if self.sentinel.is_some() {
                return Err(Error::InvalidArgument(
                    "cluster and sentinel exclude each other: a Redis Cluster fails over by itself"
                        .into(),
                ));
            }
            let own = [("listKey", &self.list_key), ("streamKey", &self.stream_key)];
            for (option, key) in own {
                let Some(key) = key else { continue };
                let want = crate::keys::queue_slot(&self.prefix, &self.name);
                if crate::keys::slot(key.as_bytes()) != want {
                    return Err(Error::InvalidArgument(format!(
                        "in a Redis Cluster, {option} {key:?} must hash to the queue's slot \
                         {want}: give it the queue's hash tag, e.g. \"{{{}}}:{}\"",
                        self.name, key
                    )));
                }
            }
        }
        if self.max_payload_bytes == 0 {
            return Err(Error::InvalidArgument(
                "maxPayloadBytes must be a positive number of bytes".into(),
            ));
        }
        Ok(())
    }
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a non-empty string"
        )));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidArgument(format!(
            "{what} is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    // Braces would break the Cluster hash tag; control characters make keys unreadable.
    if name.chars().any(|c| c == '{' || c == '}' || c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "{what} {name:?} may not contain '{{', '}}' or control characters"
        )));
    }
    Ok(())
}

/// How often a worker with this visibility timeout looks for expired leases (and, in list mode,
/// for dead workers): a dead worker's jobs run again within 1.25 x the visibility timeout.
pub fn recover_every(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 4).max(Duration::from_millis(50))
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs in flight in this worker at once.
    pub concurrency: usize,
    /// How long a job may go without its lease being renewed before another worker may take it
    /// (and how long a worker may stay silent before it counts as dead). Leases are renewed by
    /// the worker's Rust timers, so this bounds how long a crashed worker's jobs wait, not how
    /// long a handler may run.
    pub visibility_timeout: Duration,
    /// Handler runs per job (first run included) before the job goes to `dead`.
    pub max_attempts: u32,
    /// Deliveries of one entry (crashes, expired leases) before it goes to `dead`.
    pub max_deliveries: u32,
    /// Longest wait of one blocking read (XREADGROUP BLOCK, BLMOVE timeout): what an idle
    /// worker costs Redis. `close` and `pause` wake a blocked read with CLIENT UNBLOCK; without
    /// that permission they wait for it.
    pub block: Duration,
    /// Jobs fetched ahead of free handler slots (their leases are renewed like the others'),
    /// handed out by [`crate::Worker::complete`].
    pub prefetch: PrefetchPolicy,
}

/// How many jobs a worker reads ahead of its free handler slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrefetchPolicy {
    /// From `concurrency` up to 10 x `concurrency`: about as many jobs as the handlers finished
    /// in the last 50 ms (`runtime/prefetch.rs`), so fast handlers get large reads while slow
    /// ones hold no more than `concurrency` ahead and leave the rest to other workers.
    #[default]
    Adaptive,
    /// Exactly this many (0: none).
    Fixed(usize),
    /// Adaptive, between these two.
    Between(usize, usize),
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            visibility_timeout: Duration::from_secs(3),
            max_attempts: 3,
            max_deliveries: 5,
            block: Duration::from_secs(5),
            prefetch: PrefetchPolicy::Adaptive,
        }
    }
}

impl WorkerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == 0 || self.concurrency > 100_000 {
            return Err(Error::InvalidArgument(format!(
                "concurrency must be between 1 and 100000, got {}",
                self.concurrency
            )));
        }
        if self.visibility_timeout < Duration::from_millis(100) {
            return Err(Error::InvalidArgument(
                "visibilityTimeoutMs must be at least 100 ms".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::InvalidArgument(
                "maxAttempts must be at least 1".into(),
            ));
        }
        if self.max_deliveries == 0 {
            return Err(Error::InvalidArgument(
                "maxDeliveries must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The prefetch floor and ceiling; the ceiling is above the floor only when adaptive.
    pub fn prefetch_range(&self) -> (usize, usize) {
        let (floor, max) = match self.prefetch {
            PrefetchPolicy::Adaptive => (self.concurrency, self.concurrency * 10),
            PrefetchPolicy::Fixed(n) => (n, 0),
            PrefetchPolicy::Between(floor, max) => (floor, max),
        };
        (floor.min(MAX_PREFETCH), max.min(MAX_PREFETCH))
    }

    /// Leases are renewed three times per visibility timeout, so one late renewal is harmless.
    pub fn renew_every(&self) -> Duration {
        self.visibility_timeout / 3
    }

    /// How often to look for expired leases: a dead worker's jobs run again within
    /// 1.25 x the visibility timeout.
    pub fn recover_every(&self) -> Duration {
        recover_every(self.visibility_timeout)
    }

    /// Heartbeats name the dead workers (list mode reaps them then), so they come as often as
    /// the recovery step: a dead worker's jobs run again within ~1.25 x the visibility timeout.
    pub fn heartbeat_every(&self) -> Duration {
        recover_every(self.visibility_timeout).min(Duration::from_secs(5))
    }

    /// How long this worker must have reached Redis without a gap before it may take another
    /// worker's jobs: one renewal period, so every live worker has renewed its leases since
    /// Redis came back, plus one heartbeat, the step at which contact is measured.
    pub fn steady_after(&self) -> Duration {
        self.renew_every() + self.heartbeat_every()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(QueueConfig::new("email").validate().is_ok());
        assert!(QueueConfig::new("").validate().is_err());
        assert!(QueueConfig::new("a".repeat(201)).validate().is_err());
        assert!(QueueConfig::new("a{b}").validate().is_err());
        assert!(Mode::parse("stream").is_ok());
        assert_eq!(
            Mode::parse("fifo").unwrap_err().code(),
            "ERR_HOLDFAST_INVALID_ARGUMENT"
        );
    }

    #[test]
    fn worker_limits() {
        let cfg = WorkerConfig {
            concurrency: 0,
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        assert!(WorkerConfig::default().validate().is_ok());
    }
}
