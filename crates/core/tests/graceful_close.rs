//! Graceful close: `close` stops fetching at once, waits for the jobs in flight (still renewing
//! their leases or heartbeat), flushes their acks and leaves (the consumer group in stream mode;
//! the heartbeat and processing list in list mode, unless acks are left over); later calls
//! report `Closed`.
//!
//! Tests are per mode: each one here looks at one mode's keys (XPENDING; the heartbeat and the
//! processing list), so it runs in that mode only and is named `stream_mode_*` or `list_mode_*`.
//! Deadlines are hang guards, not timing assertions.

mod common;

use std::time::Duration;

use common::*;
use holdfast_core::{Error, NewJob, Outcome, Stats, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

// stream mode only: XPENDING (owner, idle time) and trimming
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_close_waits_for_jobs_in_flight_and_fetches_no_more() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "close");
    let mut conn = redis_conn(&redis.url()).await;
    let (dispatch, mut rx) = channel_dispatch();
    let cfg = WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let worker = std::sync::Arc::new(queue.worker(cfg, dispatch).expect("worker"));

    queue
        .add(vec![NewJob::new("1"), NewJob::new("2")])
        .await
        .expect("add");
    let held = rx.jobs(2, DEADLINE).await;

    let closing = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.close().await })
    };
    // Held for several visibility timeouts while closing: close must wait, and the leases must
    // still be renewed (stats show both active, nobody else could take them).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !closing.is_finished(),
        "close returned with jobs still in flight"
    );
    let late = queue
        .add(vec![NewJob::new("late")])
        .await
        .expect("add")
        .remove(0);
    rx.no_job_for(Duration::from_millis(500)).await;
    let stats = queue.stats().await.expect("stats");
    assert_eq!((stats.waiting, stats.active), (1, 2), "{stats:?}");
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&keys_of(&queue).stream)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    assert_eq!(pending.len(), 2, "{pending:?}");
    for (_, owner, idle_ms, deliveries) in &pending {
        assert_eq!(
            (owner.as_str(), *deliveries),
            (worker.id(), 1),
            "{pending:?}"
        );
        assert!(
            *idle_ms < 300,
            "lease not renewed while closing: {pending:?}"
        );
    }

    complete_all(&worker, &held);
    tokio::time::timeout(DEADLINE, closing)
        .await
        .expect("close finishes once the jobs are done")
        .expect("close task")
        .expect("close");

    // The acks were flushed before close returned; the late job waits for the next worker.
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.waiting, stats.active, stats.workers),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(matches!(
        worker.complete([(held[0].token, Outcome::Completed)]),
        Err(Error::Closed)
    ));
    worker.close().await.expect("close is idempotent");

    let (dispatch, mut rx2) = channel_dispatch();
    let next = queue
        .worker(WorkerConfig::default(), dispatch)
        .expect("worker");
    let job = rx2.job(DEADLINE).await;
    assert_eq!(
        (job.id.as_str(), job.payload.as_str(), job.attempt),
        (late.as_str(), "late", 1)
    );
    complete_all(&next, &[job]);
    wait_drained(&queue, DEADLINE).await;
    wait_trimmed(&mut conn, &keys_of(&queue).stream, Duration::from_secs(3)).await;
    assert!(errors(&rx.drain_events()).is_empty());
    close(next).await;
}

// list mode only: the heartbeat and the processing list
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_close_waits_for_jobs_then_removes_heartbeat_and_processing_list() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-close", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(worker_cfg(Duration::from_millis(300)), dispatch)
        .expect("worker");
    let id = worker.id().to_owned();
    let active = keys.active(&id);

    queue
        .add(vec![NewJob::new("1"), NewJob::new("2")])
        .await
        .expect("add");
    let held = rx.jobs(2, DEADLINE).await;

    let done = {
        let closing = worker.close();
        tokio::pin!(closing);
        // Held for several visibility timeouts while closing: the heartbeat keeps the jobs.
        let early = tokio::time::timeout(Duration::from_millis(1000), &mut closing).await;
        assert!(
            early.is_err(),
            "close returned with jobs in flight: {early:?}"
        );
        let late = queue.add(vec![NewJob::new("late")]).await.expect("add");
        assert_eq!(late.len(), 1);
        let deadline = zscore(&mut conn, &keys.workers, &id)
            .await
            .expect("heartbeat while closing");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        assert!(
            deadline > now,
            "the heartbeat deadline {deadline} passed ({now})"
        );
        assert_eq!(llen(&mut conn, &active).await, 2);
        complete_all(&worker, &held);
        tokio::time::timeout(DEADLINE, closing)
            .await
            .expect("close hung")
    };
    done.expect("close");
    // The late job was not fetched by the closing worker.
    rx.no_job_for(Duration::from_millis(200)).await;

    assert_eq!(zscore(&mut conn, &keys.workers, &id).await, None);
    assert!(!exists(&mut conn, &active).await);
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        Stats {
            oldest_waiting_ms: None,
            completed: 0,
            failed: 0,
            ..stats
        },
        Stats {
            waiting: 1,
            ..Stats::default()
        }
    );
    assert_eq!(queue_keys(&mut conn, &queue).await, vec![keys.wait.clone()]);
    let events = rx.drain_events();
    assert!(events.is_empty(), "{events:?}");
    assert!(matches!(
        worker.complete([(0, Outcome::Completed)]),
        Err(holdfast_core::Error::Closed)
    ));

    // An idle worker closes at once too, and leaves nothing behind.
    let (dispatch, mut rx) = channel_dispatch();
    let idle = queue
        .worker(worker_cfg(Duration::from_millis(300)), dispatch)
        .expect("worker");
    let late = rx.job(DEADLINE).await;
    assert_eq!(late.payload, "late");
    complete_all(&idle, &[late]);
    wait_drained(&queue, DEADLINE).await;
    close(idle).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}

