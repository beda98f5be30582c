//! Add, fetch and ack: jobs added one by one and in bulk reach a worker exactly once with their
//! payload, id and attempt 1, and once completed they are acknowledged and leave nothing behind;
//! the errors `add` and `stats` report before or instead of writing anything; large payloads;
//! and, in list mode, elements pushed by other producers (a plain LPUSH producer on a `listKey`,
//! non-UTF-8 data) and the order of a batch fetch.
//!
//! Tests of the public API run once per mode (`for mode in MODES`); tests that look at one
//! mode's keys (stream entries, trimming; processing lists, envelopes) run in that mode only and
//! are named `stream_mode_*` / `list_mode_*`. Deadlines are hang guards, not timing assertions.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use holdfast_core::{
    Error, NewJob, PrefetchPolicy, Queue, QueueConfig, Stats, WorkerConfig, WorkerEvent,
};

const DEADLINE: Duration = Duration::from_secs(10);

fn job(payload: &str, job_id: Option<&str>, max_attempts: Option<u32>) -> NewJob {
    NewJob {
        payload: payload.to_owned().into(),
        job_id: job_id.map(str::to_owned),
        max_attempts,
        ..Default::default()
    }
}

fn is_entry_id(id: &str) -> bool {
    let mut parts = id.split('-');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

// stream mode only: entry ids, XLEN, trimming and the consumer group
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_each_job_is_delivered_once_then_acked_and_trimmed() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "add-fetch-ack");
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&redis.url()).await;

    // What each job should look like when it arrives: id -> (payload, max_attempts).
    let mut expected: HashMap<String, (String, Option<u32>)> = HashMap::new();

    // Single adds before any worker exists (the group must start from the first entry).
    for i in 0..5u32 {
        let (job_id, max) = match i {
            0 => (Some("single-with-id".to_owned()), None),
            1 => (None, Some(7)),
            2 => (Some("single-with-id-and-max".to_owned()), Some(2)),
            _ => (None, None),
        };
        let payload = format!("{{\"single\":{i}}}");
        let ids = queue
            .add(vec![job(&payload, job_id.as_deref(), max)])
            .await
            .expect("single add");
        assert_eq!(ids.len(), 1);
        match &job_id {
            Some(given) => assert_eq!(&ids[0], given, "add returns the jobId when one is given"),
            None => assert!(
                is_entry_id(&ids[0]),
                "add returns the entry id, got {:?}",
                ids[0]
            ),
        }
        expected.insert(ids[0].clone(), (payload, max));
    }

    // One bulk add before the worker starts.
    let bulk: Vec<NewJob> = (0..20u32)
        .map(|i| {
            let job_id = (i % 4 == 0).then(|| format!("bulk-{i}"));
            let max = (i % 3 == 0).then_some(i + 1);
            job(&format!("{{\"bulk\":{i}}}"), job_id.as_deref(), max)
        })
        .collect();
    let ids = queue.add(bulk.clone()).await.expect("bulk add");
    assert_eq!(ids.len(), bulk.len());
    for (id, j) in ids.iter().zip(&bulk) {
        match &j.job_id {
            Some(given) => assert_eq!(id, given),
            None => assert!(is_entry_id(id), "bulk add returns entry ids, got {id:?}"),
        }
        assert!(
            expected
                .insert(id.clone(), (j.payload.text(), j.max_attempts))
                .is_none(),
            "duplicate id {id}"
        );
    }
    assert_eq!(xlen(&mut conn, &keys.stream).await, 25);
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.waiting, stats.active, stats.dead),
        (25, 0, 0),
        "{stats:?}"
    );

    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(WorkerConfig::default(), dispatch)
        .expect("worker");
    let mut got = rx.jobs(25, DEADLINE).await;

    // More adds while the worker is blocked in XREADGROUP.
    for i in 0..3u32 {
        let payload = format!("{{\"late\":{i}}}");
        let id = queue
            .add(vec![job(&payload, None, None)])
            .await
            .expect("late add")
            .remove(0);
        expected.insert(id, (payload, None));
    }
    let late_bulk: Vec<NewJob> = (0..7u32)
        .map(|i| job(&format!("{{\"late-bulk\":{i}}}"), None, Some(3)))
        .collect();
    for (id, j) in queue
        .add(late_bulk.clone())
        .await
        .expect("late bulk add")
        .into_iter()
        .zip(&late_bulk)
    {
        expected.insert(id, (j.payload.text(), j.max_attempts));
    }
    got.extend(rx.jobs(10, DEADLINE).await);
    rx.no_job_for(Duration::from_millis(300)).await;

    assert_eq!(got.len(), expected.len());
    let mut seen = HashMap::new();
    for j in &got {
        assert!(
            seen.insert(j.id.clone(), j.receipt.clone()).is_none(),
            "job {} delivered twice",
            j.id
        );
        let (payload, max) = expected
            .get(&j.id)
            .unwrap_or_else(|| panic!("unknown job id {:?}", j.id));
        assert_eq!(&j.payload, payload, "payload of {}", j.id);
        assert_eq!(j.max_attempts, *max, "max_attempts of {}", j.id);
        assert_eq!(j.attempt, 1, "attempt of {}", j.id);
        if is_entry_id(&j.id) {
            assert_eq!(j.id, j.receipt, "without a jobId the id is the entry id");
        }
    }
    assert_eq!(worker.in_flight(), expected.len());
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.waiting, stats.active),
        (0, expected.len() as u64),
        "{stats:?}"
    );
    assert_eq!(stats.workers, 1, "{stats:?}");

    // Complete in two batches, the second with a repeated (ignored) token.
    let (first, second) = got.split_at(17);
    complete_all(&worker, first);
    complete_all(&worker, second);
    complete_all(&worker, first);
    assert_eq!(worker.in_flight(), 0);

    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!((stats.delayed, stats.dead), (0, 0), "{stats:?}");
    wait_trimmed(&mut conn, &keys.stream, Duration::from_secs(3)).await;
    rx.no_job_for(Duration::from_millis(200)).await;

    let events = rx.drain_events();
    assert!(
        errors(&events).is_empty(),
        "a healthy run reports no errors: {events:?}"
    );

    close(worker).await;
    let stats = queue.stats().await.expect("stats");
    assert_eq!(stats.workers, 0, "close removes the heartbeat: {stats:?}");
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&keys.stream)
        .arg("workers")
        .query_async(&mut conn)
        .await
        .expect("XINFO CONSUMERS");
    assert!(
        consumers.is_empty(),
        "close deletes its idle consumer: {consumers:?}"
    );
}

