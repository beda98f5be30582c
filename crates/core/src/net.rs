//! Where Redis is and how to reach it: the parsed URL and TLS settings, and [`Endpoint::dial`],
//! the one way holdfast opens a socket. The redis crate's connections (handed a dialed stream)
//! and `resp.rs`'s fetch connection both go through it, so a URL or TLS setting cannot reach one
//! kind of connection and miss the other.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::tcp::socket2;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{QueueConfig, SentinelConfig, TlsConfig};
use crate::error::{redact, Error, Result};
use crate::tls::{self, Tls};

/// TCP connect; the TLS handshake and the connection's setup (AUTH, SELECT) get as long again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A link that went dead without a FIN or RST (a peer that vanished, a partition, a NAT that
/// forgot the flow) is noticed by the kernel: data not acknowledged for this long (TCP user
/// timeout), or an idle connection whose keepalive probes go unanswered, fails the connection.
/// Safe where the response timeout is not: a Redis that is slow (a long script, a big reply)
/// still acknowledges at the TCP level. The blocking reads have their own, shorter bound.
pub const DEAD_LINK: Duration = Duration::from_secs(5);

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone)]
enum Addr {
    Tcp {
        host: String,
        port: u16,
    },
    #[cfg(unix)]
    Unix(std::path::PathBuf),
    /// The master the sentinels name, asked anew on every connect.
    Sentinel(Arc<Sentinels>),
    /// The master that owns one slot of a Redis Cluster, asked anew on every connect.
    Cluster(Arc<Cluster>),
}

/// A node's address as `CLUSTER SLOTS` and `MOVED` give it.
type HostPort = (String, u16);

struct Cluster {
    slot: u16,
    seeds: Vec<Endpoint>,
    /// Nodes the last slot map named, asked before the seeds: a seed list whose nodes were
    /// replaced still finds the cluster.
    known: Mutex<Vec<HostPort>>,
    /// Where the last `MOVED` pointed: tried once by the next connect.
    moved: Mutex<Option<HostPort>>,
}

struct Sentinels {
    master_name: String,
    nodes: Vec<Endpoint>,
}

/// Port of a sentinel given as a bare host.
const SENTINEL_PORT: u16 = 26379;
/// Port of a cluster node given as a bare host.
const REDIS_PORT: u16 = 6379;

/// `host[:port]` (or `[v6]:port`) to a URL; URLs are kept.
fn node_url(node: &str, default_port: u16) -> String {
    match node.contains("://") {
        true => node.to_owned(),
        // a bare host, or [IPv6], has no port
        false if !node.contains(':') || node.ends_with(']') => {
            format!("redis://{node}:{default_port}")
        }
        false => format!("redis://{node}"),
    }
}

/// One Redis server (or the master of a Sentinel group): its address, TLS, and the settings
/// sent once connected (user, password, database).
#[derive(Clone)]
pub struct Endpoint {
    addr: Addr,
    tls: Option<Tls>,
    redis: RedisConnectionInfo,
}

