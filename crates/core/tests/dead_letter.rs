//! Dead letters: jobs that never finish end up in the dead-letter stream (both modes keep dead
//! letters in a stream) instead of looping forever: poison jobs whose workers crash past
//! `max_deliveries`, and jobs whose handler fails `max_attempts` times (with their last error
//! message).
//!
//! Tests are per mode: each one here looks at one mode's keys (the main stream and its trimming;
//! processing lists and envelopes), so it runs in that mode only and is named `stream_mode_*` or
//! `list_mode_*`. Deadlines are hang guards, not timing assertions.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use holdfast_core::{Job, NewJob, Outcome, Queue, WorkerConfig, WorkerEvent};
use redis::aio::MultiplexedConnection;

const DEADLINE: Duration = Duration::from_secs(10);

fn crashy(max_deliveries: u32) -> WorkerConfig {
    WorkerConfig {
        visibility_timeout: Duration::from_millis(300),
        block: Duration::from_millis(200),
        max_deliveries,
        ..Default::default()
    }
}

/// The only entry of the dead stream, as field -> value.
async fn only_dead_entry(
    conn: &mut MultiplexedConnection,
    queue: &Queue,
) -> HashMap<String, String> {
    let dead = &keys_of(queue).dead;
    assert_eq!(xlen(conn, dead).await, 1, "one entry in {dead}");
    xrange(conn, dead).await.remove(0).1
}

/// Runs workers that each take the job and crash, until a worker dead-letters it instead.
/// Returns the number of workers that received it.
async fn crash_until_dead(queue: &std::sync::Arc<Queue>, max_deliveries: u32, job_id: &str) -> u32 {
    let mut deliveries = 0;
    loop {
        let q = same_queue(queue);
        let (dispatch, mut rx) = channel_dispatch();
        let worker = q.worker(crashy(max_deliveries), dispatch).expect("worker");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut events = Vec::new();
        let job = loop {
            tokio::select! {
                job = rx.jobs.recv() => break job.expect("job channel open"),
                event = rx.events.recv() => match event.expect("event channel open") {
                    WorkerEvent::Dead { id, reason } => {
                        assert_eq!(id, job_id);
                        assert!(reason.contains("maxDeliveries"), "reason names the limit: {reason}");
                        // The worker that dead-lettered it must not also run it.
                        rx.no_job_for(Duration::from_millis(300)).await;
                        close(worker).await;
                        return deliveries;
                    }
                    other => events.push(other),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("neither the job nor a Dead event within {DEADLINE:?}; events: {events:?}")
                }
            }
        };
        assert_eq!(job.id, job_id);
        assert_eq!(job.attempt, 1, "a crash is not a failed attempt");
        deliveries += 1;
        assert!(
            deliveries <= max_deliveries,
            "delivered {deliveries} times with maxDeliveries {max_deliveries}"
        );
        if deliveries > 1 {
            // Stalled is emitted before the recovered jobs are handed out.
            events.extend(rx.drain_events());
            let stalled: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    WorkerEvent::Stalled { ids } => Some(ids.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(stalled, vec![vec![job_id.to_owned()]], "{events:?}");
        }
        drop(worker); // crash: no ack, no more lease renewal
    }
}

/// Adds one poison job and crashes workers on it until it is dead-lettered; checks the dead
/// entry and the counts. Returns the server, queue and connection for further checks.
async fn poison_goes_dead(
    max_deliveries: u32,
) -> (TestRedis, std::sync::Arc<Queue>, MultiplexedConnection) {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), &format!("poison-{max_deliveries}"));
    let mut conn = redis_conn(&redis.url()).await;
    queue
        .add(vec![NewJob {
            job_id: Some("poison".into()),
            ..NewJob::new("{\"explode\":true}")
        }])
        .await
        .expect("add");

    let deliveries = crash_until_dead(&queue, max_deliveries, "poison").await;
    assert_eq!(
        deliveries, max_deliveries,
        "ran exactly maxDeliveries times before going dead"
    );

    let dead = only_dead_entry(&mut conn, &queue).await;
    assert_eq!(
        dead.get("id").map(String::as_str),
        Some("poison"),
        "{dead:?}"
    );
    assert_eq!(
        dead.get("d").map(String::as_str),
        Some("{\"explode\":true}"),
        "{dead:?}"
    );
    let err = dead
        .get("err")
        .unwrap_or_else(|| panic!("no err field: {dead:?}"));
    assert!(err.contains("maxDeliveries"), "{err}");
    assert!(dead.contains_key("a") && dead.contains_key("t"), "{dead:?}");

    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!(stats.dead, 1, "{stats:?}");
    (redis, queue, conn)
}

