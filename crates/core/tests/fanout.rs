//! Fan-out: queues with different consumer groups on one stream each get every job. What
//! happens after delivery belongs to one group: a worker of one group that crashes is recovered
//! in that group only, and a job that fails in one group is retried in that group only; the
//! stream keeps an entry until every group has finished it. Stream mode only (list mode has no
//! groups). Deadlines are hang guards, not timing assertions.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use holdfast_core::{NewJob, Outcome, Queue, Worker, WorkerConfig, WorkerEvent};
use redis::aio::MultiplexedConnection;

const DEADLINE: Duration = Duration::from_secs(10);
const JOBS: usize = 8;

/// The same queue, read by another consumer group.
fn in_group(queue: &Queue, group: &str) -> Arc<Queue> {
    let mut cfg = queue.config().clone();
    cfg.group = group.to_owned();
    Queue::new(cfg).expect("queue config")
}

/// Waits until the stream has `n` consumer groups.
async fn wait_groups(conn: &mut MultiplexedConnection, stream: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let groups: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(conn)
            .await
            .unwrap_or_default();
        if groups.len() == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} groups");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every entry has left the stream (each group finished it, and it was trimmed).
async fn wait_trimmed(conn: &mut MultiplexedConnection, stream: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while xlen(conn, stream).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream} not trimmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn payloads() -> Vec<NewJob> {
    (0..JOBS)
        .map(|i| NewJob::new(format!("{{\"n\":{i}}}")))
        .collect()
}

/// One queue read by two groups, the default one (billing) and `email`, a worker in each and
/// both groups made; then the jobs added.
struct TwoGroups {
    _redis: TestRedis,
    billing: Arc<Queue>,
    email: Arc<Queue>,
    stream: String,
    conn: MultiplexedConnection,
    ids: HashSet<String>,
    billing_worker: Worker,
    billing_dispatch: Arc<ChannelDispatch>,
    billing_rx: Received,
    email_worker: Worker,
    email_rx: Received,
}

async fn two_groups(test: &str, cfg: &WorkerConfig) -> TwoGroups {
    let redis = TestRedis::shared_or_spawn();
    let billing = queue(&redis.url(), test);
    let email = in_group(&billing, "email");
    let stream = keys_of(&billing).stream;
    let mut conn = redis_conn(&redis.url()).await;
    let (email_dispatch, email_rx) = channel_dispatch();
    let email_worker = email
        .worker(cfg.clone(), email_dispatch)
        .expect("email worker");
    let (billing_dispatch, billing_rx) = channel_dispatch();
    let billing_worker = billing
        .worker(cfg.clone(), billing_dispatch.clone())
        .expect("billing worker");
    wait_groups(&mut conn, &stream, 2).await;
    let ids = billing.add(payloads()).await.expect("add");
    TwoGroups {
        _redis: redis,
        billing,
        email,
        stream,
        conn,
        ids: ids.into_iter().collect(),
        billing_worker,
        billing_dispatch,
        billing_rx,
        email_worker,
        email_rx,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_a_crash_in_one_group_is_recovered_in_that_group_only() {
    let cfg = worker_cfg(Duration::from_millis(500));
    let mut t = two_groups("fanout-crash", &cfg).await;
    let ids = &t.ids;

    let held = t.billing_rx.jobs(JOBS, DEADLINE).await;
    assert_eq!(&ids_of(&held), ids);
    drop(t.billing_worker); // a crash: nothing acked, no lease renewed
    let mailed = t.email_rx.jobs(JOBS, DEADLINE).await;
    assert_eq!(&each_once("email", mailed.iter().map(|j| &j.id)), ids);
    complete_all(&t.email_worker, &mailed);

    // another billing process recovers billing's jobs once their leases expire
    let (dispatch, mut rx) = channel_dispatch();
    let recovering = same_queue(&t.billing)
        .worker(cfg, dispatch)
        .expect("second billing worker");
    let recovered = rx.jobs(JOBS, DEADLINE).await;
    assert_eq!(&each_once("billing", recovered.iter().map(|j| &j.id)), ids);
    rx.event_where(DEADLINE, |e| {
        matches!(e, WorkerEvent::Stalled { .. }).then_some(())
    })
    .await;
    complete_all(&recovering, &recovered);

    // email was not disturbed: nothing more reached it, and the stream empties once both
    // groups have finished every entry
    t.email_rx.no_job_for(Duration::from_millis(500)).await;
    wait_trimmed(&mut t.conn, &t.stream).await;
    close(recovering).await;
    close(t.email_worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_a_failure_in_one_group_is_retried_in_that_group_only() {
    let mut t = two_groups("fanout-retry", &worker_cfg(Duration::from_secs(5))).await;
    let ids = &t.ids;

    // billing fails every first attempt: half retried at once, half after a backoff
    let first = t.billing_rx.jobs(JOBS, DEADLINE).await;
    let failures = first.iter().enumerate().map(|(i, j)| {
        let retry_in = Duration::from_millis(if i % 2 == 0 { 0 } else { 50 });
        let reason = "declined".to_owned();
        (j.token, Outcome::Failed { reason, retry_in })
    });
    t.billing_dispatch
        .complete(&t.billing_worker, failures.collect::<Vec<_>>());
    let second = t.billing_rx.jobs(JOBS, DEADLINE).await;
    assert_eq!(
        &each_once("billing retries", second.iter().map(|j| &j.id)),
        ids
    );
    assert!(second.iter().all(|j| j.attempt == 2), "{second:?}");
    complete_all(&t.billing_worker, &second);

    let mailed = t.email_rx.jobs(JOBS, DEADLINE).await;
    assert_eq!(&each_once("email", mailed.iter().map(|j| &j.id)), ids);
    assert!(mailed.iter().all(|j| j.attempt == 1));
    complete_all(&t.email_worker, &mailed);
    // the retries' entries pass email unrun, and leave the stream
    wait_trimmed(&mut t.conn, &t.stream).await;
    t.email_rx.no_job_for(Duration::from_millis(300)).await;
    let stats = t.email.stats().await.expect("stats");
    assert_eq!((stats.waiting, stats.active), (0, 0));
    let names: HashSet<String> = stats.groups.iter().map(|g| g.name.clone()).collect();
    assert_eq!(names, ["workers", "email"].map(String::from).into());
    close(t.billing_worker).await;
    close(t.email_worker).await;
}