impl Endpoint {
    /// Parses `redis://`, `rediss://` (TLS) and `redis+unix://` / `unix://` URLs. `tls` turns TLS
    /// on for a `redis://` URL too, as ioredis and node-redis do.
    ///
    /// With `sentinel`, the master is whichever server the sentinels name when a connection is
    /// made; the URL gives its user, password, database and scheme, not its address. TLS (the
    /// `tls` option or `rediss://`) applies to the sentinels too.
    pub fn new(
        url: &str,
        tls: Option<&TlsConfig>,
        sentinel: Option<&SentinelConfig>,
    ) -> Result<Self> {
        let bad = |why: String| {
            Error::InvalidArgument(format!(
                "invalid Redis url {:?} ({why}): expected redis[s]://[[user]:password@]host[:port][/db] or redis+unix:///path",
                redact(url)
            ))
        };
        // The redis crate is built without TLS: holdfast does the handshake itself.
        let (plain, secure) = match url.strip_prefix("rediss://") {
            Some(rest) => (format!("redis://{rest}"), true),
            None => (url.to_owned(), false),
        };
        let info = plain
            .as_str()
            .into_connection_info()
            .map_err(|e| bad(redact(&e.to_string())))?;
        // No CLIENT SETINFO on connect: the ACL rules in the README do not grant it (Redis 7.2+
        // and Valkey would log a denial per connection, Redis 6.2 too, for want of the
        // subcommand).
        let redis = info.redis_settings().clone().set_skip_set_lib_name();
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Addr::Tcp {
                host: host.clone(),
                port: *port,
            },
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
            other => return Err(bad(format!("unsupported address {other}"))),
        };
        let tls_opts = match (tls, secure) {
            (None, false) => None,
            (Some(opts), _) => Some(opts.clone()),
            (None, true) => Some(TlsConfig::default()),
        };
        if let Some(sentinel) = sentinel {
            return Self::sentinel(addr, tls_opts.as_ref(), redis, sentinel);
        }
        let tls = match (&tls_opts, &addr) {
            (None, _) => None,
            (Some(opts), Addr::Tcp { host, .. }) => Some(Tls::new(opts, host)?),
            (Some(_), _) => {
                return Err(Error::InvalidArgument(
                    "tls needs a TCP url (redis:// or rediss://), not a unix socket".into(),
                ))
            }
        };
        Ok(Self { addr, tls, redis })
    }

    fn sentinel(
        addr: Addr,
        tls: Option<&TlsConfig>,
        redis: RedisConnectionInfo,
        cfg: &SentinelConfig,
    ) -> Result<Self> {
        let bad = |why: &str| Error::InvalidArgument(format!("sentinel: {why}"));
        if !matches!(addr, Addr::Tcp { .. }) {
            return Err(bad(
                "the url must be redis:// or rediss://, not a unix socket",
            ));
        }
        if cfg.master_name.is_empty() {
            return Err(bad("masterName must be a non-empty string"));
        }
        if cfg.nodes.is_empty() {
            return Err(bad("nodes must list at least one sentinel (host:port)"));
        }
        let nodes = cfg
            .nodes
            .iter()
            .map(
                |node| match Endpoint::new(&node_url(node, SENTINEL_PORT), tls, None)? {
                    e @ Endpoint {
                        addr: Addr::Tcp { .. },
                        ..
                    } => Ok(e),
                    _ => Err(bad("nodes must be host:port or redis[s]:// urls")),
                },
            )
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            addr: Addr::Sentinel(Arc::new(Sentinels {
                master_name: cfg.master_name.clone(),
                nodes,
            })),
            // the name is the master's, set when it is known (`Tls::for_host`)
            tls: tls.map(|opts| Tls::new(opts, "localhost")).transpose()?,
            redis,
        })
    }

    /// The endpoint of a queue: its url, TLS, and Sentinel or Cluster (the master that owns the
    /// slot of the queue's hash tag).
    pub fn for_queue(cfg: &QueueConfig) -> Result<Self> {
        let endpoint = Self::new(&cfg.url, cfg.tls.as_ref(), cfg.sentinel.as_ref())?;
        let Some(seeds) = &cfg.cluster else {
            return Ok(endpoint);
        };
        let bad = |why: String| Error::InvalidArgument(format!("cluster: {why}"));
        if !matches!(endpoint.addr, Addr::Tcp { .. }) {
            return Err(bad(
                "the url must be redis:// or rediss://, not a unix socket".into(),
            ));
        }
        if endpoint.redis.db() != 0 {
            return Err(bad(format!(
                "a Redis Cluster has only database 0; the url asks for {}",
                endpoint.redis.db()
            )));
        }
        let tls_opts = cfg
            .tls
            .clone()
            .or_else(|| endpoint.tls.as_ref().map(|_| TlsConfig::default()));
        let seeds = seeds
            .iter()
            .map(|node| {
                let url = node_url(node, REDIS_PORT);
                let seed = Endpoint::new(&url, tls_opts.as_ref(), None)?;
                if !matches!(seed.addr, Addr::Tcp { .. }) || seed.redis.db() != 0 {
                    return Err(bad(format!(
                        "seed {:?}: expected host:port or a redis[s]://host:port url",
                        redact(node)
                    )));
                }
                // a bare seed, or one without credentials, uses the url's
                Ok(
                    match seed.redis.password().is_some() || node.contains('@') {
                        true => seed,
                        false => Endpoint {
                            redis: endpoint.redis.clone(),
                            ..seed
                        },
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            addr: Addr::Cluster(Arc::new(Cluster {
                slot: crate::keys::queue_slot(&cfg.prefix, &cfg.name),
                seeds,
                known: Mutex::default(),
                moved: Mutex::default(),
            })),
            // the name is the owner's, set when it is known (`Tls::for_host`)
            tls: tls_opts
                .as_ref()
                .map(|opts| Tls::new(opts, "localhost"))
                .transpose()?,
            redis: endpoint.redis,
        })
    }

    /// A Redis Cluster: commands follow its `MOVED` / `ASK` redirects.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.addr, Addr::Cluster(_))
    }

    /// A `MOVED` reply named the slot's new owner: the next connect goes there first.
    pub(crate) fn moved(&self, host: &str, port: u16) {
        if let Addr::Cluster(c) = &self.addr {
            *c.moved.lock().unwrap_or_else(|e| e.into_inner()) = Some((host.to_owned(), port));
        }
    }

    /// The node an `ASK` redirect names, with this endpoint's TLS and credentials.
    pub(crate) fn at(&self, host: &str, port: u16) -> Result<Endpoint> {
        Ok(Endpoint {
            addr: Addr::Tcp {
                host: host.to_owned(),
                port,
            },
            tls: self.tls.as_ref().map(|t| t.for_host(host)).transpose()?,
            redis: self.redis.clone(),
        })
    }

    /// The master is found through sentinels: a connection checks `ROLE` once set up, since a
    /// sentinel may name the old master for a moment after a failover.
    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self.addr, Addr::Sentinel(_))
    }

    /// `ROLE`'s first element, on a connection to the master the sentinels named.
    pub(crate) fn check_role(&self, role: &[u8]) -> Result<()> {
        match (&self.addr, role) {
            (_, b"master") => Ok(()),
            (Addr::Sentinel(s), role) => Err(Error::Connection(format!(
                "the server the sentinels named as master {:?} is a {} (a failover under way?)",
                s.master_name,
                String::from_utf8_lossy(role)
            ))),
            _ => Ok(()),
        }
    }

    /// `host:port`, for messages.
    fn name(&self) -> String {
        match &self.addr {
            Addr::Tcp { host, port } => format!("{host}:{port}"),
            #[cfg(unix)]
            Addr::Unix(path) => path.display().to_string(),
            Addr::Sentinel(s) => format!("the master {:?}", s.master_name),
            Addr::Cluster(c) => format!("the owner of slot {}", c.slot),
        }
    }

    /// Tells endpoints apart (address, user, password, TLS), so one process shares one
    /// subscriber per server (`signals.rs`). Never shown: it holds the password.
    pub(crate) fn identity(&self) -> String {
        format!(
            "{}\0{:?}\0{:?}\0{}",
            self.name(),
            self.redis.username(),
            self.redis.password(),
            self.tls.is_some()
        )
    }

    /// User, password and database, for connections that set themselves up (`resp.rs`).
    pub(crate) fn redis_settings(&self) -> &RedisConnectionInfo {
        &self.redis
    }

    /// A connected socket: TCP (with [`tcp_settings`], then TLS when configured) or a unix socket.
    pub(crate) async fn dial(&self) -> Result<Box<dyn Io>> {
        match &self.addr {
            Addr::Tcp { host, port } => dial_tcp(host, *port, self.tls.as_ref()).await,
            #[cfg(unix)]
            Addr::Unix(path) => Ok(Box::new(
                timed(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path)).await?,
            )),
            Addr::Sentinel(sentinels) => {
                let (host, port) = sentinels.master().await?;
                let tls = self.tls.as_ref().map(|t| t.for_host(&host)).transpose()?;
                dial_tcp(&host, port, tls.as_ref()).await
            }
            Addr::Cluster(cluster) => {
                let (host, port) = cluster.owner(self).await?;
                let tls = self.tls.as_ref().map(|t| t.for_host(&host)).transpose()?;
                dial_tcp(&host, port, tls.as_ref()).await
            }
        }
    }

    /// A redis-crate connection over [`dial`](Self::dial), set up (AUTH, SELECT). The flag turns
    /// false once its socket is gone, so a dead connection is replaced before it is used.
    pub(crate) async fn multiplexed(
        &self,
        response_timeout: Duration,
    ) -> Result<(MultiplexedConnection, Arc<AtomicBool>)> {
        let io = self.dial().await?;
        let (conn, alive) = set_up(io, &self.redis, response_timeout).await?;
        Ok((self.checked_role(conn).await?, alive))
    }
}

