//! Connections, and the one way short commands are run. Two kinds of connection: a shared
//! multiplexed ConnectionManager for short commands ([`Conn`]), and one dedicated connection per
//! blocking loop whose response timeout outlasts its BLOCK. The redis crate's default 500 ms
//! response timeout would discard a reply that already moved a job to us, and a blocking call
//! stalls every other command on its connection (both measured; see ARCHITECTURE.md).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::{socket2, TcpSettings};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, IntoConnectionInfo};
use tokio::sync::OnceCell;

use crate::error::{redact, Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Short commands; a script over a large batch stays well inside it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A link that went dead without a FIN or RST (a peer that vanished, a partition, a NAT that
/// forgot the flow) is noticed by the kernel: data not acknowledged for this long (TCP user
/// timeout), or an idle connection whose keepalive probes go unanswered, fails the connection.
/// Safe where the response timeout is not: a Redis that is slow (a long script, a big reply)
/// still acknowledges at the TCP level. The blocking reads have their own, shorter bound.
pub const DEAD_LINK: Duration = Duration::from_secs(5);

/// TCP settings of every connection holdfast opens (the redis crate's and `resp.rs`'s).
pub(crate) fn tcp_settings() -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let keepalive = keepalive.with_retries(3);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let settings = settings.set_user_timeout(DEAD_LINK);
    settings
}

pub fn client(url: &str) -> Result<Client> {
    let info = url.into_connection_info().map_err(|e| {
        Error::InvalidArgument(format!(
            "invalid Redis url {:?} ({}): expected redis://[[user]:password@]host[:port][/db]",
            redact(url),
            redact(&e.to_string())
        ))
    })?;
    // No CLIENT SETINFO on connect: the ACL rules in the README do not grant it (Redis 7.2+ and
    // Valkey would log a denial per connection, Redis 6.2 too, for want of the subcommand).
    let redis = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info
        .set_tcp_settings(tcp_settings())
        .set_redis_settings(redis);
    Client::open(info).map_err(|e| Error::from_redis(e, ""))
}

/// A connection for one blocking loop: its response timeout is the block time plus a margin.
pub async fn dedicated(client: &Client, block: Duration) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(block + Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| Error::from_redis(e, ""))
}

/// The shared connection of one queue, for every short command of every layer: connects
/// lazily (a failed first connect is retried on the next call) and maps every error through
/// [`Error::from_redis`]. Cloning shares it.
#[derive(Clone)]
pub struct Conn {
    client: Client,
    manager: Arc<OnceCell<ConnectionManager>>,
}

impl Conn {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            manager: Arc::new(OnceCell::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A self-healing multiplexed connection. While Redis is down, a command fails after one
    /// quick reconnect attempt instead of waiting; the next command tries again.
    async fn manager(&self) -> Result<ConnectionManager> {
        self.manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(|e| Error::from_redis(e, ""))
            })
            .await
            .cloned()
    }

    /// Runs one request. ConnectionManager keeps a failed reconnect attempt until a command
    /// trips over it, so the first command after an outage fails with that stale error (and
    /// starts a fresh attempt). A refused connection sent nothing, so one more try is safe, even
    /// for XADD. `key` names the key a WRONGTYPE error is about.
    async fn run<T, F, Fut>(&self, key: &str, f: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.manager().await?;
        match f(conn.clone()).await {
            Err(e) if e.is_connection_refusal() => f(conn).await,
            other => other,
        }
        .map_err(|e| Error::from_redis(e, key))
    }

    pub async fn query<T: FromRedisValue>(&self, key: &str, cmd: &redis::Cmd) -> Result<T> {
        self.run(key, |mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    pub async fn pipe<T: FromRedisValue>(&self, key: &str, pipe: &redis::Pipeline) -> Result<T> {
        self.run(key, |mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    /// EVALSHA, loading the script on NOSCRIPT (after a Redis restart or failover).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        key: &str,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        self.run(key, |mut c| async move { call.invoke_async(&mut c).await })
            .await
    }
}
