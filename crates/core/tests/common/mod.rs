//! Shared test harness: a throwaway `redis-server` per test (in the style of redis-rs's
//! `redis-test` server.rs), a channel-backed [`Dispatch`], and small polling helpers.
//!
//! Every test gets its own server on a free port with its own directory, so tests can run in
//! parallel (cargo test threads, nextest processes) and may kill or restart their server. When
//! `REDIS_URL` is set, tests that never kill or restart Redis may use that server instead
//! ([`TestRedis::shared_or_spawn`]); every test uses a unique queue name either way.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use holdfast_core::keys::ListKeys;
use holdfast_core::{Dispatch, Job, Outcome, Queue, QueueConfig, Worker, WorkerEvent};
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

pub mod cluster;

/// How long a spawned server may take to answer PING.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Tries with a fresh port when another process took ours between probing and binding.
const START_TRIES: u32 = 5;

// ------------------------------------------------------------------------------------------
// redis-server
// ------------------------------------------------------------------------------------------

/// A Redis server for one test: spawned (killed on drop) or, with `REDIS_URL`, an external one.
pub struct TestRedis {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// `Some(url)` when the test runs against an external server from `REDIS_URL`.
    external: Option<String>,
    /// More `redis-server` arguments (TLS ports and files).
    extra: Vec<String>,
    /// A sentinel: the configuration it starts from (it rewrites the file as it learns).
    sentinel_conf: Option<String>,
}

impl TestRedis {
    /// Spawns a fresh `redis-server` on a free port; waits until it answers PING.
    pub fn spawn() -> Self {
        Self::spawn_with(|_| Vec::new())
    }

    /// [`spawn`](Self::spawn) with more arguments, made from the server's directory (which
    /// exists by then and is removed with the server).
    pub fn spawn_with(extra: impl FnOnce(&std::path::Path) -> Vec<String>) -> Self {
        Self::spawn_in(extra, None)
    }

    /// A Redis Sentinel monitoring `master_name` at `master_port` with this quorum, quick to
    /// fail over: the master is down after 1 s without an answer.
    pub fn spawn_sentinel(master_name: &str, master_port: u16, quorum: u32) -> Self {
        let conf = format!(
            "sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {master_name} 1000\n\
             sentinel failover-timeout {master_name} 5000\n"
        );
        Self::spawn_in(|_| Vec::new(), Some(conf))
    }