/// A redis-crate connection on a dialed socket: AUTH and SELECT sent, its driver running.
async fn set_up(
    io: Box<dyn Io>,
    redis: &RedisConnectionInfo,
    response_timeout: Duration,
) -> Result<(MultiplexedConnection, Arc<AtomicBool>)> {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
    let setup = MultiplexedConnection::new_with_config(redis, io, config);
    let (conn, driver) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
        .await
        .map_err(|_| Error::Connection("timed out setting up the connection".into()))?
        .map_err(|e| Error::from_redis(e, ""))?;
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    // The driver ends when the socket fails or the last handle to the connection is dropped.
    tokio::spawn(async move {
        driver.await;
        flag.store(false, Ordering::Release);
    });
    Ok((conn, alive))
}

impl Endpoint {
    async fn checked_role(&self, mut conn: MultiplexedConnection) -> Result<MultiplexedConnection> {
        if !self.is_sentinel() {
            return Ok(conn);
        }
        let role: redis::Value = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(|e| Error::from_redis(e, ""))?;
        let first = match &role {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::BulkString(b)) => b.clone(),
                Some(redis::Value::SimpleString(s)) => s.clone().into_bytes(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        self.check_role(&first)?;
        Ok(conn)
    }
}

impl Sentinels {
    /// Asks the sentinels in turn where the master is; the first that knows answers.
    async fn master(&self) -> Result<(String, u16)> {
        let mut why = Vec::new();
        for node in &self.nodes {
            match ask_master(node, &self.master_name).await {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => why.push(format!("{} knows no such master", node.name())),
                Err(e) => why.push(format!("{}: {e}", node.name())),
            }
        }
        Err(Error::Connection(format!(
            "no sentinel named the master {:?}: {}",
            self.master_name,
            why.join("; ")
        )))
    }
}

impl Cluster {
    /// The master that owns the slot: where the last `MOVED` pointed, else what the first node
    /// that answers `CLUSTER SLOTS` says (the nodes of the last map, then the seeds). A node
    /// that has not yet heard of a failover names the old master; the connect then fails and
    /// the caller's next attempt asks again.
    async fn owner(&self, endpoint: &Endpoint) -> Result<HostPort> {
        if let Some(moved) = self.moved.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Ok(moved);
        }
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut nodes = known
            .iter()
            .map(|(host, port)| endpoint.at(host, *port))
            .collect::<Result<Vec<_>>>()?;
        nodes.extend(self.seeds.iter().cloned());
        let mut why = Vec::new();
        for node in &nodes {
            match slot_map(node).await {
                Ok(map) => {
                    let Addr::Tcp { host, .. } = &node.addr else {
                        unreachable!("cluster nodes are TCP addresses")
                    };
                    let (owner, all) = owner_in(&map, self.slot, host);
                    if !all.is_empty() {
                        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = all;
                    }
                    match owner {
                        Some(owner) => return Ok(owner),
                        None => why.push(format!("{} says no node serves it", node.name())),
                    }
                }
                Err(e) => why.push(format!("{}: {e}", node.name())),
            }
        }
        Err(Error::Connection(format!(
            "no cluster node named the owner of slot {}: {}",
            self.slot,
            why.join("; ")
        )))
    }
}