// stream mode only: reads the stream (XLEN, XRANGE)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_payload_over_limit_is_rejected_and_nothing_is_added() {
    let redis = TestRedis::shared_or_spawn();
    let mut cfg = QueueConfig::new(unique_name("payload-limit"));
    cfg.url = redis.url();
    cfg.max_payload_bytes = 64;
    let queue = Queue::new(cfg).expect("queue");
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&redis.url()).await;

    let at_limit = "x".repeat(64);
    let over = "x".repeat(65);
    queue
        .add(vec![NewJob::new(at_limit.clone())])
        .await
        .expect("a payload at the limit is accepted");

    let err = queue
        .add(vec![NewJob::new(over.clone())])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::PayloadTooLarge {
            size: 65,
            limit: 64
        }
    );
    assert_eq!(err.code(), "ERR_HOLDFAST_PAYLOAD_TOO_LARGE");

    // One oversized job fails the whole bulk; none of it is written.
    let bulk = vec![NewJob::new("ok-1"), NewJob::new(over), NewJob::new("ok-2")];
    let err = queue.add(bulk).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PayloadTooLarge {
                size: 65,
                limit: 64
            }
        ),
        "{err:?}"
    );

    assert_eq!(
        xlen(&mut conn, &keys.stream).await,
        1,
        "only the job at the limit was added"
    );
    let entries = xrange(&mut conn, &keys.stream).await;
    assert_eq!(entries[0].1.get("d"), Some(&at_limit));
    assert_eq!(queue.stats().await.expect("stats").waiting, 1);
}

