//! `close` is graceful: it stops fetching at once, waits for the jobs in flight (still renewing
//! their leases), flushes their acks and leaves the group; later calls report `Closed`.

mod common;

use std::time::Duration;

use common::*;
use holdfast_core::{Error, NewJob, Outcome, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_jobs_in_flight_and_fetches_no_more() {
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
