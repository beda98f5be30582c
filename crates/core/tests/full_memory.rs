//! A full Redis. At `maxmemory` with `noeviction`, Redis refuses every command that can grow
//! memory and lets through those that free it. The realistic way to get there: producers go on
//! adding while every worker is down. A worker started then must drain the queue (its first
//! steps, registering and creating the consumer group, are writes too); adds are refused with
//! `ERR_HOLDFAST_REDIS_FULL` meanwhile and work again once memory is freed.
//!
//! Each test runs once per mode, against servers of its own (it changes `maxmemory`).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use std::sync::Arc;

use holdfast_core::{Error, Job, NewJob, Outcome, PrefetchPolicy, Queue, WorkerConfig};

/// Room left for jobs above what the empty server uses.
const ROOM: u64 = 4 << 20;
const PAYLOAD_PAD: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_on_a_full_redis_drains_it() {
    for mode in MODES {
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "full", mode);
        let accepted = fill(&redis, &queue, |_| None).await;
        drain(&queue, &accepted).await;
    }
}

/// Redis full of jobs that are not due yet: the wait list (list mode) is empty, so the worker
/// waits in its blocking read, which a full Redis refuses (BLMOVE may grow memory). It must wait
/// without reporting errors, and run the jobs when they are due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waits_quietly_on_a_redis_full_of_delayed_jobs() {
    for mode in MODES {
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "full-delayed", mode);
        let due = now_ms() + 2_000;
        let accepted = fill(&redis, &queue, |_| Some(due)).await;
        drain(&queue, &accepted).await;
    }
}

/// Adds 1 KB jobs (due at `run_at(n)`) until Redis refuses them for want of memory, checking how
/// it refuses; returns the ids of those it accepted.
async fn fill(
    redis: &TestRedis,
    queue: &Queue,
    run_at: impl Fn(usize) -> Option<u64>,
) -> Vec<String> {
    let mode = queue.config().mode;
    let mut conn = redis_conn(&redis.url()).await;
    let used = used_memory(&mut conn).await;
    for (name, value) in [
        ("maxmemory-policy", "noeviction".to_string()),
        ("maxmemory", (used + ROOM).to_string()),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let pad = "x".repeat(PAYLOAD_PAD);
    let mut accepted: Vec<String> = Vec::new();
    // Batches of 100, then single jobs: a big request can be refused where a small one still
    // fits (its own query buffer counts towards maxmemory).
    let mut refused = Vec::new();
    for size in [100, 1] {
        let e = loop {
            let batch: Vec<NewJob> = (accepted.len()..accepted.len() + size)
                .map(|n| NewJob {
                    run_at_ms: run_at(n),
                    ..NewJob::new(format!("{{\"n\":{n},\"pad\":\"{pad}\"}}"))
                })
                .collect();
            match queue.add(batch).await {
                Ok(ids) => accepted.extend(ids),
                Err(e) => break e,
            }
            assert!(accepted.len() < 100_000, "{mode:?}: Redis never filled up");
        };
        refused.push(e);
    }
    for e in &refused {
        assert!(matches!(e, Error::RedisFull(_)), "{mode:?}: {e:?}");
        assert_eq!(e.code(), "ERR_HOLDFAST_REDIS_FULL");
        assert!(e.to_string().len() < 400, "{mode:?}: a long message: {e}");
    }
    assert!(accepted.len() > 500, "{mode:?}: only {}", accepted.len());
    // What an operator does to a full queue still works: look at it, purge its dead letters.
    let stats = queue.stats().await.expect("stats on a full Redis");
    assert_eq!(
        (stats.waiting + stats.delayed) as usize,
        accepted.len(),
        "{mode:?}: {stats:?}"
    );
    assert_eq!(
        queue
            .dead_purge()
            .await
            .expect("dead.purge on a full Redis"),
        0
    );
    accepted
}

/// Starts a worker and runs every accepted job to completion. Some fail once: their retries are
/// written while Redis is still full, a few after a backoff (through the delayed set and the
/// scheduler). Then adds work again.
async fn drain(queue: &Arc<Queue>, accepted: &[String]) {
    let mode = queue.config().mode;
    let (dispatch, mut rx) = channel_dispatch();
    let cfg = WorkerConfig {
        concurrency: 50,
        prefetch: PrefetchPolicy::Fixed(50),
        ..worker_cfg(Duration::from_secs(3))
    };
    let worker = queue.worker(cfg, dispatch).expect("worker");
    let index: HashMap<&str, usize> = accepted
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut completed: HashSet<String> = HashSet::new();
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let mut handed = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while completed.len() < accepted.len() {
        let next = match handed.pop() {
            Some(job) => Ok(Some(job)),
            None => tokio::time::timeout_at(deadline, rx.jobs.recv()).await,
        };
        events.extend(rx.drain_events());
        let job: Job = match next {
            Ok(Some(job)) => job,
            Ok(None) => panic!("{mode:?}: the job channel closed"),
            Err(_) => panic!(
                "{mode:?}: {} of {} jobs completed in 60 s on a full Redis; events: {:?}",
                completed.len(),
                accepted.len(),
                events.iter().take(5).collect::<Vec<_>>()
            ),
        };
        let n = *index
            .get(job.id.as_str())
            .unwrap_or_else(|| panic!("{mode:?}: unknown job {}", job.id));
        *attempts.entry(job.id.clone()).or_default() += 1;
        let outcome = match (job.attempt, n % 10, n % 50) {
            (1, _, 0) => Outcome::Failed {
                reason: "once, with a backoff".into(),
                retry_in: Duration::from_millis(100),
            },
            (1, 0, _) => Outcome::failed("once"),
            _ => Outcome::Completed,
        };
        if matches!(outcome, Outcome::Completed) {
            assert!(
                completed.insert(job.id.clone()),
                "{mode:?}: job {} completed twice",
                job.id
            );
        }
        // Prefetched jobs come back from complete(), the others through the channel.
        handed.extend(worker.complete([(job.token, outcome)]).expect("complete"));
    }
    for (id, n) in &attempts {
        let i = index[id.as_str()];
        let expected = match i % 10 {
            0 => 2,
            _ => 1,
        };
        assert_eq!(*n, expected, "{mode:?}: job #{i} ran {n} times");
    }

    // Memory is freed as jobs finish: adds work again.
    eventually(Duration::from_secs(20), "an add accepted again", || {
        let queue = queue.clone();
        async move {
            match queue.add(vec![NewJob::new("{\"after\":true}")]).await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    let after = rx.job(Duration::from_secs(10)).await;
    assert_eq!(&after.payload[..], b"{\"after\":true}");
    complete_all(&worker, &[after]);
    close(worker).await;
    events.extend(rx.drain_events());
    let errors = errors(&events);
    assert!(errors.is_empty(), "{mode:?}: {errors:?}");
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}
