//! Connections, and the one way short commands are run. Two kinds of connection, both redis-crate
//! `MultiplexedConnection`s over a socket from [`Endpoint::dial`]: a shared one that replaces
//! itself after a failure, for short commands ([`Conn`]), and one dedicated connection per
//! blocking loop whose response timeout outlasts its BLOCK. The redis crate's default 500 ms
//! response timeout would discard a reply that already moved a job to us, and a blocking call
//! stalls every other command on its connection (both measured; see ARCHITECTURE.md).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::FromRedisValue;

use crate::config::Durable;
use crate::error::{Error, Result};
use crate::net::Endpoint;

/// Short commands; a script over a large batch stays well inside it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request keeps following a cluster's redirects (a slot moving, a failover being
/// agreed) before it fails with the last one.
const REDIRECTS: Duration = Duration::from_secs(5);

/// Why a request that no command of ran may be sent again, in a Redis Cluster.
#[derive(Debug, PartialEq)]
enum Redirect {
    Moved(String, u16),
    Ask(String, u16),
    /// `TRYAGAIN` (the keys of a multi-key command are split by a migration) or `CLUSTERDOWN`.
    Later,
}

impl Redirect {
    /// A single command's redirect, or a pipeline's when every one of its `commands` got one
    /// (all of a queue's keys share a slot, so they move together); a transaction aborted by
    /// redirects ran nothing either.
    fn of(err: &redis::RedisError, commands: usize) -> Option<Self> {
        let errors = err.clone().into_server_errors()?;
        let aborted = err.code() == Some("EXECABORT") || errors.len() >= commands;
        let first = errors.first().map(|(_, e)| e)?;
        if !aborted {
            return None;
        }
        let target = || {
            let addr = first.details()?.split_ascii_whitespace().nth(1)?;
            let (host, port) = addr.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse().ok()?))
        };
        let same = |code: &str| errors.iter().all(|(_, e)| e.code() == code);
        match first.code() {
            "MOVED" if same("MOVED") => target().map(|(h, p)| Redirect::Moved(h, p)),
            "ASK" if same("ASK") && errors.len() == 1 => target().map(|(h, p)| Redirect::Ask(h, p)),
            "ASK" | "TRYAGAIN" | "CLUSTERDOWN"
                if errors.iter().all(|(_, e)| {
                    matches!(e.code(), "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED")
                }) =>
            {
                Some(Redirect::Later)
            }
            _ => None,
        }
    }
}

/// A connection for one blocking loop: its response timeout is the block time plus a margin.
pub async fn dedicated(endpoint: &Endpoint, block: Duration) -> Result<MultiplexedConnection> {
    let (conn, _alive) = endpoint.multiplexed(block + Duration::from_secs(2)).await?;
    Ok(conn)
}

/// The shared connection of one queue, for every short command of every layer: connects on
/// first use, replaces a connection whose socket is gone before using it, and maps every error
/// through [`Error::from_redis`]. While Redis is down, a command fails after one connect
/// attempt instead of waiting; callers that queued behind that attempt share its failure, and
/// the next command tries again. Cloning shares it.
#[derive(Clone)]
pub struct Conn {
    endpoint: Endpoint,
    link: Arc<Link>,
    /// Every command is confirmed by WAIT / WAITAOF on its connection (see [`Conn::durable`]).
    durable: Option<Durable>,
    response_timeout: Duration,
}

#[derive(Default)]
struct Link {
    current: Mutex<Option<Live>>,
    /// Held while connecting; the last failed attempt and when it ended.
    connecting: tokio::sync::Mutex<Option<(Instant, Error)>>,
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    alive: Arc<AtomicBool>,
    generation: u64,
    /// `durable.fsync`: this server said it can confirm fsyncs.
    can_fsync: Arc<AtomicBool>,
}