async fn slot_map(node: &Endpoint) -> Result<redis::Value> {
    let Addr::Tcp { host, port } = &node.addr else {
        unreachable!("cluster nodes are TCP addresses (checked in Endpoint::for_queue)")
    };
    let io = dial_tcp(host, *port, node.tls.as_ref()).await?;
    let (mut conn, _alive) = set_up(io, &node.redis, CONNECT_TIMEOUT).await?;
    redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, ""))
}

/// From a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id, ..], replicas..], ..]`): the
/// master of `slot`, and every node named. An empty host is the node that was asked; `?` is a
/// node whose address it does not know.
fn owner_in(map: &redis::Value, slot: u16, asked: &str) -> (Option<HostPort>, Vec<HostPort>) {
    use redis::Value;
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let node = |v: &Value| -> Option<HostPort> {
        let Value::Array(parts) = v else { return None };
        let host = match parts.first()? {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let port = u16::try_from(int(parts.get(1)?)?).ok()?;
        match host.as_str() {
            "?" => None,
            "" => Some((asked.to_owned(), port)),
            _ => Some((host, port)),
        }
    };
    let (mut owner, mut all) = (None, Vec::new());
    let Value::Array(ranges) = map else {
        return (None, all);
    };
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let (Some(start), Some(end)) = (parts.first().and_then(int), parts.get(1).and_then(int))
        else {
            continue;
        };
        let nodes: Vec<_> = parts.iter().skip(2).filter_map(node).collect();
        if (start..=end).contains(&i64::from(slot)) && owner.is_none() {
            owner = parts.get(2).and_then(node);
        }
        for n in nodes {
            if !all.contains(&n) {
                all.push(n);
            }
        }
    }
    (owner, all)
}

