//! Redis Sentinel: the queue finds its master through sentinels on every connect, so after a
//! failover workers and producers carry on by themselves. A real group: a master, a replica and
//! three sentinels (quorum 2); the master is SIGKILLed mid-run.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use holdfast_core::{Durable, Mode, NewJob, Queue, QueueConfig, SentinelConfig};

const MASTER: &str = "holdfast-test";
const DEADLINE: Duration = Duration::from_secs(60);

async fn sentinel_master(sentinel: &TestRedis) -> std::collections::HashMap<String, String> {
    let mut conn = redis_conn(&sentinel.url()).await;
    let flat: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(MASTER)
        .query_async(&mut conn)
        .await
        .expect("SENTINEL MASTER");
    flat.chunks(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect()
}

/// A master with one replica (acking), and three sentinels that know both and each other.
async fn group() -> (TestRedis, TestRedis, Vec<TestRedis>) {
    let fast_sync = || vec!["--repl-diskless-sync-delay".to_owned(), "0".to_owned()];
    let master = TestRedis::spawn_with(|_| fast_sync());
    let port = master.port().to_string();
    let replica = TestRedis::spawn_with(|_| {
        let mut args = fast_sync();
        args.extend(["--replicaof".into(), "127.0.0.1".into(), port]);
        args
    });
    wait_replicas_ack(&master.url(), 1).await;
    let sentinels: Vec<_> = (0..3)
        .map(|_| TestRedis::spawn_sentinel(MASTER, master.port(), 2))
        .collect();
    for s in &sentinels {
        eventually(
            DEADLINE,
            "the sentinel knows the replica and the others",
            || async {
                let m = sentinel_master(s).await;
                match (m.get("num-slaves"), m.get("num-other-sentinels")) {
                    (Some(r), Some(o)) if r == "1" && o == "2" => Ok(()),
                    _ => Err(format!("{m:?}")),
                }
            },
        )
        .await;
    }
    (master, replica, sentinels)
}

fn sentinel_config(sentinels: &[TestRedis]) -> SentinelConfig {
    SentinelConfig {
        master_name: MASTER.into(),
        nodes: sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect(),
    }
}

fn queue(sentinels: &[TestRedis], mode: Mode) -> Arc<Queue> {
    let mut cfg = QueueConfig::new(unique_name("sentinel"));
    // only its credentials and database count: the sentinels say where the master is
    cfg.url = "redis://unused.invalid:1".into();
    cfg.sentinel = Some(sentinel_config(sentinels));
    cfg.mode = mode;
    cfg.durable = Some(Durable {
        replicas: 1,
        fsync: false,
        timeout: Duration::from_millis(500),
    });
    Queue::new(cfg).expect("queue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_producers_follow_a_failover_and_no_durable_add_is_lost() {
    const N: usize = 400;
    let (mut master, replica, sentinels) = group().await;
    let added = Arc::new(AtomicUsize::new(0));
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for mode in MODES {
        let queue = queue(&sentinels, mode);
        producers.push(spawn_retrying_producer(
            queue.clone(),
            mode,
            N,
            added.clone(),
        ));
        consumers.push(spawn_collecting_worker(&queue, N, DEADLINE * 2));
    }

    eventually(DEADLINE, "half of the adds resolved", || async {
        let n = added.load(Ordering::Relaxed);
        (n >= N / 2).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    let old = master.port();
    master.stop();
    let promoted = eventually(DEADLINE, "the sentinels promote the replica", || async {
        let m = sentinel_master(&sentinels[0]).await;
        match m.get("port") {
            Some(p) if *p != old.to_string() => Ok(p.clone()),
            _ => Err(format!("{m:?}")),
        }
    })
    .await;
    assert_eq!(promoted, replica.port().to_string());
    // The old master comes back (empty: no persistence); the sentinels make it a replica of the
    // new one, so durable adds can be confirmed again.
    master.restart();

    for producer in producers {
        report_refusals(producer, DEADLINE * 2).await;
    }
    for (mode, consumer) in MODES.into_iter().zip(consumers) {
        let (seen, events) = consumer.await.expect("consumer task");
        let missing: Vec<_> = (0..N)
            .map(|i| format!("{mode:?}-{i}"))
            .filter(|id| !seen.contains(id))
            .collect();
        assert!(missing.is_empty(), "{mode:?}: never delivered: {missing:?}");
        eprintln!("{mode:?}: worker events: {}", errors(&events).len());
    }
    // the sentinels make the old master a replica of the new one (a moment after it is back)
    eventually(DEADLINE, "the old master is a replica", || async {
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut redis_conn(&master.url()).await)
            .await
            .map_err(|e| e.to_string())?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r == b"slave" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_no_sentinel_knows_is_a_connection_error_that_says_so() {
    let master = TestRedis::spawn();
    let sentinel = TestRedis::spawn_sentinel(MASTER, master.port(), 1);
    let mut cfg = QueueConfig::new(unique_name("sentinel"));
    cfg.sentinel = Some(SentinelConfig {
        master_name: "no-such-master".into(),
        nodes: vec![
            format!("127.0.0.1:{}", free_port()),
            format!("redis://127.0.0.1:{}", sentinel.port()),
        ],
    });
    let queue = Queue::new(cfg).expect("queue");
    let err = queue.add(vec![NewJob::new("1")]).await.unwrap_err();
    assert_eq!(err.code(), "ERR_HOLDFAST_CONNECTION");
    let text = err.to_string();
    assert!(
        text.contains("no sentinel named the master \"no-such-master\""),
        "{text}"
    );
    assert!(text.contains("knows no such master"), "{text}");
    // the right name works, through the second sentinel
    let mut cfg = QueueConfig::new(unique_name("sentinel"));
    cfg.sentinel = Some(SentinelConfig {
        master_name: MASTER.into(),
        nodes: vec![
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", sentinel.port()),
        ],
    });
    let queue = Queue::new(cfg).expect("queue");
    queue.add(vec![NewJob::new("1")]).await.expect("add");
    assert_eq!(queue.stats().await.expect("stats").waiting, 1);
}

#[test]
fn bad_sentinel_options_are_refused() {
    for (url, master_name, nodes, why) in [
        ("redis://x", "", vec!["h:1"], "masterName"),
        ("redis://x", "m", vec![], "at least one sentinel"),
        ("redis+unix:///tmp/s", "m", vec!["h:1"], "not a unix socket"),
        (
            "redis://x",
            "m",
            vec!["redis+unix:///tmp/s"],
            "nodes must be",
        ),
    ] {
        let mut cfg = QueueConfig::new("q");
        cfg.url = url.into();
        cfg.sentinel = Some(SentinelConfig {
            master_name: master_name.into(),
            nodes: nodes.into_iter().map(String::from).collect(),
        });
        let err = Queue::new(cfg).err().expect("refused");
        assert_eq!(err.code(), "ERR_HOLDFAST_INVALID_ARGUMENT");
        assert!(err.to_string().contains(why), "{err}");
    }
}