/// Completes one ordinary job on a fresh worker; its ack triggers a trim of the whole stream.
async fn run_one_ordinary_job(queue: &Queue, conn: &mut MultiplexedConnection) {
    let q = same_queue(queue);
    let (dispatch, mut rx) = channel_dispatch();
    let worker = q.worker(crashy(5), dispatch).expect("worker");
    q.add(vec![NewJob::new("{\"fine\":true}")])
        .await
        .expect("add");
    let job = rx.job(DEADLINE).await;
    assert_eq!(job.payload, "{\"fine\":true}");
    worker
        .complete_and_dispatch([(job.token, Outcome::Completed)])
        .expect("complete");
    wait_drained(&q, DEADLINE).await;
    wait_trimmed(conn, &keys_of(&q).stream, Duration::from_secs(3)).await;
    close(worker).await;
}

// stream mode only: list mode runs a crashing job maxDeliveries + 1 times (its reaper
// dead-letters when recoveries exceed the limit), so the counts here differ; a known gap
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_poison_job_with_max_deliveries_1_goes_dead_after_one_crash() {
    let (_redis, queue, mut conn) = poison_goes_dead(1).await;
    // The dead-lettered entry leaves the stream at the latest with the next trim.
    run_one_ordinary_job(&queue, &mut conn).await;
}

// stream mode only: list mode runs a crashing job maxDeliveries + 1 times (its reaper
// dead-letters when recoveries exceed the limit), so the counts here differ; a known gap
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_poison_job_with_max_deliveries_2_goes_dead_after_two_crashes() {
    let (_redis, queue, mut conn) = poison_goes_dead(2).await;
    run_one_ordinary_job(&queue, &mut conn).await;
}

/// Core bug: an entry dead-lettered by recovery (recover.lua, called from fetch.rs `recover`)
/// is XACKed but no trim is scheduled (only the acker trims, after its own flushes), so its
/// payload stays in the main stream until some later job is acknowledged on that queue; on a
/// queue that goes quiet it stays for good.
// stream mode only: the main stream's trimming
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn stream_mode_poison_entry_leaves_the_stream_once_dead() {
    let (_redis, queue, mut conn) = poison_goes_dead(1).await;
    wait_trimmed(&mut conn, &keys_of(&queue).stream, Duration::from_secs(3)).await;
}

/// Receives the one job expected next, checking its id and attempt.
async fn next_attempt(rx: &mut Received, id: &str, attempt: u32) -> Job {
    let job = rx.job(DEADLINE).await;
    assert_eq!((job.id.as_str(), job.attempt), (id, attempt), "{job:?}");
    job
}

// both modes; only stream mode trims, so only it waits for the trim
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handler_is_retried_up_to_max_attempts_then_dead() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let queue = queue_in(&redis.url(), "handler-fails", mode);
        let mut conn = redis_conn(&redis.url()).await;
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(
                WorkerConfig {
                    max_attempts: 3,
                    ..Default::default()
                },
                dispatch,
            )
            .expect("worker");

        // No jobId: the id is the first entry id and must stay the same across attempts.
        let payload = "{\"to\":\"a@b.c\"}";
        let id = queue
            .add(vec![NewJob::new(payload)])
            .await
            .expect("add")
            .remove(0);
        let mut entries = Vec::new();
        for attempt in 1..=3 {
            let job = next_attempt(&mut rx, &id, attempt).await;
            assert_eq!(job.payload, payload);
            entries.push(job.receipt.clone());
            worker
                .complete_and_dispatch([(
                    job.token,
                    Outcome::failed(format!("smtp said no ({attempt})")),
                )])
                .expect("complete");
        }
        entries.dedup();
        assert_eq!(entries.len(), 3, "each attempt is a new entry: {entries:?}");

        let ((dead_id, reason), _) = rx
            .event_where(DEADLINE, |e| match e {
                WorkerEvent::Dead { id, reason } => Some((id.clone(), reason.clone())),
                _ => None,
            })
            .await;
        assert_eq!(
            (dead_id.as_str(), reason.as_str()),
            (id.as_str(), "smtp said no (3)")
        );
        rx.no_job_for(Duration::from_millis(300)).await;

        let dead = only_dead_entry(&mut conn, &queue).await;
        assert_eq!(dead.get("id"), Some(&id), "{dead:?}");
        assert_eq!(dead.get("d").map(String::as_str), Some(payload), "{dead:?}");
        assert_eq!(
            dead.get("err").map(String::as_str),
            Some("smtp said no (3)"),
            "{dead:?}"
        );
        assert_eq!(dead.get("a").map(String::as_str), Some("3"), "{dead:?}");

        let stats = wait_drained(&queue, DEADLINE).await;
        assert_eq!(stats.dead, 1, "{stats:?}");
        wait_trimmed_in_stream_mode(&mut conn, &queue, Duration::from_secs(3)).await;
        let events = rx.drain_events();
        assert!(errors(&events).is_empty(), "{events:?}");
        close(worker).await;
    }
}

