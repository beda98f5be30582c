//! Half-open connections: the link to Redis goes dead without a FIN or RST (a peer that
//! vanished, a partition, a cloud NAT that forgot the flow). The kernel then keeps the
//! connection and retransmits; only a timer notices. holdfast sets a TCP user timeout and
//! keepalive on every connection (`net::tcp_settings`), so a command on a dead link fails after
//! `DEAD_LINK` (5 s), not after the 10 s response timeout, which must stay long for slow
//! scripts on a live Redis.
//!
//! A real dead link needs a network path that drops packets: Redis runs in a network namespace
//! of its own behind a veth pair (iproute2, root), and the namespace's end of the pair is taken
//! down, so packets vanish while both sockets stay open. Skipped, loudly, where the test cannot
//! make a namespace (not root, no `ip`).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{Error, Mode, NewJob, QueueConfig, WorkerEvent};

struct Netns {
    name: String,
    outer: String,
    inner: String,
    addr: String,
    redis: Option<Child>,
    dir: std::path::PathBuf,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

impl Netns {
    /// A namespace with Redis listening on its end of a veth pair, or why not.
    fn start() -> Result<Self, String> {
        let n = std::process::id() % 60_000;
        let (a, b) = (n / 250 % 250 + 1, n % 250);
        let ns = Netns {
            name: format!("hf-test-{n}"),
            outer: format!("hfo{n}"),
            inner: format!("hfi{n}"),
            addr: format!("10.{}.{a}.{}", 200 + b % 50, 2 + (b / 50) * 4),
            redis: None,
            dir: std::env::temp_dir().join(format!("holdfast-netns-{n}")),
        };
        let host = ns.addr.rsplit_once('.').unwrap();
        let last: u8 = host.1.parse().unwrap();
        let outer_addr = format!("{}.{}/30", host.0, last - 1);
        let inner_addr = format!("{}/30", ns.addr);
        ip(&["netns", "add", &ns.name])?;
        ip(&[
            "link", "add", &ns.outer, "type", "veth", "peer", "name", &ns.inner,
        ])?;
        ip(&["link", "set", &ns.inner, "netns", &ns.name])?;
        ip(&["addr", "add", &outer_addr, "dev", &ns.outer])?;
        ip(&["link", "set", &ns.outer, "up"])?;
        ns.exec(&["addr", "add", &inner_addr, "dev", &ns.inner])?;
        ns.exec(&["link", "set", &ns.inner, "up"])?;
        ns.exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn spawn_redis(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, &bin])
            .args(["--bind", &self.addr, "--port", "6379"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server in the namespace");
        self.redis = Some(child);
    }

    fn url(&self) -> String {
        format!("redis://{}:6379", self.addr)
    }

    /// Packets in either direction vanish; both ends keep their sockets.
    fn cut(&self) {
        self.exec(&["link", "set", &self.inner, "down"]).unwrap();
    }

    fn heal(&self) {
        self.exec(&["link", "set", &self.inner, "up"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.redis.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = ip(&["link", "del", &self.outer]);
        let _ = ip(&["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_fails_commands_in_seconds_and_workers_resume_when_it_heals() {
    let mut ns = match Netns::start() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: cannot make a network namespace here: {why}");
            return;
        }
    };
    ns.spawn_redis();
    let url = ns.url();
    eventually(Duration::from_secs(10), "redis in the namespace", || {
        let url = url.clone();
        async move {
            let client = redis::Client::open(url).map_err(|e| e.to_string())?;
            let mut c = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;

    for mode in [Mode::Stream, Mode::List] {
        let mut cfg = QueueConfig::new(unique_name("half-open"));
        cfg.url = url.clone();
        cfg.mode = mode;
        let queue = holdfast_core::Queue::new(cfg).unwrap();
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(worker_cfg(Duration::from_secs(3)), dispatch)
            .unwrap();
        queue.add(vec![NewJob::new("{\"n\":1}")]).await.unwrap();
        let job = rx.job(Duration::from_secs(10)).await;
        complete_all(&worker, &[job]);

        ns.cut();
        let started = Instant::now();
        let err = queue
            .add(vec![NewJob::new("{\"n\":2}")])
            .await
            .expect_err("an add over a dead link");
        let took = started.elapsed();
        eprintln!("{mode:?}: add over a dead link failed after {took:?}: {err}");
        assert!(matches!(err, Error::Connection(_)), "{mode:?}: {err:?}");
        // Not a timing test: the bound is the kernel's timer (5 s) against the 10 s response
        // timeout that would otherwise end the wait; a busy machine delays neither by seconds.
        assert!(
            took < Duration::from_secs(9),
            "{mode:?}: the dead link was noticed after {took:?}, not by the TCP user timeout"
        );

        ns.heal();
        // Workers resume unaided; adds work again.
        eventually(
            Duration::from_secs(30),
            "an add after the link healed",
            || {
                let queue = queue.clone();
                async move {
                    queue
                        .add(vec![NewJob::new("{\"n\":3}")])
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await;
        // An add that failed while the link healed may still have been enqueued (the README
        // says so): finish every job that comes, until none has for a while.
        let job = rx.job(Duration::from_secs(30)).await;
        assert_ne!(&job.payload[..], b"{\"n\":1}", "{mode:?}: ran again");
        complete_all(&worker, &[job]);
        while let Ok(Some(job)) = tokio::time::timeout(Duration::from_secs(2), rx.jobs.recv()).await
        {
            complete_all(&worker, &[job]);
        }
        let seen: Vec<WorkerEvent> = rx.drain_events();
        eprintln!("{mode:?}: worker events during the cut: {}", seen.len());
        close(worker).await;
    }
}