    fn spawn_in(
        extra: impl FnOnce(&std::path::Path) -> Vec<String>,
        sentinel_conf: Option<String>,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("holdfast-core-test-{}", unique_suffix()));
        fs::create_dir_all(&dir).expect("create redis test dir");
        let log = dir.join("redis.log");
        let extra = extra(&dir);
        let mut server = Self {
            port: 0,
            dir,
            log,
            child: None,
            external: None,
            extra,
            sentinel_conf,
        };
        let mut last_err = String::new();
        for _ in 0..START_TRIES {
            server.port = free_port();
            match server.start() {
                Ok(()) => return server,
                // Another process may have taken the port after we probed it: try another one.
                Err(e) => last_err = e,
            }
        }
        panic!(
            "could not start redis-server after {START_TRIES} tries: {last_err}\n{}",
            server.log_text()
        );
    }

    /// The server from `REDIS_URL` when it is set, else a spawned one. Only for tests that never
    /// call [`stop`](Self::stop) or [`restart`](Self::restart).
    pub fn shared_or_spawn() -> Self {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(6379);
                Self {
                    port,
                    dir: PathBuf::new(),
                    log: PathBuf::new(),
                    child: None,
                    external: Some(url),
                    extra: Vec::new(),
                    sentinel_conf: None,
                }
            }
            _ => Self::spawn(),
        }
    }

    pub fn url(&self) -> String {
        match &self.external {
            Some(url) => url.clone(),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The spawned server also listens on this unix socket.
    pub fn unix_socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Kills the server at once (SIGKILL: no shutdown, no save), like a crash.
    pub fn stop(&mut self) {
        assert!(
            self.external.is_none(),
            "stop() needs a spawned server, not REDIS_URL"
        );
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same directory (it comes back empty:
    /// persistence is off).
    pub fn restart(&mut self) {
        assert!(
            self.external.is_none(),
            "restart() needs a spawned server, not REDIS_URL"
        );
        self.stop();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.start() {
                Ok(()) => return,
                // The old socket may linger for a moment; redis-server sets SO_REUSEADDR, so
                // this is rare, but retry briefly before giving up.
                Err(e) if Instant::now() < deadline => {
                    eprintln!(
                        "redis-server restart on port {} failed, retrying: {e}",
                        self.port
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!(
                    "could not restart redis-server on port {}: {e}\n{}",
                    self.port,
                    self.log_text()
                ),
            }
        }
    }

    /// Stops the server process (SIGSTOP) until [`thaw`](Self::thaw): Redis answers nothing
    /// meanwhile, as during a long fork, a swap storm or a paused VM, then serves everything
    /// that queued up at once.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self
            .child
            .as_ref()
            .expect("freeze() and thaw() need a spawned server, not REDIS_URL");
        let ok = std::process::Command::new("kill")
            .arg(sig)
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} redis-server failed");
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn start(&mut self) -> Result<(), String> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("open {}: {e}", self.log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        if let Some(conf) = &self.sentinel_conf {
            let path = self.dir.join("sentinel.conf");
            if !path.exists() {
                fs::write(&path, conf).map_err(|e| format!("write {}: {e}", path.display()))?;
            }
            cmd.arg(path).arg("--sentinel");
        }
        let child = cmd
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--unixsocket")
            .arg(self.unix_socket())
            .args(["--unixsocketperm", "700"])
            .args(["--daemonize", "no"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot run {bin:?} (is redis-server installed?): {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Readiness loop: PING until +PONG, the process exits, or the deadline passes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            let child = self.child.as_mut().expect("child");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited during startup ({status})",
                    self.port
                ));
            }
            if ping(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_DEADLINE:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if self.external.is_some() {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "----- redis-server log (port {}, {}) -----\n{}----- end of redis-server log -----",
                self.port,
                self.log.display(),
                self.log_text()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Raw RESP PING, so readiness does not depend on the client under test.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// Unique within this machine for a while: pid, a per-process counter and the clock.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    format!(
        "{}-{}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos & 0xffff_ffff
    )
}

/// A queue name no other test (in this or any other run against a shared server) uses.
pub fn unique_name(test: &str) -> String {
    format!("t-{test}-{}", unique_suffix())
}

/// A queue on `url` with a unique name.
pub fn queue(url: &str, test: &str) -> Arc<Queue> {
    let mut cfg = QueueConfig::new(unique_name(test));
    cfg.url = url.to_owned();
    Queue::new(cfg).expect("queue config")
}

/// Both modes, for tests that run one body for each (as the JS tests' `MODES`).
pub const MODES: [holdfast_core::Mode; 2] =
    [holdfast_core::Mode::Stream, holdfast_core::Mode::List];

/// A queue in `mode` on `url` with a unique name.
pub fn queue_in(url: &str, test: &str, mode: holdfast_core::Mode) -> Arc<Queue> {
    let mut cfg = QueueConfig::new(unique_name(test));
    cfg.url = url.to_owned();
    cfg.mode = mode;
    Queue::new(cfg).expect("queue config")
}

/// A worker config with this visibility timeout and short blocking reads (fast tests).
pub fn worker_cfg(visibility_timeout: Duration) -> holdfast_core::WorkerConfig {
    holdfast_core::WorkerConfig {
        visibility_timeout,
        block: Duration::from_millis(200),
        ..Default::default()
    }
}

pub fn ids_of(jobs: &[Job]) -> std::collections::HashSet<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

/// Fails the test if some id occurs more than once; returns the ids as a set.
pub fn each_once<'a>(
    what: &str,
    ids: impl IntoIterator<Item = &'a String>,
) -> std::collections::HashSet<String> {
    let mut counts: std::collections::HashMap<&String, usize> = std::collections::HashMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "{what}: repeated ids {repeated:?}");
    counts.into_keys().cloned().collect()
}

/// Another handle on the same queue, as a second process would open it.
pub fn same_queue(other: &Queue) -> Arc<Queue> {
    Queue::new(other.config().clone()).expect("queue config")
}

/// Every key of a queue, whatever its mode, as holdfast's key module builds them.
#[derive(Debug, Clone)]
pub struct Keys {
    pub stream: String,
    pub wait: String,
    pub delayed: String,
    pub dead: String,
    pub workers: String,
    pub meta: String,
    pub scheduler: String,
    list: ListKeys,
}

impl Keys {
    /// The processing list of one list-mode worker.
    pub fn active(&self, worker_id: &str) -> String {
        self.list.active(worker_id)
    }
}

pub fn keys_of(queue: &Queue) -> Keys {
    let cfg = queue.config();
    let shared = cfg.queue_keys();
    let list = ListKeys::new(&cfg.prefix, &cfg.name, cfg.list_key.as_deref());
    Keys {
        stream: cfg.stream_keys().stream,
        wait: list.wait.clone(),
        delayed: shared.delayed,
        dead: shared.dead,
        workers: shared.workers,
        meta: shared.meta,
        scheduler: shared.scheduler,
        list,
    }
}

// ------------------------------------------------------------------------------------------
// Dispatch into channels
// ------------------------------------------------------------------------------------------

/// Pushes every delivered job into one channel and every event into another.
pub struct ChannelDispatch {
    jobs: mpsc::UnboundedSender<Job>,
    events: mpsc::UnboundedSender<WorkerEvent>,
}

impl ChannelDispatch {
    /// [`Worker::complete`], then the prefetched jobs it hands back go into the channel, as a
    /// handler pool would run them next: a test that dropped them would starve its worker
    /// once prefetch grows (its slots stay taken).
    pub fn complete(&self, worker: &Worker, results: impl IntoIterator<Item = (u32, Outcome)>) {
        if let Ok(next) = worker.complete(results) {
            self.jobs(next);
        }
    }
}

impl Dispatch for ChannelDispatch {
    fn jobs(&self, jobs: Vec<Job>) {
        for job in jobs {
            let _ = self.jobs.send(job);
        }
    }

    fn event(&self, event: WorkerEvent) {
        let _ = self.events.send(event);
    }
}

/// The receiving ends of a [`ChannelDispatch`].
pub struct Received {
    pub jobs: mpsc::UnboundedReceiver<Job>,
    pub events: mpsc::UnboundedReceiver<WorkerEvent>,
}

pub fn channel_dispatch() -> (Arc<ChannelDispatch>, Received) {
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    (
        Arc::new(ChannelDispatch {
            jobs: jobs_tx,
            events: events_tx,
        }),
        Received { jobs, events },
    )
}

impl Received {
    /// Receives exactly `n` jobs, failing the test if they do not all arrive by `within`.
    pub async fn jobs(&mut self, n: usize, within: Duration) -> Vec<Job> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match tokio::time::timeout_at(deadline, self.jobs.recv()).await {
                Ok(Some(job)) => got.push(job),
                Ok(None) => panic!("job channel closed after {} of {n} jobs", got.len()),
                Err(_) => panic!(
                    "only {} of {n} jobs arrived within {within:?}: {got:?}",
                    got.len()
                ),
            }
        }
        got
    }

    pub async fn job(&mut self, within: Duration) -> Job {
        self.jobs(1, within).await.pop().expect("one job")
    }

    /// Fails the test if any job arrives during `period`.
    pub async fn no_job_for(&mut self, period: Duration) {
        if let Ok(Some(job)) = tokio::time::timeout(period, self.jobs.recv()).await {
            panic!("unexpected job delivered: {job:?}");
        }
    }

    /// Waits for the first event `pick` accepts, failing the test after `within`. Events it
    /// rejects are returned too, in order, so callers can inspect them.
    pub async fn event_where<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&WorkerEvent) -> Option<T>,
    ) -> (T, Vec<WorkerEvent>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut skipped = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => match pick(&event) {
                    Some(t) => return (t, skipped),
                    None => skipped.push(event),
                },
                Ok(None) => panic!("event channel closed; events seen: {skipped:?}"),
                Err(_) => panic!(
                    "expected event did not arrive within {within:?}; events seen: {skipped:?}"
                ),
            }
        }
    }

    /// Every event emitted so far, without waiting.
    pub fn drain_events(&mut self) -> Vec<WorkerEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