// both modes; only stream mode trims, so only it waits for the trim
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_job_max_attempts_and_success_after_failure() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let queue = queue_in(&redis.url(), "per-job-max", mode);
        let mut conn = redis_conn(&redis.url()).await;
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(
                WorkerConfig {
                    max_attempts: 5,
                    ..Default::default()
                },
                dispatch,
            )
            .expect("worker");

        // maxAttempts 2 on the job overrides the worker's 5.
        queue
            .add(vec![NewJob {
                job_id: Some("short".into()),
                max_attempts: Some(2),
                ..NewJob::new("1")
            }])
            .await
            .expect("add");
        for attempt in 1..=2 {
            let job = next_attempt(&mut rx, "short", attempt).await;
            assert_eq!(
                job.max_attempts,
                Some(2),
                "the override travels with each retry"
            );
            worker
                .complete_and_dispatch([(job.token, Outcome::failed(format!("no {attempt}")))])
                .expect("complete");
        }
        let ((dead_id, reason), _) = rx
            .event_where(DEADLINE, |e| match e {
                WorkerEvent::Dead { id, reason } => Some((id.clone(), reason.clone())),
                _ => None,
            })
            .await;
        assert_eq!((dead_id.as_str(), reason.as_str()), ("short", "no 2"));

        // A job that fails once and then succeeds leaves nothing behind.
        queue
            .add(vec![NewJob {
                job_id: Some("flaky".into()),
                ..NewJob::new("2")
            }])
            .await
            .expect("add");
        let job = next_attempt(&mut rx, "flaky", 1).await;
        worker
            .complete_and_dispatch([(job.token, Outcome::failed("transient"))])
            .expect("complete");
        let job = next_attempt(&mut rx, "flaky", 2).await;
        worker
            .complete_and_dispatch([(job.token, Outcome::Completed)])
            .expect("complete");
        rx.no_job_for(Duration::from_millis(300)).await;

        let stats = wait_drained(&queue, DEADLINE).await;
        assert_eq!(stats.dead, 1, "only the short job is dead: {stats:?}");
        let dead = only_dead_entry(&mut conn, &queue).await;
        assert_eq!(dead.get("id").map(String::as_str), Some("short"));
        wait_trimmed_in_stream_mode(&mut conn, &queue, Duration::from_secs(3)).await;
        let events = rx.drain_events();
        assert!(errors(&events).is_empty(), "{events:?}");
        close(worker).await;
    }
}

// list mode only: a dead worker planted with its processing list
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_poison_element_of_a_dead_worker_goes_to_the_dead_list() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-poison", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let max_deliveries = 2;

    // Already recovered max_deliveries times (poison), and once (healthy: one more is fine).
    let poison = "{\"explode\":true}";
    plant_dead_worker(
        &mut conn,
        &keys,
        "deadhost:1:poison",
        &[
            envelope("poison", 1, max_deliveries, None, poison),
            envelope("healthy", 1, max_deliveries - 1, None, "{\"fine\":true}"),
        ],
    )
    .await;

    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(
            WorkerConfig {
                max_deliveries,
                ..worker_cfg(Duration::from_millis(500))
            },
            dispatch,
        )
        .expect("worker");

    let ((id, reason), mut events) = rx
        .event_where(DEADLINE, |e| match e {
            WorkerEvent::Dead { id, reason } => Some((id.clone(), reason.clone())),
            _ => None,
        })
        .await;
    assert_eq!(id, "poison");
    assert!(reason.contains("maxDeliveries"), "{reason}");

    let healthy = rx.job(DEADLINE).await;
    assert_eq!(
        (
            healthy.id.as_str(),
            healthy.payload.as_str(),
            healthy.attempt
        ),
        ("healthy", "{\"fine\":true}", 1)
    );
    complete_all(&worker, std::slice::from_ref(&healthy));
    // The poison element never runs.
    rx.no_job_for(Duration::from_millis(500)).await;

    assert_eq!(xlen(&mut conn, &keys.dead).await, 1);
    let records = dead_records(&mut conn, &keys.dead).await;
    let record = &records[0];
    assert_eq!((record.id.as_str(), record.d.as_str()), ("poison", poison));
    assert!(record.err.contains("maxDeliveries"), "{record:?}");
    assert_eq!(record.a, "1", "{record:?}");
    assert!(record.t.parse::<u64>().is_ok_and(|t| t > 0), "{record:?}");

    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!(stats.dead, 1, "{stats:?}");
    assert_eq!(
        zscore(&mut conn, &keys.workers, "deadhost:1:poison").await,
        None
    );
    assert!(!exists(&mut conn, &keys.active("deadhost:1:poison")).await);
    events.extend(rx.drain_events());
    assert_eq!(stalled_ids(&events), ["healthy"], "{events:?}");
    assert!(errors(&events).is_empty(), "{events:?}");
    assert!(
        dead_events(&events).is_empty(),
        "one Dead event: {events:?}"
    );
    close(worker).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, vec![keys.dead.clone()]);
}

