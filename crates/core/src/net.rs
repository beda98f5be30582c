//! Where Redis is and how to reach it: the parsed URL and TLS settings, and [`Endpoint::dial`],
//! the one way holdfast opens a socket. The redis crate's connections (handed a dialed stream)
//! and `resp.rs`'s fetch connection both go through it, so a URL or TLS setting cannot reach one
//! kind of connection and miss the other.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::tcp::socket2;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::TlsConfig;
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

#[derive(Clone, Debug)]
enum Addr {
    Tcp {
        host: String,
        port: u16,
    },
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// One Redis server: its address, TLS, and the settings sent once connected (user, password,
/// database).
#[derive(Clone)]
pub struct Endpoint {
    addr: Addr,
    tls: Option<Tls>,
    redis: RedisConnectionInfo,
}

impl Endpoint {
    /// Parses `redis://`, `rediss://` (TLS) and `redis+unix://` / `unix://` URLs. `tls` turns TLS
    /// on for a `redis://` URL too, as ioredis and node-redis do.
    pub fn new(url: &str, tls: Option<&TlsConfig>) -> Result<Self> {
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
        let tls = match (tls, secure) {
            (None, false) => None,
            (opts, _) => {
                let default = TlsConfig::default();
                let opts = opts.unwrap_or(&default);
                match &addr {
                    Addr::Tcp { host, .. } => Some(Tls::new(opts, host)?),
                    #[cfg(unix)]
                    Addr::Unix(_) => {
                        return Err(Error::InvalidArgument(
                            "tls needs a TCP url (redis:// or rediss://), not a unix socket".into(),
                        ))
                    }
                }
            }
        };
        Ok(Self { addr, tls, redis })
    }

    /// User, password and database, for connections that set themselves up (`resp.rs`).
    pub(crate) fn redis_settings(&self) -> &RedisConnectionInfo {
        &self.redis
    }

    /// A connected socket: TCP (with [`tcp_settings`], then TLS when configured) or a unix socket.
    pub(crate) async fn dial(&self) -> Result<Box<dyn Io>> {
        match &self.addr {
            Addr::Tcp { host, port } => {
                let tcp =
                    timed(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), *port))).await?;
                tcp_settings(&tcp).map_err(io_error)?;
                match &self.tls {
                    None => Ok(Box::new(tcp)),
                    Some(tls) => {
                        let handshake = tls.connector.connect(tls.server_name.clone(), tcp);
                        match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                            Err(_) => {
                                Err(Error::Connection("timed out in the TLS handshake".into()))
                            }
                            Ok(Err(e)) => Err(tls::handshake_error(e, &tls.server_name)),
                            Ok(Ok(stream)) => Ok(Box::new(stream)),
                        }
                    }
                }
            }
            #[cfg(unix)]
            Addr::Unix(path) => Ok(Box::new(
                timed(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path)).await?,
            )),
        }
    }

    /// A redis-crate connection over [`dial`](Self::dial), set up (AUTH, SELECT). The flag turns
    /// false once its socket is gone, so a dead connection is replaced before it is used.
    pub(crate) async fn multiplexed(
        &self,
        response_timeout: Duration,
    ) -> Result<(MultiplexedConnection, Arc<AtomicBool>)> {
        let io = self.dial().await?;
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
        let setup = MultiplexedConnection::new_with_config(&self.redis, io, config);
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
