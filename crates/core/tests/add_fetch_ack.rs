//! The happy path: jobs added one by one and in bulk reach a worker exactly once with their
//! payload, id and attempt 1; once completed they are acknowledged and trimmed away. Plus the
//! errors `add` and `stats` report before or instead of writing anything.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use holdfast_core::{Error, NewJob, PrefetchPolicy, Queue, QueueConfig, WorkerConfig, WorkerEvent};

const DEADLINE: Duration = Duration::from_secs(10);

fn job(payload: &str, job_id: Option<&str>, max_attempts: Option<u32>) -> NewJob {
    NewJob {
        payload: payload.to_owned(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_is_delivered_once_then_acked_and_trimmed() {
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
                .insert(id.clone(), (j.payload.clone(), j.max_attempts))
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
        expected.insert(id, (j.payload.clone(), j.max_attempts));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_limit_is_rejected_and_nothing_is_added() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_of_wrong_type_is_reported_not_overwritten() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_and_arguments_are_rejected() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_jobs_in_flight_and_stats_follow() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "concurrency");
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
    wait_trimmed(&mut conn, &keys_of(&queue).stream, Duration::from_secs(3)).await;
    let events = rx.drain_events();
    assert!(errors(&events).is_empty(), "{events:?}");
    close(worker).await;
}

/// Replies far larger than the fetch connection's 16 KiB buffer (`resp.rs` grows it from the
/// bulk headers) and payloads holding CRLF and multi-byte UTF-8 arrive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_arrive_intact() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue(&redis.url(), "large");
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
    let mut got_payloads: Vec<String> = got.iter().map(|j| j.payload.clone()).collect();
    let mut want = payloads.clone();
    got_payloads.sort();
    want.sort();
    assert!(got_payloads == want, "payloads changed on the way");
    complete_all(&worker, &got);
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
    assert!(errors(&rx.drain_events()).is_empty());
}