// stream mode only: the foreign value sits on the stream key
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_foreign_key_of_wrong_type_is_reported_not_overwritten() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "wrong-type");
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&redis.url()).await;
    let _: () = redis::cmd("SET")
        .arg(&keys.stream)
        .arg("someone else's")
        .query_async(&mut conn)
        .await
        .expect("SET");

    let err = queue.add(vec![NewJob::new("{}")]).await.unwrap_err();
    assert_eq!(
        err,
        Error::WrongType {
            key: keys.stream.clone()
        },
        "single add"
    );
    assert_eq!(err.code(), "ERR_HOLDFAST_WRONG_TYPE");

    let err = queue
        .add(vec![NewJob::new("{}"), NewJob::new("{}")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::WrongType {
            key: keys.stream.clone()
        },
        "bulk add"
    );

    match queue.stats().await {
        Err(Error::WrongType { key }) => assert!(key.contains(&keys.stream), "{key}"),
        other => panic!("stats on a foreign key: expected WrongType, got {other:?}"),
    }

    // A worker on that queue reports the problem as an event and keeps trying; close still works.
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(WorkerConfig::default(), dispatch)
        .expect("worker");
    let (err, _) = rx
        .event_where(DEADLINE, |e| match e {
            WorkerEvent::Error(err) => Some(err.clone()),
            _ => None,
        })
        .await;
    assert!(matches!(err, Error::WrongType { .. }), "{err:?}");
    close(worker).await;

    let value: String = redis::cmd("GET")
        .arg(&keys.stream)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, "someone else's", "the foreign value is left alone");
}

