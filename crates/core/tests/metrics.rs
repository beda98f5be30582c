//! What operators read: this process's counters (completed, failed, retried, dead, durations),
//! the queue-wide totals every process writes to Redis, the oldest waiting job's age, the next
//! jobs (`peek`), and the queues under a prefix.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use holdfast_core::{Mode, NewJob, Outcome, Queue, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

async fn counts_and_totals(queue: Arc<Queue>, mode: Mode) {
    // nothing waits yet
    let s = queue.stats().await.expect("stats");
    assert_eq!((s.oldest_waiting_ms, s.completed, s.failed), (None, 0, 0));

    let mut jobs: Vec<NewJob> = ["a", "b", "c", "fails"].map(NewJob::new).into();
    jobs[3].max_attempts = Some(2);
    queue.add(jobs).await.expect("add");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = queue.stats().await.expect("stats");
    let age = s.oldest_waiting_ms.expect("the oldest job's age");
    assert!((250..60_000).contains(&age), "{mode:?}: {s:?}");
    let peeked = queue.peek(3).await.expect("peek");
    let payloads: Vec<String> = peeked.iter().map(|j| j.payload.text()).collect();
    assert_eq!(payloads, ["a", "b", "c"], "{mode:?}: oldest first");
    assert_eq!(queue.peek(10).await.expect("peek").len(), 4);
    assert_eq!(
        queue.stats().await.expect("stats").waiting,
        4,
        "peek takes nothing"
    );

    let (dispatch, mut rx) = channel_dispatch();
    let cfg = WorkerConfig {
        concurrency: 4,
        ..Default::default()
    };
    let worker = queue.worker(cfg, dispatch.clone()).expect("worker");
    let first = rx.jobs(4, DEADLINE).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    dispatch.complete(
        &worker,
        first.iter().map(|j| {
            let outcome = match j.payload.text().as_str() {
                "fails" => Outcome::failed("boom"),
                _ => Outcome::Completed,
            };
            (j.token, outcome)
        }),
    );
    let retry = rx.job(DEADLINE).await;
    assert_eq!((retry.payload.text(), retry.attempt), ("fails".into(), 2));
    dispatch.complete(&worker, [(retry.token, Outcome::failed("boom again"))]);
    rx.event_where(DEADLINE, |e| match e {
        holdfast_core::WorkerEvent::Dead { .. } => Some(()),
        _ => None,
    })
    .await;

    let m = queue.counters().snapshot();
    assert_eq!(
        (m.completed, m.failed, m.retried, m.dead, m.stalled),
        (3, 2, 1, 1, 0),
        "{mode:?}: {m:?}"
    );
    assert_eq!(
        *m.duration_buckets.last().unwrap(),
        5,
        "every finished job timed"
    );
    // the first four were held >= 30 ms: none is in the buckets up to 25 ms
    assert!(m.duration_buckets[3] <= 1, "{m:?}");
    assert!(m.duration_sum_seconds >= 4.0 * 0.03, "{m:?}");

    // the totals in Redis: written within about a second, and by close at the latest
    eventually(DEADLINE, "totals in Redis", || async {
        match queue.stats().await {
            Ok(s) if (s.completed, s.failed) == (3, 2) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    close(worker).await;

    // another process's view of the same queue: the same totals, its own (zero) counters
    // are not these (one registry per process: the same queue shares them here)
    let other = same_queue(&queue);
    let s = other.stats().await.expect("stats");
    assert_eq!((s.completed, s.failed, s.dead), (3, 2, 1));
    assert_eq!(other.counters().snapshot().completed, 3);
    // idle (in list mode no key says the mode any more): the workers recorded it
    assert_eq!(other.detect_mode().await.unwrap(), Some(mode));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_counts_finished_jobs_and_dates_the_oldest() {
    let redis = TestRedis::spawn();
    counts_and_totals(queue(&redis.url(), "metrics-stream"), Mode::Stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_counts_finished_jobs_and_dates_the_oldest() {
    let redis = TestRedis::spawn();
    counts_and_totals(list_queue(&redis.url(), "metrics-list", None), Mode::List).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_cannot_date_a_job_with_its_own_id() {
    let redis = TestRedis::spawn();
    let queue = list_queue(&redis.url(), "metrics-jobid", None);
    let mut job = NewJob::new("x");
    job.job_id = Some("order-1".into());
    queue.add(vec![job]).await.expect("add");
    let s = queue.stats().await.expect("stats");
    assert_eq!((s.waiting, s.oldest_waiting_ms), (1, None));
    assert_eq!(queue.peek(5).await.expect("peek")[0].id, "order-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_under_a_prefix_are_found_with_their_mode() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let stream = queue_in(&url, "found stream/1", Mode::Stream);
    let list = queue_in(&url, "found-list", Mode::List);
    let paused_only = queue_in(&url, "found-paused", Mode::Stream);
    stream.add(vec![NewJob::new("s")]).await.expect("add");
    let mut dedup = NewJob::new("l");
    dedup.job_id = Some("weird}:meta".into());
    list.add(vec![dedup]).await.expect("add");
    paused_only.pause().await.expect("pause");
    // another prefix, and a key that only looks like a queue's
    let elsewhere = Queue::new(holdfast_core::QueueConfig {
        prefix: "other".into(),
        ..stream.config().clone()
    })
    .expect("queue");
    elsewhere.add(vec![NewJob::new("o")]).await.expect("add");
    let mut conn = redis_conn(&url).await;
    let _: () = redis::cmd("SET")
        .arg(format!("{}:unrelated", stream.config().prefix))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();

    let found = stream.find_queues().await.expect("find");
    let got: Vec<(String, Option<Mode>)> = found.into_iter().map(|q| (q.name, q.mode)).collect();
    let mut want = vec![
        (stream.config().name.clone(), Some(Mode::Stream)),
        (list.config().name.clone(), Some(Mode::List)),
        (paused_only.config().name.clone(), None),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    assert_eq!(stream.detect_mode().await.unwrap(), Some(Mode::Stream));
    assert_eq!(list.detect_mode().await.unwrap(), Some(Mode::List));
    assert_eq!(paused_only.detect_mode().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_queue_with_every_job_in_flight_is_still_list_mode() {
    let redis = TestRedis::spawn();
    let queue = list_queue(&redis.url(), "detect [*] list", None);
    queue.add(vec![NewJob::new("x")]).await.expect("add");
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(WorkerConfig::default(), dispatch)
        .expect("worker");
    let job = rx.job(DEADLINE).await;
    assert!(!exists(&mut redis_conn(&redis.url()).await, &keys_of(&queue).wait).await);
    // the mode as another tool, not told the mode, sees it
    let probe = Queue::new(holdfast_core::QueueConfig {
        mode: Mode::Stream,
        ..queue.config().clone()
    })
    .expect("queue");
    assert_eq!(probe.detect_mode().await.unwrap(), Some(Mode::List));
    complete_all(&worker, &[job]);
    close(worker).await;
}
