//! Lease renewal: a job held far longer than the visibility timeout stays with its worker: the
//! worker renews the lease from its own timer, so another worker on the same queue never
//! recovers it, not even when Redis stalls for longer than the lease (every lease looks expired
//! when it resumes, live workers' too).
//!
//! The first test checks the stream's pending entry (XPENDING), so it runs in stream mode only
//! and is named `stream_mode_*`. List mode holds jobs by the worker's heartbeat instead, which
//! graceful_close.rs checks while a worker closes with jobs in flight; the stall test runs in
//! both modes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{NewJob, PrefetchPolicy, WorkerConfig, WorkerEvent};

const DEADLINE: Duration = Duration::from_secs(10);

fn short_lease() -> WorkerConfig {
    WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        block: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Whether a worker reported a job as stalled (recovered from another) or dead.
fn recovered_any(events: &[WorkerEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, WorkerEvent::Stalled { .. } | WorkerEvent::Dead { .. }))
}

// stream mode only: XPENDING (owner, idle time, delivery count)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_a_held_job_keeps_its_lease() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "lease");
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&redis.url()).await;

    let (dispatch_a, mut rx_a) = channel_dispatch();
    let worker_a = queue.worker(short_lease(), dispatch_a).expect("worker a");
    let id = queue
        .add(vec![NewJob::new("{\"slow\":true}")])
        .await
        .expect("add")
        .remove(0);
    let held = rx_a.job(DEADLINE).await;
    assert_eq!(held.id, id);

    // A second worker, as another process would run it, scanning for expired leases every
    // 75 ms with min-idle 300 ms.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let worker_b = queue_b.worker(short_lease(), dispatch_b).expect("worker b");

    // Hold the job for five visibility timeouts.
    let started = Instant::now();
    rx_b.no_job_for(Duration::from_millis(1500)).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    rx_a.no_job_for(Duration::ZERO).await;
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.waiting, stats.active, stats.workers),
        (0, 1, 2),
        "{stats:?}"
    );

    // The entry is still pending for worker A, delivered once.
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].0, held.receipt);
    assert_eq!(pending[0].1, worker_a.id(), "still owned by worker a");
    assert_eq!(pending[0].3, 1, "renewal does not count as a delivery");
    assert!(
        pending[0].2 < 300,
        "idle time was just reset, got {} ms",
        pending[0].2
    );

    worker_a
        .complete_and_dispatch([(held.token, holdfast_core::Outcome::Completed)])
        .expect("complete");
    wait_drained(&queue, DEADLINE).await;
    wait_trimmed(&mut conn, &keys.stream, Duration::from_secs(3)).await;
    rx_b.no_job_for(Duration::from_millis(400)).await;

    for (name, rx) in [("a", &mut rx_a), ("b", &mut rx_b)] {
        let events = rx.drain_events();
        assert!(
            !recovered_any(&events),
            "worker {name} saw the job as stalled or dead: {events:?}"
        );
        assert!(
            errors(&events).is_empty(),
            "worker {name} reported errors: {events:?}"
        );
    }
    close(worker_a).await;
    close(worker_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_longer_than_the_lease_takes_no_live_workers_job() {
    for mode in MODES {
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "stall", mode);
        let vt = Duration::from_millis(600);
        let cfg = WorkerConfig {
            visibility_timeout: vt,
            block: Duration::from_millis(200),
            concurrency: 4,
            prefetch: PrefetchPolicy::Fixed(0),
            ..Default::default()
        };
        let (dispatch_a, mut rx_a) = channel_dispatch();
        let worker_a = queue.worker(cfg.clone(), dispatch_a).expect("worker a");
        let payloads: Vec<String> = (0..4).map(|i| format!("{{\"n\":{i}}}")).collect();
        queue
            .add(payloads.iter().map(NewJob::new).collect())
            .await
            .expect("add");
        let held = rx_a.jobs(4, DEADLINE).await;

        // B is idle and long in touch with Redis: ready to recover anything that expires
        let queue_b = same_queue(&queue);
        let (dispatch_b, mut rx_b) = channel_dispatch();
        let worker_b = queue_b.worker(cfg.clone(), dispatch_b).expect("worker b");
        rx_b.no_job_for(vt * 2).await;

        // Redis stops for three leases, three times; requests of both workers queue up
        for _ in 0..3 {
            redis.freeze();
            std::thread::sleep(vt * 3);
            redis.thaw();
            rx_b.no_job_for(vt * 3).await;
        }
        rx_a.no_job_for(Duration::ZERO).await;
        for (name, rx) in [("a", &mut rx_a), ("b", &mut rx_b)] {
            let events = rx.drain_events();
            assert!(
                !recovered_any(&events),
                "{mode:?}: worker {name} took a live worker's job: {events:?}"
            );
        }
        complete_all(&worker_a, &held);
        let stats = wait_drained(&queue, DEADLINE).await;
        assert_eq!(stats.dead, 0, "{mode:?}");
        close(worker_a).await;
        close(worker_b).await;
    }
}