// stream mode only: checks with XLEN that a rejected batch wrote nothing
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_invalid_names_and_arguments_are_rejected() {
    let redis = TestRedis::shared_or_spawn();
    let config = |name: &str| {
        let mut cfg = QueueConfig::new(name);
        cfg.url = redis.url();
        cfg
    };
    let invalid = |cfg: QueueConfig, what: &str| match Queue::new(cfg) {
        Err(e @ Error::InvalidArgument(_)) => assert_eq!(e.code(), "ERR_HOLDFAST_INVALID_ARGUMENT"),
        Err(e) => panic!("{what}: expected InvalidArgument, got {e:?}"),
        Ok(_) => panic!("{what}: accepted"),
    };

    invalid(config(""), "empty name");
    invalid(config(&"a".repeat(201)), "name over 200 bytes");
    invalid(config("a{b"), "name with '{'");
    invalid(config("a}b"), "name with '}'");
    invalid(config("a\nb"), "name with a control character");
    invalid(config("a\0b"), "name with NUL");
    let mut cfg = config("ok");
    cfg.prefix = String::new();
    invalid(cfg, "empty prefix");
    let mut cfg = config("ok");
    cfg.prefix = "pre{fix}".into();
    invalid(cfg, "prefix with braces");
    let mut cfg = config("ok");
    cfg.max_payload_bytes = 0;
    invalid(cfg, "maxPayloadBytes 0");
    let mut cfg = config("ok");
    cfg.url = "http://127.0.0.1:1/".into();
    invalid(cfg, "non-redis url");
    let mut cfg = config("ok");
    cfg.url = "redis://user:hunter2@[bad".into();
    match Queue::new(cfg) {
        Err(Error::InvalidArgument(msg)) => {
            assert!(!msg.contains("hunter2"), "password leaked: {msg}")
        }
        other => panic!(
            "malformed url: expected InvalidArgument, got {:?}",
            other.map(|_| ())
        ),
    }

    // The longest legal name, and names with other punctuation, are fine.
    let longest = format!("{}{}", unique_name("max"), "a".repeat(200))
        .chars()
        .take(200)
        .collect::<String>();
    Queue::new(config(&longest)).expect("a 200-byte name is accepted");
    Queue::new(config(&unique_name("with:colons.dots-and spaces"))).expect("punctuation is fine");

    // Per-job arguments are checked before anything is sent.
    let queue = queue(&redis.url(), "invalid-args");
    let keys = keys_of(&queue);
    for (bad, what) in [
        (
            NewJob {
                job_id: Some(String::new()),
                ..NewJob::new("{}")
            },
            "empty jobId",
        ),
        (
            NewJob {
                job_id: Some("j".repeat(257)),
                ..NewJob::new("{}")
            },
            "jobId over 256 bytes",
        ),
        (
            NewJob {
                max_attempts: Some(0),
                ..NewJob::new("{}")
            },
            "maxAttempts 0",
        ),
    ] {
        match queue.add(vec![NewJob::new("{}"), bad]).await {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
    }
    let mut conn = redis_conn(&redis.url()).await;
    assert_eq!(
        xlen(&mut conn, &keys.stream).await,
        0,
        "a rejected batch writes nothing"
    );
    assert_eq!(
        queue.add(Vec::new()).await.expect("empty add"),
        Vec::<String>::new()
    );

    // Worker options.
    for (cfg, what) in [
        (
            WorkerConfig {
                concurrency: 0,
                ..Default::default()
            },
            "concurrency 0",
        ),
        (
            WorkerConfig {
                visibility_timeout: Duration::from_millis(50),
                ..Default::default()
            },
            "visibility 50 ms",
        ),
        (
            WorkerConfig {
                max_attempts: 0,
                ..Default::default()
            },
            "maxAttempts 0",
        ),
        (
            WorkerConfig {
                max_deliveries: 0,
                ..Default::default()
            },
            "maxDeliveries 0",
        ),
    ] {
        let (dispatch, _rx) = channel_dispatch();
        match queue.worker(cfg, dispatch) {
            Err(Error::InvalidArgument(_)) => {}
            Err(e) => panic!("{what}: expected InvalidArgument, got {e:?}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }

    // A closed queue refuses everything.
    queue.close();
    assert_eq!(
        queue.add(vec![NewJob::new("{}")]).await.unwrap_err(),
        Error::Closed
    );
    assert_eq!(queue.stats().await.unwrap_err(), Error::Closed);
    let (dispatch, _rx) = channel_dispatch();
    assert!(matches!(
        queue.worker(WorkerConfig::default(), dispatch),
        Err(Error::Closed)
    ));
}

// both modes; only stream mode trims, so only it waits for the trim
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_jobs_in_flight_and_stats_follow() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let queue = queue_in(&redis.url(), "concurrency", mode);
        let mut conn = redis_conn(&redis.url()).await;
        let payloads: Vec<String> = (0..10).map(|i| format!("{{\"n\":{i}}}")).collect();
        let ids = queue
            .add(payloads.iter().map(NewJob::new).collect())
            .await
            .expect("add");

        let (dispatch, mut rx) = channel_dispatch();
        let cfg = WorkerConfig {
            concurrency: 3,
            block: Duration::from_millis(200),
            // no read-ahead: this test counts what the worker holds
            prefetch: PrefetchPolicy::Fixed(0),
            ..Default::default()
        };
        let worker = queue.worker(cfg, dispatch).expect("worker");

        let mut order = Vec::new();
        let mut left = ids.len();
        while left > 0 {
            let batch = rx.jobs(left.min(3), DEADLINE).await;
            // Never more than `concurrency` at once.
            rx.no_job_for(Duration::from_millis(150)).await;
            assert_eq!(worker.in_flight(), batch.len());
            left -= batch.len();
            let stats = queue.stats().await.expect("stats");
            assert_eq!(
                (stats.waiting, stats.active),
                (left as u64, batch.len() as u64),
                "{stats:?}"
            );
            order.extend(batch.iter().map(|j| j.id.clone()));
            complete_all(&worker, &batch);
        }
        assert_eq!(order, ids, "delivered in stream order");
        wait_drained(&queue, DEADLINE).await;
        wait_trimmed_in_stream_mode(&mut conn, &queue, Duration::from_secs(3)).await;
        let events = rx.drain_events();
        assert!(errors(&events).is_empty(), "{events:?}");
        close(worker).await;
    }
}

/// Replies far larger than the fetch connection's 16 KiB buffer (`resp.rs` grows it from the
/// bulk headers) and payloads holding CRLF and multi-byte UTF-8 arrive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_arrive_intact() {
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let redis = TestRedis::shared_or_spawn();
        let queue = queue_in(&redis.url(), "large", mode);
        let payloads: Vec<String> = (0..24)
            .map(|i| {
                let unit = format!("{i}:\r\n*1\r\n$5\r\nü€😀|");
                unit.repeat(500 * 1024 / unit.len() / (1 + i % 3))
            })
            .collect();
        assert!(payloads[0].len() > 400 * 1024);
        queue
            .add(payloads.iter().map(|p| NewJob::new(p.clone())).collect())
            .await
            .expect("add");
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(
                WorkerConfig {
                    concurrency: 24,
                    ..Default::default()
                },
                dispatch,
            )
            .expect("worker");
        let got = rx.jobs(payloads.len(), DEADLINE).await;
        let mut got_payloads: Vec<String> = got.iter().map(|j| j.payload.text()).collect();
        let mut want = payloads.clone();
        got_payloads.sort();
        want.sort();
        assert!(got_payloads == want, "payloads changed on the way");
        complete_all(&worker, &got);
        wait_drained(&queue, DEADLINE).await;
        close(worker).await;
        assert!(errors(&rx.drain_events()).is_empty());
    }
}

