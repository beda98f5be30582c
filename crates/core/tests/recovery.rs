//! A worker that dies holding jobs loses none of them: once their leases expire another worker
//! recovers them (XAUTOCLAIM), reports them as stalled and runs each exactly once more.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{NewJob, PrefetchPolicy, WorkerConfig, WorkerEvent};

const DEADLINE: Duration = Duration::from_secs(10);
const JOBS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_crashed_worker_run_again_elsewhere() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "recovery");
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&redis.url()).await;
    let vt = Duration::from_millis(500);
    let cfg = WorkerConfig {
        visibility_timeout: vt,
        block: Duration::from_millis(200),
        ..Default::default()
    };

    let payloads: Vec<String> = (0..JOBS).map(|i| format!("{{\"n\":{i}}}")).collect();
    let ids = queue
        .add(payloads.iter().map(NewJob::new).collect())
        .await
        .expect("add");

    // Worker A takes every job, then "crashes": dropping a Worker aborts its tasks, so nothing
    // is acked and no lease is renewed any more.
    let (dispatch_a, mut rx_a) = channel_dispatch();
    // Before worker A exists, so certainly before Redis delivered anything to it.
    let before_delivery = Instant::now();
    let worker_a = queue.worker(cfg.clone(), dispatch_a).expect("worker a");
    let held = rx_a.jobs(JOBS, DEADLINE).await;
    assert_eq!(
        held.iter().map(|j| j.id.clone()).collect::<HashSet<_>>(),
        ids.iter().cloned().collect()
    );
    let crashed_at = Instant::now();
    drop(worker_a);

    // Worker B, another process on the same queue.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let worker_b = queue_b.worker(cfg, dispatch_b).expect("worker b");
    let recovered = rx_b.jobs(JOBS, DEADLINE).await;
    // Loose bounds, not a timing test: the lease (idle time since delivery) must expire first,
    // and recovery must not wait for some unrelated long timer. The design promises 2 x the
    // visibility timeout (typically ~1.4 x here); 4 x leaves room for a loaded machine.
    let since_delivery = before_delivery.elapsed();
    assert!(
        since_delivery >= vt,
        "recovered after {since_delivery:?}, before the {vt:?} lease expired"
    );
    let took = crashed_at.elapsed();
    assert!(
        took < vt * 4,
        "recovery took {took:?} with a {vt:?} visibility timeout"
    );

    // Exactly the crashed worker's jobs, each once, unchanged.
    let got: HashSet<String> = recovered.iter().map(|j| j.id.clone()).collect();
    assert_eq!(got.len(), JOBS, "a job was recovered twice: {recovered:?}");
    assert_eq!(got, ids.iter().cloned().collect());
    for j in &recovered {
        let before = held.iter().find(|h| h.id == j.id).expect("held");
        assert_eq!(
            (&j.payload, &j.receipt, j.attempt),
            (&before.payload, &before.receipt, 1)
        );
    }
    rx_b.no_job_for(Duration::from_millis(300)).await;

    // Reported as stalled, every id once.
    let mut stalled = Vec::new();
    while stalled.len() < JOBS {
        let (ids, _) = rx_b
            .event_where(DEADLINE, |e| match e {
                WorkerEvent::Stalled { ids } => Some(ids.clone()),
                _ => None,
            })
            .await;
        stalled.extend(ids);
    }
    let unique: HashSet<_> = stalled.iter().cloned().collect();
    assert_eq!((stalled.len(), unique), (JOBS, got.clone()));

    let stats = queue.stats().await.expect("stats");
    assert_eq!((stats.waiting, stats.active), (0, JOBS as u64), "{stats:?}");

    complete_all(&worker_b, &recovered);
    wait_drained(&queue, DEADLINE).await;
    wait_trimmed(&mut conn, &keys.stream, Duration::from_secs(3)).await;
    let events = rx_b.drain_events();
    assert!(errors(&events).is_empty(), "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, WorkerEvent::Dead { .. })),
        "{events:?}"
    );
    close(worker_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_respects_the_recovering_workers_concurrency() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "recovery-small");
    let vt = Duration::from_millis(300);
    let ids = queue
        .add((0..JOBS).map(|i| NewJob::new(format!("{i}"))).collect())
        .await
        .expect("add");

    let (dispatch_a, mut rx_a) = channel_dispatch();
    let cfg_a = WorkerConfig {
        visibility_timeout: vt,
        ..Default::default()
    };
    let worker_a = queue.worker(cfg_a, dispatch_a).expect("worker a");
    rx_a.jobs(JOBS, DEADLINE).await;
    drop(worker_a);

    // Worker B takes at most 4 at a time, so recovery has to continue where it left off.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let cfg_b = WorkerConfig {
        visibility_timeout: vt,
        concurrency: 4,
        block: Duration::from_millis(200),
        // no read-ahead: this test counts what the worker holds
        prefetch: PrefetchPolicy::Fixed(0),
        ..Default::default()
    };
    let worker_b = queue_b.worker(cfg_b, dispatch_b).expect("worker b");
    let mut seen = HashSet::new();
    while seen.len() < JOBS {
        let batch = rx_b.jobs(1, DEADLINE).await;
        assert!(
            worker_b.in_flight() <= 4,
            "in flight: {}",
            worker_b.in_flight()
        );
        for j in &batch {
            assert!(seen.insert(j.id.clone()), "{} recovered twice", j.id);
        }
        complete_all(&worker_b, &batch);
    }
    assert_eq!(seen, ids.into_iter().collect());
    rx_b.no_job_for(Duration::from_millis(300)).await;
    wait_drained(&queue, DEADLINE).await;
    let events = rx_b.drain_events();
    assert!(errors(&events).is_empty(), "{events:?}");
    close(worker_b).await;
}