/// Completes `jobs`; the prefetched jobs this frees go to the worker's dispatch, as a handler
/// pool would run them next (dropping them would starve the worker: their slots stay taken).
pub fn complete_all(worker: &Worker, jobs: &[Job]) {
    worker
        .complete_and_dispatch(jobs.iter().map(|j| (j.token, Outcome::Completed)))
        .expect("complete");
}

// ------------------------------------------------------------------------------------------
// Failover runs (Sentinel, Cluster)
// ------------------------------------------------------------------------------------------

/// Adds `n` jobs to `queue` one at a time, with jobIds `<mode>-<i>`; an add that fails (only
/// with a connection or not-durable error: anything else fails the test) is retried with the
/// same jobId until it resolves. `added` counts resolved adds. Returns the codes of the refusals.
pub fn spawn_retrying_producer(
    queue: Arc<Queue>,
    mode: holdfast_core::Mode,
    n: usize,
    added: Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<&'static str>> {
    tokio::spawn(async move {
        let mut refused = Vec::new();
        for i in 0..n {
            loop {
                let mut job = holdfast_core::NewJob::new(format!("{i}"));
                job.job_id = Some(format!("{mode:?}-{i}"));
                match queue.add(vec![job]).await {
                    Ok(_) => break,
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                holdfast_core::Error::Connection(_)
                                    | holdfast_core::Error::NotDurable(_)
                            ),
                            "an add failed otherwise: {e:?}"
                        );
                        refused.push(e.code());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            added.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        refused
    })
}

/// A worker on `queue` (2 s lease) that completes every job until it has seen `n` distinct
/// ids or `within` passes, then closes. Returns the ids seen and the events.
pub fn spawn_collecting_worker(
    queue: &Queue,
    n: usize,
    within: Duration,
) -> tokio::task::JoinHandle<(std::collections::HashSet<String>, Vec<WorkerEvent>)> {
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(worker_cfg(Duration::from_secs(2)), dispatch.clone())
        .expect("worker");
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = std::collections::HashSet::new();
        while seen.len() < n {
            let job = match tokio::time::timeout_at(deadline, rx.jobs.recv()).await {
                Ok(Some(job)) => job,
                _ => break,
            };
            seen.insert(job.id.clone());
            dispatch.complete(&worker, [(job.token, Outcome::Completed)]);
        }
        let events = rx.drain_events();
        if seen.len() < n {
            let errors = errors(&events);
            eprintln!(
                "{} of {n} delivered; {} error events, the last: {:?}",
                seen.len(),
                errors.len(),
                &errors[errors.len().saturating_sub(8)..]
            );
        }
        close(worker).await;
        (seen, events)
    })
}