impl Conn {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            link: Arc::default(),
            durable: None,
            response_timeout: RESPONSE_TIMEOUT,
        }
    }

    /// A connection of its own whose every command (only adds go through it) is followed by
    /// WAIT / WAITAOF on the same connection, which is what they confirm: the writes of their own
    /// client. They block that connection meanwhile, so the queue's other commands (lease
    /// renewals among them) stay on the shared one.
    pub fn durable(endpoint: Endpoint, durable: Durable) -> Self {
        Self {
            endpoint,
            link: Arc::default(),
            durable: Some(durable),
            response_timeout: RESPONSE_TIMEOUT.max(durable.timeout + Duration::from_secs(2)),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn current(&self) -> Option<Live> {
        let current = self.link.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|live| live.alive.load(Ordering::Acquire))
            .cloned()
    }

    async fn live(&self) -> Result<Live> {
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let asked = Instant::now();
        let mut failed = self.link.connecting.lock().await;
        if let Some(live) = self.current() {
            return Ok(live); // another caller connected meanwhile
        }
        if let Some((at, err)) = &*failed {
            if *at >= asked {
                return Err(err.clone()); // the attempt this caller waited for failed
            }
        }
        match self.endpoint.multiplexed(self.response_timeout).await {
            Ok((conn, alive)) => {
                let generation = self.link.generation.fetch_add(1, Ordering::Relaxed) + 1;
                let live = Live {
                    conn,
                    alive,
                    generation,
                    can_fsync: Arc::default(),
                };
                *self.link.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
                *failed = None;
                Ok(live)
            }
            Err(e) => {
                *failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Forgets a connection that failed under a command, unless it was replaced already.
    fn forget(&self, generation: u64) {
        let mut current = self.link.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|l| l.generation == generation) {
            *current = None;
        }
    }

    /// Runs one request. A command that failed on a broken or silent connection may have run,
    /// so it is not retried; the connection is replaced for the next one. `key` names the key
    /// a WRONGTYPE error is about; `commands` is how many the request sends.
    ///
    /// In a Redis Cluster, a request that no command of ran because the slot is elsewhere is
    /// sent again, for up to [`REDIRECTS`]: after `MOVED` to the new owner, after `ASK` to the
    /// importing node with `ASKING`, after `TRYAGAIN` / `CLUSTERDOWN` once a moment has passed.
    async fn run<T, F, Fut>(&self, key: &str, commands: usize, f: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let mut ask: Option<(String, u16)> = None;
        loop {
            let live = self.live().await?;
            if let Some(d) = &self.durable {
                self.check_fsync(&live, d).await?;
            }
            let conn = match ask.take() {
                None => live.conn.clone(),
                Some((host, port)) => self.asking(&host, port).await?,
            };
            let err = match f(conn.clone()).await {
                Ok(out) => {
                    if let Some(d) = &self.durable {
                        self.confirm(&live, conn, d).await?;
                    }
                    return Ok(out);
                }
                Err(e) => e,
            };
            let redirect = match self.endpoint.is_cluster() && started.elapsed() < REDIRECTS {
                true => Redirect::of(&err, commands),
                false => None,
            };
            match redirect {
                None => return Err(self.failed(&live, err, key)),
                Some(Redirect::Moved(host, port)) => {
                    self.endpoint.moved(&host, port);
                    self.forget(live.generation);
                }
                Some(Redirect::Ask(host, port)) => ask = Some((host, port)),
                Some(Redirect::Later) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A connection of its own to the node an `ASK` named, with `ASKING` sent: the next
    /// command may touch the importing slot there.
    async fn asking(&self, host: &str, port: u16) -> Result<MultiplexedConnection> {
        let (mut conn, _alive) = self
            .endpoint
            .at(host, port)?
            .multiplexed(self.response_timeout)
            .await?;
        redis::cmd("ASKING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| Error::from_redis(e, ""))?;
        Ok(conn)
    }

    fn failed(&self, live: &Live, e: redis::RedisError, key: &str) -> Error {
        // READONLY: the master became a replica (a failover); a new connection finds the new one
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error()
            || e.code() == Some("READONLY")
        {
            self.forget(live.generation);
        }
        Error::from_redis(e, key)
    }

    /// `durable.fsync` on a server that cannot confirm fsyncs (no WAITAOF before Redis 7.2, or
    /// `appendonly no`) fails before anything is added, once per connection: never a silent
    /// downgrade. `WAITAOF 1 0 0` on a connection that wrote nothing answers at once.
    async fn check_fsync(&self, live: &Live, d: &Durable) -> Result<()> {
        if !d.fsync || live.can_fsync.load(Ordering::Acquire) {
            return Ok(());
        }
        let probe = redis::cmd("WAITAOF").arg(1).arg(0).arg(0).to_owned();
        let mut conn = live.conn.clone();
        match probe.query_async::<redis::Value>(&mut conn).await {
            Ok(_) => {
                live.can_fsync.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) if e.code().is_some() => Err(Error::NotDurable(format!(
                "durable.fsync needs WAITAOF (Redis 7.2+ or Valkey) and appendonly yes; this \
                 server refused it ({}); nothing was added",
                crate::error::redact(&e.to_string())
            ))),
            Err(e) => Err(self.failed(live, e, "")),
        }
    }

    /// WAIT / WAITAOF after a command that went through: the job is in Redis whatever happens
    /// here, so every failure says so.
    async fn confirm(
        &self,
        live: &Live,
        mut conn: MultiplexedConnection,
        d: &Durable,
    ) -> Result<()> {
        let ms = d.timeout.as_millis() as u64;
        let (cmd, what) = match d.fsync {
            true => (
                redis::cmd("WAITAOF")
                    .arg(1)
                    .arg(d.replicas)
                    .arg(ms)
                    .to_owned(),
                format!(
                    "the fsync to the AOF of the master and {} replica(s)",
                    d.replicas
                ),
            ),
            false => (
                redis::cmd("WAIT").arg(d.replicas).arg(ms).to_owned(),
                format!("the copy to {} replica(s)", d.replicas),
            ),
        };
        let reply: redis::RedisResult<Vec<i64>> = match d.fsync {
            true => cmd.query_async(&mut conn).await,
            false => cmd.query_async::<i64>(&mut conn).await.map(|n| vec![1, n]),
        };
        let why = match reply {
            Ok(got) if got.len() == 2 && got[0] >= 1 && got[1] >= i64::from(d.replicas) => {
                return Ok(())
            }
            Ok(got) => format!(
                "confirmed by {} replica(s){} within {ms} ms",
                got.get(1).copied().unwrap_or(0),
                match (d.fsync, got.first()) {
                    (true, Some(0)) => " and not by the master's fsync",
                    _ => "",
                }
            ),
            Err(e) => self.failed(live, e, "").to_string(),
        };
        Err(Error::NotDurable(format!(
            "Redis took the add, but {what} was not confirmed: {why}. The job may still be in \
             Redis (or lost in a failover): retry with the same jobId to add it at most once"
        )))
    }

    pub async fn query<T: FromRedisValue>(&self, key: &str, cmd: &redis::Cmd) -> Result<T> {
        self.run(key, 1, |mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    pub async fn pipe<T: FromRedisValue>(&self, key: &str, pipe: &redis::Pipeline) -> Result<T> {
        self.run(key, pipe.len(), |mut c| async move {
            pipe.query_async(&mut c).await
        })
        .await
    }

    /// EVALSHA, loading the script on NOSCRIPT (after a Redis restart or failover).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        key: &str,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        self.run(
            key,
            1,
            |mut c| async move { call.invoke_async(&mut c).await },
        )
        .await
    }
}