// ------------------------------------------------------------------------------------------
// List mode: holdfast's envelopes and other producers' elements
// ------------------------------------------------------------------------------------------

// list mode only: envelopes as receipts, processing lists
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_each_job_is_delivered_once_then_acked_and_leaves_no_key() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-basic", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    // id -> (payload, per-job max attempts)
    let mut expected: HashMap<String, (String, Option<u32>)> = HashMap::new();

    // A single add with a generated id.
    let id = queue
        .add(vec![NewJob::new("{\"n\":0}")])
        .await
        .expect("single add")
        .remove(0);
    assert!(!id.is_empty());
    expected.insert(id, ("{\"n\":0}".into(), None));

    // A bulk add: jobIds (one with the envelope's separator and non-ASCII in it), per-job
    // maxAttempts, payloads with the separator, one that looks like an envelope, an empty one.
    let mut bulk = vec![
        NewJob {
            job_id: Some("job-a".into()),
            ..NewJob::new("{\"n\":1}")
        },
        NewJob {
            job_id: Some("job|b|é".into()),
            max_attempts: Some(7),
            ..NewJob::new("{\"s\":\"x|y\"}")
        },
        NewJob {
            max_attempts: Some(1),
            ..NewJob::new("\x1fhf1|9|9||3|abc")
        },
        NewJob::new(""),
    ];
    bulk.extend((0..20).map(|i| NewJob::new(format!("{{\"bulk\":{i}}}"))));
    let ids = queue.add(bulk.clone()).await.expect("bulk add");
    assert_eq!(ids.len(), bulk.len());
    assert_eq!((ids[0].as_str(), ids[1].as_str()), ("job-a", "job|b|é"));
    for (id, job) in ids.iter().zip(&bulk) {
        let fresh = expected.insert(id.clone(), (job.payload.text(), job.max_attempts));
        assert!(fresh.is_none(), "id {id} returned twice");
    }
    assert_eq!(llen(&mut conn, &keys.wait).await, expected.len() as u64);

    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(worker_cfg(Duration::from_secs(5)), dispatch)
        .expect("worker");
    let mut got = rx.jobs(expected.len(), DEADLINE).await;

    // While the worker waits in BLMOVE: one more single add and one more bulk add.
    let late = queue
        .add(vec![NewJob {
            job_id: Some("late-1".into()),
            ..NewJob::new("{\"late\":1}")
        }])
        .await
        .expect("late add");
    expected.insert(late[0].clone(), ("{\"late\":1}".into(), None));
    got.extend(rx.jobs(1, DEADLINE).await);
    let late_bulk: Vec<NewJob> = (2..5)
        .map(|i| NewJob::new(format!("{{\"late\":{i}}}")))
        .collect();
    for (id, job) in queue
        .add(late_bulk.clone())
        .await
        .expect("late bulk add")
        .into_iter()
        .zip(&late_bulk)
    {
        expected.insert(id, (job.payload.text(), None));
    }
    got.extend(rx.jobs(3, DEADLINE).await);
    rx.no_job_for(Duration::from_millis(300)).await;

    // Every job exactly once, as added, on its first attempt.
    assert_eq!(
        each_once("deliveries", got.iter().map(|j| &j.id)),
        expected.keys().cloned().collect::<HashSet<_>>()
    );
    for job in &got {
        let (payload, max) = &expected[&job.id];
        assert_eq!(
            (&job.payload.text(), job.attempt, job.max_attempts),
            (payload, 1, *max),
            "{job:?}"
        );
        assert_eq!(job.receipt, envelope(&job.id, 1, 0, *max, payload));
    }

    // Held: all in this worker's processing list, none waiting.
    let n = expected.len() as u64;
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        stats,
        Stats {
            waiting: 0,
            active: n,
            delayed: 0,
            dead: 0,
            workers: 1,
            paused: false,
            oldest_waiting_ms: None,
            completed: 0,
            failed: 0,
            groups: Vec::new(),
        }
    );
    assert_eq!(llen(&mut conn, &keys.active(worker.id())).await, n);

    complete_all(&worker, &got);
    wait_drained(&queue, DEADLINE).await;
    assert!(!exists(&mut conn, &keys.active(worker.id())).await);
    rx.no_job_for(Duration::from_millis(200)).await;
    let events = rx.drain_events();
    assert!(events.is_empty(), "{events:?}");
    close(worker).await;

    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
    assert_eq!(
        queue.stats().await.expect("stats"),
        Stats {
            completed: n,
            ..Stats::default()
        },
        "nothing left but the totals"
    );
}