/// `leave` keeps the heartbeat while the processing list is not empty (acks that could not be
/// written on close; here: an element the worker never held), so a reaper returns what is left.
// list mode only: an element planted on the processing list
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_close_keeps_the_heartbeat_while_the_processing_list_is_not_empty() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-close-left", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let vt = Duration::from_millis(500);
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue.worker(worker_cfg(vt), dispatch).expect("worker");
    let id = worker.id().to_owned();
    let active = keys.active(&id);
    eventually(DEADLINE, "worker registered", || {
        let mut conn = conn.clone();
        let (workers, id) = (keys.workers.clone(), id.clone());
        async move {
            match zscore(&mut conn, &workers, &id).await {
                Some(_) => Ok(()),
                None => Err("no heartbeat yet".into()),
            }
        }
    })
    .await;
    let left = envelope("left-behind", 1, 0, None, "{\"left\":true}");
    let _: i64 = redis::cmd("LPUSH")
        .arg(&active)
        .arg(&left)
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    close(worker).await;
    rx.no_job_for(Duration::from_millis(100)).await;
    assert!(zscore(&mut conn, &keys.workers, &id).await.is_some());
    assert_eq!(lrange(&mut conn, &active).await, [left]);

    // Once its deadline passes, another worker returns the element and runs it.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let worker_b = queue_b
        .worker(worker_cfg(vt), dispatch_b)
        .expect("worker b");
    let job = rx_b.job(DEADLINE).await;
    assert_eq!((job.id.as_str(), job.attempt), ("left-behind", 1));
    complete_all(&worker_b, std::slice::from_ref(&job));
    rx_b.no_job_for(Duration::from_millis(300)).await;
    wait_drained(&queue, DEADLINE).await;
    let events = rx_b.drain_events();
    assert_eq!(stalled_ids(&events), ["left-behind"], "{events:?}");
    assert_eq!(zscore(&mut conn, &keys.workers, &id).await, None);
    close(worker_b).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}

/// `close_within` stops waiting at its timeout: the jobs whose handlers still run go back to the
/// queue at once (same attempt, no lease to wait out) and a late outcome changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_within_a_timeout_hands_running_jobs_back() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "close-within", mode);
        let (dispatch, mut rx) = channel_dispatch();
        let cfg = WorkerConfig {
            visibility_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let worker = queue.worker(cfg, dispatch).expect("worker");
        queue
            .add(vec![NewJob::new("a"), NewJob::new("b")])
            .await
            .expect("add");
        let held = rx.jobs(2, DEADLINE).await;
        let report = worker.close_within(Some(Duration::from_millis(100))).await;
        assert_eq!(
            (report.timed_out, report.left_to_lease_expiry),
            (2, 0),
            "{mode:?}"
        );
        // the handlers finish late: nothing to report to any more
        assert!(matches!(
            worker.complete(held.iter().map(|j| (j.token, Outcome::Completed))),
            Err(Error::Closed)
        ));
        let stats = queue.stats().await.expect("stats");
        let settled = (stats.waiting + stats.active, stats.workers);
        assert!(
            settled == (2, 0) && stats.waiting >= 1,
            "{mode:?}: {stats:?}"
        );

        let (dispatch, mut rx) = channel_dispatch();
        let again = queue
            .worker(worker_cfg(Duration::from_secs(60)), dispatch)
            .expect("worker");
        let back = rx.jobs(2, DEADLINE).await;
        let mut got: Vec<_> = back.iter().map(|j| (j.id.clone(), j.attempt)).collect();
        let mut want: Vec<_> = held.iter().map(|j| (j.id.clone(), 1)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{mode:?}: back at once, same attempt");
        complete_all(&again, &back);
        close(again).await;
    }
}
