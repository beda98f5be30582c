//! Reconnects: Redis goes away and comes back, or every client connection is cut. `add` fails
//! fast with a connection error instead of hanging, the worker reports errors and keeps going,
//! and once Redis is back on the same port the worker picks up new jobs and finishes them by
//! itself (new connections, script cache and consumer group recreated). Connections cut while
//! jobs are in flight (data kept) heal without losing or repeating a job; in list mode a job
//! whose fetch reply was lost in the cut (an orphan on the processing list) runs once.
//!
//! Tests of the public API run once per mode (`for mode in MODES`); tests that look at one
//! mode's keys run in that mode only and are named `stream_mode_*` / `list_mode_*`. Deadlines
//! are hang guards, not timing assertions.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{Error, NewJob, Queue, WorkerConfig, WorkerEvent};

const DEADLINE: Duration = Duration::from_secs(20);
/// A hang check, not a timing test.
const FAIL_FAST: Duration = Duration::from_secs(10);

async fn add_n(queue: &Queue, tag: &str, n: usize) -> HashSet<String> {
    let jobs = (0..n)
        .map(|i| NewJob::new(format!("{{\"{tag}\":{i}}}")))
        .collect();
    queue.add(jobs).await.expect("add").into_iter().collect()
}

// both modes; only stream mode trims, so only it waits for the trim
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_survives_a_redis_restart() {
    let mut redis = TestRedis::spawn();
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let queue = queue_in(&redis.url(), "reconnect", mode);
        let (dispatch, mut rx) = channel_dispatch();
        let cfg = WorkerConfig {
            visibility_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let worker = queue.worker(cfg, dispatch).expect("worker");

        // Healthy first.
        let ids = add_n(&queue, "before", 3).await;
        let got = rx.jobs(3, DEADLINE).await;
        assert_eq!(
            got.iter().map(|j| j.id.clone()).collect::<HashSet<_>>(),
            ids
        );
        complete_all(&worker, &got);
        wait_drained(&queue, DEADLINE).await;
        assert!(errors(&rx.drain_events()).is_empty());

        // Redis dies.
        redis.stop();
        for (what, jobs) in [
            ("single add", vec![NewJob::new("{}")]),
            ("bulk add", vec![NewJob::new("{}"), NewJob::new("{}")]),
        ] {
            let started = Instant::now();
            let res = tokio::time::timeout(FAIL_FAST, queue.add(jobs))
                .await
                .unwrap_or_else(|_| panic!("{what} hung for {FAIL_FAST:?} while Redis was down"));
            match res {
                Err(e @ Error::Connection(_)) => assert_eq!(e.code(), "ERR_HOLDFAST_CONNECTION"),
                other => {
                    panic!("{what} while Redis is down: expected Error::Connection, got {other:?}")
                }
            }
            assert!(
                started.elapsed() < FAIL_FAST,
                "{what} took {:?}",
                started.elapsed()
            );
        }
        let stats = tokio::time::timeout(FAIL_FAST, queue.stats())
            .await
            .expect("stats hung while Redis was down");
        assert!(matches!(stats, Err(Error::Connection(_))), "{stats:?}");

        // The worker notices and says so, without stopping.
        let (err, _) = rx
            .event_where(DEADLINE, |e| match e {
                WorkerEvent::Error(err) => Some(err.clone()),
                _ => None,
            })
            .await;
        assert!(err.is_connection(), "{err:?}");

        // Redis is back, empty (persistence is off), on the same port.
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.restart();

        // The producer's connection heals: an add may still fail while it reconnects, but not for long.
        let ids = eventually(DEADLINE, "add succeeds after Redis is back", || async {
            queue
                .add(
                    (0..5)
                        .map(|i| NewJob::new(format!("{{\"after\":{i}}}")))
                        .collect(),
                )
                .await
                .map(|ids| ids.into_iter().collect::<HashSet<_>>())
                .map_err(|e| format!("{e:?}"))
        })
        .await;
        assert_eq!(ids.len(), 5);

        // The worker gets them by itself.
        let got = rx.jobs(5, DEADLINE).await;
        assert_eq!(
            got.iter().map(|j| j.id.clone()).collect::<HashSet<_>>(),
            ids
        );
        assert!(got.iter().all(|j| j.attempt == 1));
        complete_all(&worker, &got);
        wait_drained(&queue, DEADLINE).await;
        // The restarted server is empty; the next heartbeat (every vt/3) registers the worker again.
        eventually(DEADLINE, "the heartbeat is back", || async {
            match queue.stats().await {
                Ok(s) if s.workers == 1 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let mut conn = redis_conn(&redis.url()).await;
        wait_trimmed_in_stream_mode(&mut conn, &queue, Duration::from_secs(5)).await;
        rx.no_job_for(Duration::from_millis(300)).await;

        close(worker).await;
    }
}

/// Core bug: the shared ConnectionManager (`conn.rs` `Conn`) keeps the failed reconnect
/// attempt it made while Redis was down, and hands that stale "Connection refused" to the next
/// command. A producer that sends nothing else therefore fails its first `add` after an outage,
/// however long Redis has been back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn first_add_after_an_outage_succeeds() {
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let mut redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "producer-reconnect", mode);
        queue
            .add(vec![NewJob::new("{}")])
            .await
            .expect("add while Redis is up");

        redis.stop();
        let res = tokio::time::timeout(FAIL_FAST, queue.add(vec![NewJob::new("{}")]))
            .await
            .expect("add hung");
        assert!(matches!(res, Err(Error::Connection(_))), "{res:?}");
        // Let the manager's background reconnect attempt fail for good while Redis is down.
        tokio::time::sleep(Duration::from_secs(1)).await;

        redis.restart();
        // Redis has been back for a while; nothing else used the queue's connection meanwhile.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let res = tokio::time::timeout(FAIL_FAST, queue.add(vec![NewJob::new("{}")]))
            .await
            .expect("add hung");
        assert!(res.is_ok(), "first add with Redis up for 1 s: {res:?}");
    }
}