// list mode only: a plain list on `listKey`, processing lists
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_list_key_consumes_elements_of_a_plain_lpush_producer() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-key", Some("jobs:email"));
    let keys = keys_of(&queue);
    assert_eq!(keys.wait, "jobs:email");
    let name = queue.config().name.clone();
    let mut conn = redis_conn(&url).await;

    // Another client, unaware of holdfast.
    for raw in ["{\"a\":1}", "plain text"] {
        let _: i64 = redis::cmd("LPUSH")
            .arg("jobs:email")
            .arg(raw)
            .query_async(&mut conn)
            .await
            .expect("LPUSH");
    }

    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(worker_cfg(Duration::from_secs(5)), dispatch)
        .expect("worker");
    let got = rx.jobs(2, DEADLINE).await;
    // Oldest first, each element exactly as pushed.
    assert_eq!(
        got.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>(),
        ["{\"a\":1}", "plain text"]
    );
    for job in &got {
        assert_eq!(
            job.id,
            raw_id(&mut conn, job.payload.as_str()).await,
            "{job:?}"
        );
        assert!(job.id.starts_with("raw-") && job.id.len() == 20, "{job:?}");
        assert_eq!((job.attempt, job.max_attempts), (1, None), "{job:?}");
        assert_eq!(
            job.receipt, job.payload,
            "the receipt is the element itself"
        );
    }

    // The processing list and the heartbeat live under holdfast's prefix, not under jobs:email.
    let active = keys.active(worker.id());
    let own = format!("holdfast:{{{name}}}:");
    assert!(active.starts_with(&format!("{own}active:")), "{active}");
    assert!(keys.workers.starts_with(&own), "{}", keys.workers);
    assert_eq!(
        lrange(&mut conn, &active).await,
        ["plain text", "{\"a\":1}"]
    );
    assert!(zscore(&mut conn, &keys.workers, worker.id())
        .await
        .is_some());
    assert_eq!(
        keys_matching(&mut conn, "jobs:email*").await,
        Vec::<String>::new()
    );
    // the scheduler lease too, which the only worker takes
    eventually(DEADLINE, "the worker holds the scheduler lease", || async {
        let holder: Option<String> = redis::cmd("GET")
            .arg(&keys.scheduler)
            .query_async(&mut redis_conn(&url).await)
            .await
            .map_err(|e| e.to_string())?;
        match holder.as_deref() == Some(worker.id()) {
            true => Ok(()),
            false => Err(format!("{holder:?}")),
        }
    })
    .await;
    let mut all = vec![
        active.clone(),
        keys.workers.clone(),
        keys.meta.clone(),
        keys.scheduler.clone(),
    ];
    all.sort();
    assert_eq!(keys_matching(&mut conn, "*").await, all);

    // While the worker waits: another raw element, and a holdfast job on the same list.
    let _: i64 = redis::cmd("LPUSH")
        .arg("jobs:email")
        .arg("{\"a\":2}")
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    let raw = rx.job(DEADLINE).await;
    assert_eq!(
        (raw.payload.as_str(), raw.attempt),
        ("{\"a\":2}", 1),
        "{raw:?}"
    );
    assert_eq!(raw.id, raw_id(&mut conn, "{\"a\":2}").await);
    queue
        .add(vec![NewJob {
            job_id: Some("mine".into()),
            ..NewJob::new("{\"a\":3}")
        }])
        .await
        .expect("add");
    let mine = rx.job(DEADLINE).await;
    assert_eq!(
        (mine.id.as_str(), mine.payload.as_str(), mine.attempt),
        ("mine", "{\"a\":3}", 1)
    );
    rx.no_job_for(Duration::from_millis(200)).await;

    complete_all(&worker, &got);
    complete_all(&worker, &[raw, mine]);
    wait_drained(&queue, DEADLINE).await;
    let events = rx.drain_events();
    assert!(events.is_empty(), "{events:?}");
    close(worker).await;
    // only the jobId's dedup marker stays, for the dedup window, and the totals
    let mut left = keys_matching(&mut conn, "*").await;
    left.retain(|k| !k.contains(":dedup:"));
    assert_eq!(left, vec![keys_of(&queue).meta]);
    assert_eq!(
        queue.stats().await.expect("stats"),
        Stats {
            completed: 4,
            ..Stats::default()
        }
    );
}