// list mode only: a raw element LPUSHed on `wait`, processing lists
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_failing_jobs_are_retried_up_to_max_attempts_then_dead() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-fail", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;

    // id -> (payload, attempts it gets)
    let mut expected: HashMap<String, (String, u32)> = HashMap::new();
    let jobs = vec![
        NewJob {
            job_id: Some("default".into()),
            ..NewJob::new("{\"max\":\"worker\"}")
        },
        NewJob {
            job_id: Some("low".into()),
            max_attempts: Some(1),
            ..NewJob::new("{\"max\":1}")
        },
        NewJob {
            job_id: Some("high".into()),
            max_attempts: Some(5),
            ..NewJob::new("{\"max\":5}")
        },
    ];
    for job in &jobs {
        let max = job.max_attempts.unwrap_or(3);
        expected.insert(job.job_id.clone().unwrap(), (job.payload.text(), max));
    }
    let generated = queue
        .add(vec![NewJob::new("{\"generated\":true}")])
        .await
        .expect("add")
        .remove(0);
    expected.insert(generated, ("{\"generated\":true}".into(), 3));
    queue.add(jobs).await.expect("add");
    // A raw element keeps its content-derived id across retries.
    let raw = "raw failing job";
    let _: i64 = redis::cmd("LPUSH")
        .arg(&keys.wait)
        .arg(raw)
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    expected.insert(raw_id(&mut conn, raw).await, (raw.into(), 3));

    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(
            WorkerConfig {
                max_attempts: 3,
                ..worker_cfg(Duration::from_secs(5))
            },
            dispatch,
        )
        .expect("worker");

    let total: u32 = expected.values().map(|(_, max)| max).sum();
    let mut attempts: HashMap<String, Vec<u32>> = HashMap::new();
    for _ in 0..total {
        let job = rx.job(DEADLINE).await;
        let (payload, max) = expected
            .get(&job.id)
            .unwrap_or_else(|| panic!("unexpected job {job:?}"));
        assert_eq!(&job.payload, payload, "{job:?}");
        let per_job = (*max != 3).then_some(*max);
        assert_eq!(
            job.max_attempts, per_job,
            "the override travels with each retry"
        );
        attempts
            .entry(job.id.clone())
            .or_default()
            .push(job.attempt);
        worker
            .complete_and_dispatch([(
                job.token,
                Outcome::failed(format!("{} failed attempt {}", job.id, job.attempt)),
            )])
            .expect("complete");
    }
    for (id, (_, max)) in &expected {
        assert_eq!(
            attempts.get(id).cloned().unwrap_or_default(),
            (1..=*max).collect::<Vec<_>>(),
            "{id}"
        );
    }

    let mut dead = HashMap::new();
    while dead.len() < expected.len() {
        let ((id, reason), _) = rx
            .event_where(DEADLINE, |e| match e {
                WorkerEvent::Dead { id, reason } => Some((id.clone(), reason.clone())),
                _ => None,
            })
            .await;
        assert!(dead.insert(id.clone(), reason).is_none(), "{id} dead twice");
    }
    rx.no_job_for(Duration::from_millis(300)).await;

    let records = dead_records(&mut conn, &keys.dead).await;
    assert_eq!(records.len(), expected.len(), "{records:?}");
    for record in &records {
        let (payload, max) = &expected[&record.id];
        let last_error = format!("{} failed attempt {max}", record.id);
        assert_eq!(
            (&record.d, record.a.as_str(), &record.err),
            (payload, max.to_string().as_str(), &last_error),
            "{record:?}"
        );
        assert_eq!(dead[&record.id], last_error);
    }
    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!(stats.dead, expected.len() as u64, "{stats:?}");
    assert!(!exists(&mut conn, &keys.active(worker.id())).await);
    let events = rx.drain_events();
    assert!(errors(&events).is_empty(), "{events:?}");
    close(worker).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, vec![keys.dead.clone()]);
}