async fn ask_master(sentinel: &Endpoint, name: &str) -> Result<Option<(String, u16)>> {
    let Addr::Tcp { host, port } = &sentinel.addr else {
        unreachable!("sentinels are TCP addresses (checked in Endpoint::sentinel)")
    };
    let io = dial_tcp(host, *port, sentinel.tls.as_ref()).await?;
    let (mut conn, _alive) = set_up(io, &sentinel.redis, CONNECT_TIMEOUT).await?;
    redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::from_redis(e, ""))
}

async fn dial_tcp(host: &str, port: u16, tls: Option<&Tls>) -> Result<Box<dyn Io>> {
    let tcp = timed(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await?;
    tcp_settings(&tcp).map_err(io_error)?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let handshake = tls.connector.connect(tls.server_name.clone(), tcp);
            match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                Err(_) => Err(Error::Connection("timed out in the TLS handshake".into())),
                Ok(Err(e)) => Err(tls::handshake_error(e, &tls.server_name)),
                Ok(Ok(stream)) => Ok(Box::new(stream)),
            }
        }
    }
}

/// TCP settings of every TCP connection: no Nagle delay, keepalive (idle 5 s, probes every
/// 1 s, 3 of them) and, on Linux, [`DEAD_LINK`] as the TCP user timeout.
fn tcp_settings(tcp: &TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let keepalive = keepalive.with_retries(3);
    let sock = socket2::SockRef::from(tcp);
    sock.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(DEAD_LINK))?;
    Ok(())
}

pub(crate) async fn timed<T>(
    limit: Duration,
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::Connection("timed out".into()))?
        .map_err(io_error)
}

pub(crate) fn io_error(e: std::io::Error) -> Error {
    Error::Connection(redact(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn the_owner_is_the_first_node_of_the_slot_range() {
        let map = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("", 7001),  // the node that was asked
                node("?", 7004), // an address it does not know
            ]),
        ]);
        let (owner, all) = owner_in(&map, 0, "seed");
        assert_eq!(owner, Some(("10.0.0.1".into(), 7000)));
        assert_eq!(owner_in(&map, 5460, "seed").0, owner);
        assert_eq!(owner_in(&map, 5461, "seed").0, Some(("seed".into(), 7001)));
        assert_eq!(owner_in(&map, 16000, "seed").0, None);
        assert_eq!(
            all,
            vec![
                ("10.0.0.1".into(), 7000),
                ("10.0.0.4".into(), 7003),
                ("seed".into(), 7001)
            ]
        );
        assert_eq!(node_url("h", 6379), "redis://h:6379");
        assert_eq!(node_url("[::1]", 6379), "redis://[::1]:6379");
        assert_eq!(node_url("h:7000", 6379), "redis://h:7000");
        assert_eq!(node_url("rediss://h:1", 6379), "rediss://h:1");
    }
}