/// Prints how many adds were refused (then retried), by code.
pub async fn report_refusals(
    producer: tokio::task::JoinHandle<Vec<&'static str>>,
    within: Duration,
) {
    let refused = tokio::time::timeout(within, producer)
        .await
        .expect("the producer finished")
        .expect("producer task");
    let mut by_code = std::collections::BTreeMap::new();
    for code in refused {
        *by_code.entry(code).or_insert(0) += 1;
    }
    eprintln!("adds refused (then retried) during the failover: {by_code:?}");
}

/// Closes a worker, failing the test if the graceful close hangs.
pub async fn close(worker: Worker) {
    tokio::time::timeout(Duration::from_secs(15), worker.close())
        .await
        .expect("worker.close() did not finish within 15 s")
        .expect("worker.close()");
}

// ------------------------------------------------------------------------------------------
// Polling and direct Redis access
// ------------------------------------------------------------------------------------------

/// Polls `check` every 25 ms until it returns `Some`, failing the test after `within` with
/// `what` and the last value it saw.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(t) => return t,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            panic!("{what}: not true within {within:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `replicas` replicas of the master at `url` ack its writes. A write first: WAIT
/// on a connection that wrote nothing answers before the replica streams (whose first ack may
/// come only with its once-a-second cron).
pub async fn wait_replicas_ack(url: &str, replicas: i64) {
    let conn = redis_conn(url).await;
    eventually(Duration::from_secs(20), "the replicas ack", || {
        let mut conn = conn.clone();
        async move {
            let (_, acked): ((), i64) = redis::pipe()
                .cmd("SET")
                .arg("holdfast-test-probe")
                .arg(1)
                .cmd("WAIT")
                .arg(replicas)
                .arg(100)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            match acked >= replicas {
                true => Ok(()),
                false => Err(format!("WAIT {replicas} 100 answered {acked}")),
            }
        }
    })
    .await;
}

