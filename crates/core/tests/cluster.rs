//! Redis Cluster: a queue lives in the slot of its hash tag; its connections go to the master
//! that owns that slot, follow MOVED / ASK while the slot moves, and find the new master after
//! a failover. A real local cluster of 3 masters and 3 replicas (`redis-cli --cluster create`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{keyslot, TestCluster};
use common::*;
use holdfast_core::keys::{queue_slot, slot};
use holdfast_core::{Durable, Mode, NewJob, Outcome, Queue, QueueConfig};

const DEADLINE: Duration = Duration::from_secs(60);

fn cluster_queue(cluster: &TestCluster, name: String, mode: Mode) -> Arc<Queue> {
    let mut cfg = QueueConfig::new(name);
    // only its credentials and scheme count: the seeds say where the slot is
    cfg.url = "redis://unused.invalid:1".into();
    cfg.cluster = Some(cluster.seeds());
    cfg.mode = mode;
    Queue::new(cfg).expect("queue")
}

/// A unique queue name whose slot the master on `port` owns.
async fn name_on(cluster: &TestCluster, port: u16, test: &str) -> String {
    loop {
        let name = unique_name(test);
        if cluster.owner_of(queue_slot("holdfast", &name)).await == port {
            return name;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_on_every_master_serve_every_api_in_both_modes() {
    let cluster = TestCluster::spawn(3, 1).await;
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let mut raw = redis_conn(&format!("redis://127.0.0.1:{}", masters[0])).await;
    for key in [
        "foo",
        "holdfast:{email}:stream",
        "{user1000}.following",
        "a{}b",
    ] {
        assert_eq!(keyslot(&mut raw, key).await, slot(key.as_bytes()), "{key}");
    }
    for port in masters {
        for mode in MODES {
            let name = name_on(&cluster, port, "cluster-api").await;
            let queue = cluster_queue(&cluster, name, mode);
            let mut failing = NewJob::new("fails");
            failing.job_id = Some("to-dead".into());
            failing.max_attempts = Some(1);
            let mut later = NewJob::new("later");
            later.run_at_ms = Some(now_ms() + 200);
            queue
                .add(vec![NewJob::new("a"), NewJob::new("b"), later, failing])
                .await
                .expect("add");
            queue.pause().await.expect("pause");
            assert!(queue.stats().await.expect("stats").paused);
            queue.resume().await.expect("resume");
            let (dispatch, mut rx) = channel_dispatch();
            let worker = queue
                .worker(worker_cfg(Duration::from_secs(5)), dispatch.clone())
                .expect("worker");
            let jobs = rx.jobs(4, DEADLINE).await;
            for job in &jobs {
                let outcome = match &job.payload[..] {
                    b"\"fails\"" | b"fails" => Outcome::failed("no"),
                    _ => Outcome::Completed,
                };
                dispatch.complete(&worker, [(job.token, outcome)]);
            }
            eventually(DEADLINE, "one dead letter", || async {
                let s = queue.stats().await.map_err(|e| e.to_string())?;
                match (s.dead, s.waiting, s.active, s.delayed) {
                    (1, 0, 0, 0) => Ok(()),
                    _ => Err(format!("{s:?}")),
                }
            })
            .await;
            let dead = queue.dead_page(0, 10).await.expect("dead page");
            assert_eq!(dead.len(), 1, "{mode:?} on {port}");
            assert_eq!(queue.dead_retry(None).await.expect("retry"), 1);
            let again = rx.job(DEADLINE).await;
            dispatch.complete(&worker, [(again.token, Outcome::Completed)]);
            wait_drained(&queue, DEADLINE).await;
            assert_eq!(queue.dead_purge().await.expect("purge"), 0);
            queue.server_warnings().await.expect("server warnings");
            close(worker).await;
            // the queue's keys (the jobId marker outlives the job) are on its master
            let mut conn = redis_conn(&format!("redis://127.0.0.1:{port}")).await;
            let pattern = format!("holdfast:{{{}}}:*", queue.config().name);
            let keys = keys_matching(&mut conn, &pattern).await;
            assert!(!keys.is_empty(), "{mode:?}: no keys on {port}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_while_a_worker_runs_and_a_producer_adds_loses_nothing() {
    const N: usize = 300;
    let cluster = TestCluster::spawn(3, 1).await;
    for mode in MODES {
        let name = unique_name("cluster-move");
        let slot = queue_slot("holdfast", &name);
        let queue = cluster_queue(&cluster, name, mode);
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(worker_cfg(Duration::from_secs(5)), dispatch.clone())
            .expect("worker");
        let q = queue.clone();
        let producer = tokio::spawn(async move {
            for i in 0..N {
                let mut job = NewJob::new(format!("{i}"));
                // half of them take the scripted path (jobId), half the plain one
                if i % 2 == 1 {
                    job.job_id = Some(format!("job-{i}"));
                }
                q.add(vec![job]).await.expect("add during the move");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let from = cluster.owner_of(slot).await;
        let to = *cluster
            .masters()
            .iter()
            .find(|p| **p != from)
            .expect("another master");
        cluster.move_slot(slot, to, Duration::from_millis(20)).await;
        assert_eq!(cluster.owner_of(slot).await, to);
        let mut seen = Vec::new();
        while seen.len() < N {
            let job = rx.job(DEADLINE).await;
            seen.push(String::from_utf8_lossy(&job.payload).into_owned());
            dispatch.complete(&worker, [(job.token, Outcome::Completed)]);
        }
        producer.await.expect("producer");
        let seen = each_once("delivered", &seen);
        assert_eq!(seen.len(), N, "{mode:?}");
        wait_drained(&queue, DEADLINE).await;
        close(worker).await;
        let mut conn = redis_conn(&format!("redis://127.0.0.1:{to}")).await;
        let pattern = format!("holdfast:{{{}}}:dedup:*", queue.config().name);
        assert_eq!(keys_matching(&mut conn, &pattern).await.len(), N / 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_fails_over_and_no_durable_add_is_lost() {
    const N: usize = 300;
    let mut cluster = TestCluster::spawn(3, 1).await;
    let victim = cluster.masters()[0];
    let added = Arc::new(AtomicUsize::new(0));
    let (mut producers, mut consumers) = (Vec::new(), Vec::new());
    for mode in MODES {
        let name = name_on(&cluster, victim, "cluster-failover").await;
        let mut cfg = QueueConfig::new(name);
        cfg.cluster = Some(cluster.seeds());
        cfg.mode = mode;
        cfg.durable = Some(Durable {
            replicas: 1,
            fsync: false,
            timeout: Duration::from_millis(500),
        });
        let queue = Queue::new(cfg).expect("queue");
        producers.push(spawn_retrying_producer(
            queue.clone(),
            mode,
            N,
            added.clone(),
        ));
        consumers.push(spawn_collecting_worker(&queue, N, DEADLINE * 2));
    }
    eventually(DEADLINE, "a third of the adds resolved", || async {
        let n = added.load(Ordering::Relaxed);
        (n >= N / 3).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    cluster.node(victim).stop();
    eventually(DEADLINE, "a replica takes over the slots", || async {
        let masters = cluster.masters();
        (masters.len() == 3 && !masters.contains(&victim))
            .then_some(())
            .ok_or(format!("masters {masters:?}"))
    })
    .await;
    // the old master comes back empty and becomes a replica of the new one, so durable adds
    // can be confirmed again
    cluster.node(victim).restart();

    for producer in producers {
        report_refusals(producer, DEADLINE * 2).await;
    }
    for (mode, consumer) in MODES.into_iter().zip(consumers) {
        let (seen, events) = consumer.await.expect("consumer task");
        let errors = errors(&events);
        eprintln!(
            "{mode:?}: worker error events: {} (first: {:?}, last: {:?})",
            errors.len(),
            errors.first(),
            errors.last()
        );
        let missing: Vec<_> = (0..N)
            .map(|i| format!("{mode:?}-{i}"))
            .filter(|id| !seen.contains(id))
            .collect();
        assert!(missing.is_empty(), "{mode:?}: never delivered: {missing:?}");
    }
}

#[test]
fn bad_cluster_options_are_refused() {
    let cases: [(&str, Vec<&str>, Option<&str>, &str); 6] = [
        ("redis://x", vec![], None, "at least one seed"),
        (
            "redis+unix:///tmp/s",
            vec!["h:1"],
            None,
            "not a unix socket",
        ),
        ("redis://x/2", vec!["h:1"], None, "only database 0"),
        ("redis://x", vec!["redis+unix:///tmp/s"], None, "seed"),
        (
            "redis://x",
            vec!["h:1"],
            Some("jobs"),
            "must hash to the queue's slot",
        ),
        (
            "redis://x",
            vec!["h:1"],
            Some("sentinel"),
            "exclude each other",
        ),
    ];
    for (url, seeds, extra, why) in cases {
        let mut cfg = QueueConfig::new("q");
        cfg.url = url.into();
        cfg.cluster = Some(seeds.into_iter().map(String::from).collect());
        match extra {
            Some("sentinel") => {
                cfg.sentinel = Some(holdfast_core::SentinelConfig {
                    master_name: "m".into(),
                    nodes: vec!["h:1".into()],
                })
            }
            Some(list_key) => {
                cfg.mode = Mode::List;
                cfg.list_key = Some(list_key.into());
            }
            None => {}
        }
        let err = Queue::new(cfg).err().expect("refused");
        assert_eq!(err.code(), "ERR_HOLDFAST_INVALID_ARGUMENT");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    // a list key with the queue's hash tag is fine
    let mut cfg = QueueConfig::new("q");
    cfg.cluster = Some(vec!["h:1".into()]);
    cfg.mode = Mode::List;
    cfg.list_key = Some("jobs:{q}".into());
    Queue::new(cfg).expect("a listKey in the queue's slot");
}