// both modes; only stream mode trims, so only it waits for the trim
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_heal_without_losing_or_repeating_jobs() {
    // Its own server: it cuts every client connection.
    let redis = TestRedis::spawn();
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let queue = queue_in(&redis.url(), "client-kill", mode);
        let mut conn = redis_conn(&redis.url()).await;
        let (dispatch, mut rx) = channel_dispatch();
        let cfg = WorkerConfig {
            visibility_timeout: Duration::from_secs(2),
            block: Duration::from_millis(500),
            ..Default::default()
        };
        let worker = queue.worker(cfg, dispatch).expect("worker");
        let ids = add_n(&queue, "held", 4).await;
        let held = rx.jobs(4, DEADLINE).await;
        assert_eq!(
            held.iter().map(|j| j.id.clone()).collect::<HashSet<_>>(),
            ids
        );

        // Every connection of the worker and the queue is cut (the data stays).
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .expect("CLIENT LIST");
        let mine: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await
            .expect("CLIENT ID");
        let mut killed = 0;
        for line in clients.lines() {
            let Some(id) = line.split(' ').find_map(|f| f.strip_prefix("id=")) else {
                continue;
            };
            let id: i64 = id.parse().expect("client id");
            if id != mine {
                let n: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(id)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or(0);
                killed += n;
            }
        }
        assert!(killed >= 2, "killed {killed} connections: {clients}");

        // The worker reconnects, keeps renewing the leases and is not handed its own jobs again.
        rx.no_job_for(Duration::from_millis(2500)).await;
        complete_all(&worker, &held);
        let stats = wait_drained(&queue, DEADLINE).await;
        assert_eq!(stats.dead, 0, "{stats:?}");
        wait_trimmed_in_stream_mode(&mut conn, &queue, Duration::from_secs(5)).await;

        // And still fetches new ones.
        let more = add_n(&queue, "more", 2).await;
        let got = rx.jobs(2, DEADLINE).await;
        assert_eq!(
            got.iter().map(|j| j.id.clone()).collect::<HashSet<_>>(),
            more
        );
        complete_all(&worker, &got);
        wait_drained(&queue, DEADLINE).await;
        let events = rx.drain_events();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, WorkerEvent::Stalled { .. } | WorkerEvent::Dead { .. })),
            "{events:?}"
        );
        close(worker).await;
    }
}