/// An element that is not UTF-8 — binary data from another producer on a `listKey` — arrives
/// byte for byte (unflagged: it was not added as bytes), and the job behind it runs too.
// list mode only: binary data LPUSHed on a `listKey`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_a_non_utf8_element_arrives_byte_for_byte() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-binary", Some("jobs:binary"));
    let mut conn = redis_conn(&url).await;
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(worker_cfg(Duration::from_millis(500)), dispatch)
        .expect("worker");
    let binary: &[u8] = b"\xff\xfe\x00binary";
    let _: i64 = redis::cmd("LPUSH")
        .arg("jobs:binary")
        .arg(binary)
        .arg("{\"after\":\"binary\"}")
        .query_async(&mut conn)
        .await
        .expect("LPUSH");

    let jobs = rx.jobs(2, DEADLINE).await;
    let got: Vec<_> = jobs.iter().map(|j| (&j.payload[..], j.binary)).collect();
    assert_eq!(
        got,
        [(binary, false), (&b"{\"after\":\"binary\"}"[..], false)]
    );
    complete_all(&worker, &jobs);
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
}

/// `list_fetch.lua` moves a batch with one LRANGE/LTRIM/LPUSH; the result must be what N x
/// LMOVE RIGHT LEFT gives: the N oldest, delivered oldest first, the processing list newest
/// first, the rest left waiting in order. 2500 crosses the script's 1000-element LPUSH chunks.
// list mode only: list_fetch.lua and the processing list
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_a_batch_fetch_takes_the_oldest_in_order() {
    let redis = TestRedis::spawn();
    let queue = list_queue(&redis.url(), "fetch-order", None);
    let mut conn = redis_conn(&redis.url()).await;
    let (total, batch) = (2600, 2500);
    queue
        .add((0..total).map(|i| NewJob::new(format!("{i}"))).collect())
        .await
        .expect("add");
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(
            WorkerConfig {
                concurrency: batch,
                prefetch: PrefetchPolicy::Fixed(0),
                ..worker_cfg(Duration::from_secs(30))
            },
            dispatch,
        )
        .expect("worker");
    let first = rx.jobs(batch, DEADLINE).await;
    let payloads: Vec<String> = first.iter().map(|j| j.payload.text()).collect();
    let want: Vec<String> = (0..batch).map(|i| i.to_string()).collect();
    assert_eq!(payloads, want, "the oldest, oldest first");

    let active: Vec<String> = queue_keys(&mut conn, &queue)
        .await
        .into_iter()
        .filter(|k| k.contains(":active:"))
        .collect();
    assert_eq!(active.len(), 1, "{active:?}");
    let held: Vec<String> = lrange(&mut conn, &active[0]).await;
    let receipts: Vec<String> = first.iter().rev().map(|j| j.receipt.text()).collect();
    assert_eq!(
        held, receipts,
        "processing list: newest first, as LMOVE RIGHT LEFT leaves it"
    );
    let waiting = lrange(&mut conn, &keys_of(&queue).wait).await;
    assert_eq!(waiting.len(), total - batch);

    complete_all(&worker, &first);
    let rest = rx.jobs(total - batch, DEADLINE).await;
    let payloads: Vec<String> = rest.iter().map(|j| j.payload.text()).collect();
    let want: Vec<String> = (batch..total).map(|i| i.to_string()).collect();
    assert_eq!(payloads, want);
    complete_all(&worker, &rest);
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
}