/// A plain connection for inspecting keys directly.
pub async fn redis_conn(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to test redis")
}

pub async fn xlen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .expect("XLEN")
}

/// All entries of a stream as (entry id, field -> value).
pub async fn xrange(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .map(|(id, fields)| (id, fields.into_iter().collect()))
        .collect()
}

/// Waits until the stream at `key` has no entries left (finished entries are trimmed away).
pub async fn wait_trimmed(conn: &mut MultiplexedConnection, key: &str, within: Duration) {
    eventually(within, &format!("XLEN {key} == 0"), || {
        let mut conn = conn.clone();
        async move {
            match xlen(&mut conn, key).await {
                0 => Ok(()),
                n => Err(format!("XLEN = {n}")),
            }
        }
    })
    .await
}

/// Stream mode: waits until finished entries are trimmed away. List mode has nothing to wait
/// for: an ack removes the element.
pub async fn wait_trimmed_in_stream_mode(
    conn: &mut MultiplexedConnection,
    queue: &Queue,
    within: Duration,
) {
    if queue.config().mode == holdfast_core::Mode::Stream {
        wait_trimmed(conn, &keys_of(queue).stream, within).await;
    }
}

/// Waits until stats show nothing waiting and nothing active (acks are asynchronous).
pub async fn wait_drained(queue: &Queue, within: Duration) -> holdfast_core::Stats {
    eventually(within, "stats waiting == 0 && active == 0", || async move {
        match queue.stats().await {
            Ok(s) if s.waiting == 0 && s.active == 0 => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Error events among `events`, for assertions that a healthy run reported none.
pub fn errors(events: &[WorkerEvent]) -> Vec<&WorkerEvent> {
    events
        .iter()
        .filter(|e| matches!(e, WorkerEvent::Error(_)))
        .collect()
}

// ------------------------------------------------------------------------------------------
// List mode
// ------------------------------------------------------------------------------------------

/// A list-mode queue on `url` with a unique name; `list_key` consumes that list instead of the
/// queue's own `wait` list.
pub fn list_queue(url: &str, test: &str, list_key: Option<&str>) -> Arc<Queue> {
    let mut cfg = QueueConfig::new(unique_name(test));
    cfg.url = url.to_owned();
    cfg.mode = holdfast_core::Mode::List;
    cfg.list_key = list_key.map(str::to_owned);
    Queue::new(cfg).expect("list queue config")
}

/// A list element in holdfast's envelope format, built by hand (envelope.rs documents it):
/// `"\x1fhf1|<attempt>|<recoveries>|<max attempts or empty>|<id length>|<id><payload>"`.
pub fn envelope(
    id: &str,
    attempt: u32,
    recoveries: u32,
    max_attempts: Option<u32>,
    payload: &str,
) -> String {
    // the options field: `m<max attempts>` (see envelope.rs)
    let max = max_attempts.map(|m| format!("m{m}")).unwrap_or_default();
    format!(
        "\x1fhf1|{attempt}|{recoveries}|{max}|{}|{id}{payload}",
        id.len()
    )
}

/// The id list mode gives an element that is not an envelope: `raw-` and the first 16 hex
/// digits of its SHA-1, computed by Redis (as the reaper's Lua does).
pub async fn raw_id(conn: &mut MultiplexedConnection, element: &str) -> String {
    let hex: String = redis::Script::new("return redis.sha1hex(ARGV[1])")
        .arg(element)
        .invoke_async(conn)
        .await
        .expect("sha1hex");
    format!("raw-{}", &hex[..16])
}

/// Registers a worker that died: its heartbeat deadline is long past and its processing list
/// holds `elements` (the first one is the oldest delivery, at the tail of the list).
pub async fn plant_dead_worker(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    worker_id: &str,
    elements: &[String],
) {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
        - 60_000;
    let mut pipe = redis::pipe();
    pipe.atomic();
    if !elements.is_empty() {
        pipe.cmd("LPUSH")
            .arg(keys.active(worker_id))
            .arg(elements)
            .ignore();
    }
    pipe.cmd("ZADD")
        .arg(&keys.workers)
        .arg(deadline)
        .arg(worker_id)
        .ignore();
    pipe.query_async::<()>(conn)
        .await
        .expect("plant a dead worker");
}

pub async fn llen(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("LLEN")
        .arg(key)
        .query_async(conn)
        .await
        .expect("LLEN")
}

pub async fn lrange(conn: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .expect("LRANGE")
}

pub async fn exists(conn: &mut MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .expect("EXISTS")
        == 1
}

pub async fn zscore(conn: &mut MultiplexedConnection, key: &str, member: &str) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(conn)
        .await
        .expect("ZSCORE")
}

/// Keys matching a KEYS pattern, sorted (test servers only: KEYS scans everything).
pub async fn keys_matching(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

/// Every key of one queue (`<prefix>:{<name>}:*`).
/// The queue's keys, without `dedup:<jobId>` markers (they outlive their jobs on purpose, for
/// the dedup window, and expire by themselves) and without `meta` (the queue-wide totals of
/// finished jobs, kept on purpose: one small hash per queue, not per job).
pub async fn queue_keys(conn: &mut MultiplexedConnection, queue: &Queue) -> Vec<String> {
    let cfg = queue.config();
    let mut keys = keys_matching(conn, &format!("{}:{{{}}}:*", cfg.prefix, cfg.name)).await;
    keys.retain(|k| !k.contains(":dedup:") && !k.ends_with(":meta"));
    keys
}

/// One dead letter, as stored: a stream entry `id d a o err t` (both modes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRecord {
    pub id: String,
    pub d: String,
    /// Attempts made.
    pub a: String,
    pub err: String,
    pub t: String,
}

/// Every dead letter at `key`, newest first.
pub async fn dead_records(conn: &mut MultiplexedConnection, key: &str) -> Vec<DeadRecord> {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .query_async(conn)
        .await
        .expect("XREVRANGE of the dead letters");
    entries
        .into_iter()
        .map(|(_, fields)| {
            let fields: std::collections::HashMap<String, String> = fields.into_iter().collect();
            let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
            DeadRecord {
                id: field("id"),
                d: field("d"),
                a: field("a"),
                err: field("err"),
                t: field("t"),
            }
        })
        .collect()
}

/// Cuts every client connection except the caller's own (`CLIENT KILL TYPE normal SKIPME yes`);
/// returns how many were cut.
pub async fn kill_other_clients(conn: &mut MultiplexedConnection) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(conn)
        .await
        .expect("CLIENT KILL")
}

/// The ids of every `Stalled` event among `events`, in order.
pub fn stalled_ids(events: &[WorkerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Stalled { ids } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// `(id, reason)` of every `Dead` event among `events`, in order.
pub fn dead_events(events: &[WorkerEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Dead { id, reason } => Some((id.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

/// Payloads and receipts read as text: the tests' payloads are JSON or plain strings.
pub trait Text {
    fn as_str(&self) -> &str;
    fn text(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Text for bytes::Bytes {
    fn as_str(&self) -> &str {
        std::str::from_utf8(self).expect("a text payload")
    }
}

// ------------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------------

/// A CA made for one test, with a server certificate (for `localhost` and 127.0.0.1) and a
/// client certificate it signed. Made by the `openssl` CLI.
pub struct TestCerts {
    pub dir: PathBuf,
}

impl TestCerts {
    pub fn make(dir: &std::path::Path) -> Self {
        let dir = dir.join("tls");
        fs::create_dir_all(&dir).expect("tls dir");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl (is it installed?)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca = ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &ca,
                &["-subj", "/CN=holdfast test CA"],
            ]
            .concat(),
        );
        for (name, ext) in [
            (
                "server",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            fs::write(dir.join(format!("{name}.ext")), ext).expect("ext file");
            let (key, csr, crt, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            let subj = format!("/CN={name}");
            openssl(
                &[
                    &["req"],
                    &ec[..],
                    &["-keyout", &key, "-out", &csr, "-subj", &subj],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Self { dir }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    pub fn pem(&self, file: &str) -> Vec<u8> {
        fs::read(self.dir.join(file)).expect("read pem")
    }

    /// `redis-server` arguments for a TLS port with these certificates; `auth_clients` asks
    /// every client for a certificate signed by the CA (mutual TLS).
    pub fn server_args(&self, tls_port: u16, auth_clients: bool) -> Vec<String> {
        [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &self.path("server.crt"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.crt"),
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// Unix ms by this machine's clock, as producers stamp delays.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