// list mode only: an orphan planted on the processing list
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_orphan_of_a_lost_fetch_reply_runs_once_after_a_reconnect() {
    // the hang guard this test had in list_mode.rs (this file's is 20 s)
    const DEADLINE: Duration = Duration::from_secs(10);
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-reclaim", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(
            WorkerConfig {
                block: Duration::from_millis(500),
                ..worker_cfg(Duration::from_secs(3))
            },
            dispatch,
        )
        .expect("worker");
    let active = keys.active(worker.id());

    // Jobs the worker legitimately holds across the cut.
    let held_ids = queue
        .add(
            (0..3)
                .map(|i| NewJob::new(format!("{{\"held\":{i}}}")))
                .collect(),
        )
        .await
        .expect("add");
    let held = rx.jobs(3, DEADLINE).await;
    assert_eq!(ids_of(&held), held_ids.iter().cloned().collect());

    // A job moved into the processing list whose reply never reached the worker.
    let orphan = envelope("orphan-1", 1, 0, None, "{\"orphan\":true}");
    let _: i64 = redis::cmd("LPUSH")
        .arg(&active)
        .arg(&orphan)
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    assert_eq!(llen(&mut conn, &active).await, 4);

    // Every connection of the worker and of the queue is cut; the test's own survives.
    let killed = kill_other_clients(&mut conn).await;
    assert!(killed >= 2, "killed {killed} connections");

    let job = rx.job(DEADLINE).await;
    assert_eq!(
        (job.id.as_str(), job.payload.as_str(), job.attempt),
        ("orphan-1", "{\"orphan\":true}", 1),
        "{job:?}"
    );
    // Nothing else: the jobs held across the cut are not orphans, and the orphan runs once.
    rx.no_job_for(Duration::from_millis(1500)).await;
    let events = rx.drain_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Error(err) if err.is_connection())),
        "the worker noticed the cut: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Stalled { .. } | WorkerEvent::Dead { .. })),
        "{events:?}"
    );
    let mut listed = lrange(&mut conn, &active).await;
    listed.sort();
    let mut want: Vec<String> = held.iter().map(|j| j.receipt.text()).collect();
    want.push(orphan.clone());
    want.sort();
    assert_eq!(listed, want, "the held jobs stay in the processing list");
    assert_eq!(llen(&mut conn, &keys.wait).await, 0);

    // The held jobs (and the orphan) complete normally: their LREMs find them.
    complete_all(&worker, &held);
    complete_all(&worker, std::slice::from_ref(&job));
    eventually(DEADLINE, "the processing list is empty", || {
        let mut conn = conn.clone();
        let active = active.clone();
        async move {
            match llen(&mut conn, &active).await {
                0 => Ok(()),
                n => Err(format!("LLEN {n}")),
            }
        }
    })
    .await;

    // And it still fetches new jobs (added through a fresh handle: the queue's own connection
    // was cut too).
    let producer = same_queue(&queue);
    let more = producer
        .add(vec![NewJob::new("{\"after\":1}")])
        .await
        .expect("add after the cut");
    let after = rx.job(DEADLINE).await;
    assert_eq!(after.id, more[0]);
    complete_all(&worker, &[after]);
    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!(stats.dead, 0, "{stats:?}");
    close(worker).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}
