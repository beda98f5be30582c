//! Recovery: a worker that dies holding jobs loses none of them. Once their leases expire another
//! worker recovers them, reports them as stalled and runs each exactly once more: in stream mode
//! by XAUTOCLAIM of the pending entries, in list mode by returning the dead worker's processing
//! list to `wait` once its heartbeat deadline passed (two reapers may race for it).
//!
//! Tests of the public API run once per mode (`for mode in MODES`); tests that look at one
//! mode's keys run in that mode only and are named `stream_mode_*` / `list_mode_*`.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{Job, NewJob, PrefetchPolicy, Worker, WorkerConfig, WorkerEvent};

const DEADLINE: Duration = Duration::from_secs(10);
const JOBS: usize = 12;

// stream mode only: the entry id stays the receipt, the XAUTOCLAIM lease, trimming
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_jobs_of_a_crashed_worker_run_again_elsewhere() {
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
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let redis = TestRedis::shared_or_spawn();
        let queue = queue_in(&redis.url(), "recovery-small", mode);
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
}

// list mode only: processing lists, and the envelope counts the recovery
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_jobs_of_a_crashed_worker_run_again_elsewhere() {
    const JOBS: usize = 8;
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-crash", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let vt = Duration::from_millis(500);

    let payloads: Vec<String> = (0..JOBS).map(|i| format!("{{\"n\":{i}}}")).collect();
    let ids = queue
        .add(payloads.iter().map(NewJob::new).collect())
        .await
        .expect("add");

    let (dispatch_a, mut rx_a) = channel_dispatch();
    let worker_a = queue.worker(worker_cfg(vt), dispatch_a).expect("worker a");
    let held = rx_a.jobs(JOBS, DEADLINE).await;
    assert_eq!(ids_of(&held), ids.iter().cloned().collect());
    let a_id = worker_a.id().to_owned();
    assert_eq!(llen(&mut conn, &keys.active(&a_id)).await, JOBS as u64);

    // Worker B, another process, idle on the empty wait list.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let worker_b = queue_b
        .worker(worker_cfg(vt), dispatch_b)
        .expect("worker b");
    eventually(DEADLINE, "worker b registered", || {
        let mut conn = conn.clone();
        let (workers, b) = (keys.workers.clone(), worker_b.id().to_owned());
        async move {
            match zscore(&mut conn, &workers, &b).await {
                Some(_) => Ok(()),
                None => Err("no heartbeat yet".into()),
            }
        }
    })
    .await;
    rx_b.no_job_for(Duration::from_millis(100)).await;

    // A "crashes": dropping a Worker aborts its tasks, so no ack and no heartbeat any more.
    let crashed_at = Instant::now();
    drop(worker_a);
    let recovered = rx_b.jobs(JOBS, DEADLINE).await;
    let took = crashed_at.elapsed();
    eprintln!("list mode: a crashed worker's jobs ran again {took:?} after the crash (visibility timeout {vt:?})");
    assert!(took < vt * 10, "recovery took {took:?}");

    assert_eq!(
        each_once("recovered", recovered.iter().map(|j| &j.id)),
        ids.iter().cloned().collect()
    );
    for job in &recovered {
        let before = held.iter().find(|h| h.id == job.id).expect("held");
        assert_eq!(
            (&job.payload, job.attempt, job.max_attempts),
            (&before.payload, 1, None),
            "a crash is not a failed attempt: {job:?}"
        );
        // The same element, with one recovery counted.
        assert_eq!(
            job.receipt,
            envelope(&job.id, 1, 1, None, job.payload.as_str())
        );
    }
    rx_b.no_job_for(Duration::from_millis(300)).await;

    let (mut stalled, mut rest) = rx_b
        .event_where(DEADLINE, |e| match e {
            WorkerEvent::Stalled { ids } => Some(ids.clone()),
            _ => None,
        })
        .await;
    rest.extend(rx_b.drain_events());
    stalled.extend(stalled_ids(&rest));
    assert_eq!(
        each_once("Stalled events", &stalled),
        ids.iter().cloned().collect()
    );
    assert!(errors(&rest).is_empty(), "{rest:?}");
    assert_eq!(zscore(&mut conn, &keys.workers, &a_id).await, None);
    assert!(!exists(&mut conn, &keys.active(&a_id)).await);

    complete_all(&worker_b, &recovered);
    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!((stats.dead, stats.workers), (0, 1), "{stats:?}");
    close(worker_b).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}

// ------------------------------------------------------------------------------------------
// List mode: two reapers racing
// ------------------------------------------------------------------------------------------

/// Receives jobs from two workers until `expected` arrived in total, completing each at once on
/// the worker that got it; then listens `linger` longer, so duplicates show up too.
async fn collect_from_two(
    (a, rx_a): (&Worker, &mut Received),
    (b, rx_b): (&Worker, &mut Received),
    expected: usize,
    linger: Duration,
) -> Vec<Job> {
    let mut got = Vec::new();
    let mut until = tokio::time::Instant::now() + DEADLINE;
    let mut lingering = false;
    loop {
        if !lingering && got.len() >= expected {
            lingering = true;
            until = tokio::time::Instant::now() + linger;
        }
        tokio::select! {
            Some(job) = rx_a.jobs.recv() => {
                complete_all(a, std::slice::from_ref(&job));
                got.push(job);
            }
            Some(job) = rx_b.jobs.recv() => {
                complete_all(b, std::slice::from_ref(&job));
                got.push(job);
            }
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    assert!(
        got.len() >= expected,
        "only {} of {expected} jobs arrived within {DEADLINE:?}: {got:?}",
        got.len()
    );
    got
}

/// What a planted job must look like when it runs again: (payload, attempt, max attempts).
type Expected = HashMap<String, (String, u32, Option<u32>)>;

/// Plants `workers` dead workers on `queue`, each holding envelopes written by holdfast itself
/// (through a queue whose wait list is a scratch key), a hand-built envelope of a second attempt
/// that was recovered once already, and raw elements.
async fn plant_dead_workers(
    url: &str,
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &holdfast_core::Queue,
    round: usize,
    workers: usize,
) -> (Vec<String>, Expected) {
    let keys = &keys_of(queue);
    let scratch_key = format!("scratch:{}", queue.config().name);
    let scratch = list_queue(url, "scratch", Some(&scratch_key));
    let mut expected = Expected::new();
    let mut fakes = Vec::new();
    for w in 0..workers {
        let jobs: Vec<NewJob> = (0..2)
            .map(|i| NewJob {
                job_id: (i == 1).then(|| format!("r{round}-w{w}-j{i}")),
                max_attempts: (i == 1).then_some(4),
                ..NewJob::new(format!("{{\"round\":{round},\"w\":{w},\"j\":{i}}}"))
            })
            .collect();
        let ids = scratch.add(jobs.clone()).await.expect("scratch add");
        let mut elements = lrange(conn, &scratch_key).await;
        elements.reverse(); // oldest first
        let _: i64 = redis::cmd("DEL")
            .arg(&scratch_key)
            .query_async(conn)
            .await
            .expect("DEL");
        assert_eq!(elements.len(), 2);
        for ((id, job), el) in ids.iter().zip(&jobs).zip(&elements) {
            assert_eq!(
                el,
                &envelope(id, 1, 0, job.max_attempts, job.payload.as_str()),
                "the hand-built envelope matches holdfast's own"
            );
            expected.insert(id.clone(), (job.payload.text(), 1, job.max_attempts));
        }

        let retry_id = format!("r{round}-w{w}-retry");
        let retry_payload = format!("{{\"retry\":\"{round}|{w}\"}}");
        elements.push(envelope(&retry_id, 2, 1, Some(3), &retry_payload));
        expected.insert(retry_id, (retry_payload, 2, Some(3)));

        for raw in [
            format!("{{\"raw\":\"r{round}-w{w}\"}}"),
            format!("raw text r{round} w{w}"),
        ] {
            expected.insert(raw_id(conn, &raw).await, (raw.clone(), 1, None));
            elements.push(raw);
        }

        let fake = format!("deadhost:{round}:{w:012x}");
        plant_dead_worker(conn, keys, &fake, &elements).await;
        fakes.push(fake);
    }
    (fakes, expected)
}

// list mode only: dead workers planted as processing lists
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_mode_racing_reapers_requeue_each_dead_workers_jobs_exactly_once() {
    const ROUNDS: usize = 10;
    const DEAD_WORKERS: usize = 6;
    let redis = TestRedis::spawn();
    let url = redis.url();
    let mut conn = redis_conn(&url).await;
    let cfg = worker_cfg(Duration::from_millis(500));
    let mut split_rounds = 0;

    for round in 0..ROUNDS {
        let queue = list_queue(&url, &format!("race{round}"), None);
        let keys = keys_of(&queue);
        let (fakes, expected) =
            plant_dead_workers(&url, &mut conn, &queue, round, DEAD_WORKERS).await;
        assert_eq!(expected.len(), DEAD_WORKERS * 5);

        // Two processes start together: both run their recovery step at once.
        let (qa, qb) = (same_queue(&queue), same_queue(&queue));
        let (da, mut rx_a) = channel_dispatch();
        let (db, mut rx_b) = channel_dispatch();
        let wa = qa.worker(cfg.clone(), da).expect("worker a");
        let wb = qb.worker(cfg.clone(), db).expect("worker b");

        let got = collect_from_two(
            (&wa, &mut rx_a),
            (&wb, &mut rx_b),
            expected.len(),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(
            each_once(
                &format!("round {round}: deliveries"),
                got.iter().map(|j| &j.id)
            ),
            expected.keys().cloned().collect::<HashSet<_>>(),
            "round {round}"
        );
        for job in &got {
            let (payload, attempt, max) = &expected[&job.id];
            assert_eq!(
                (&job.payload.text(), job.attempt, job.max_attempts),
                (payload, *attempt, *max),
                "round {round}: {job:?}"
            );
        }

        // Stalled is emitted right after the reaping script returns, possibly just after the
        // other worker already fetched the jobs: wait for all of them.
        let (mut events_a, mut events_b) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + DEADLINE;
        loop {
            events_a.extend(rx_a.drain_events());
            events_b.extend(rx_b.drain_events());
            let n = stalled_ids(&events_a).len() + stalled_ids(&events_b).len();
            if n >= expected.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let (stalled_a, stalled_b) = (stalled_ids(&events_a), stalled_ids(&events_b));
        if !stalled_a.is_empty() && !stalled_b.is_empty() {
            split_rounds += 1;
        }
        assert_eq!(
            each_once(
                &format!("round {round}: Stalled events"),
                stalled_a.iter().chain(&stalled_b)
            ),
            expected.keys().cloned().collect::<HashSet<_>>(),
            "round {round}: {events_a:?} {events_b:?}"
        );
        for events in [&events_a, &events_b] {
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, WorkerEvent::Error(_) | WorkerEvent::Dead { .. })),
                "round {round}: {events:?}"
            );
        }

        // The dead workers are forgotten and their processing lists are gone.
        for fake in &fakes {
            assert_eq!(zscore(&mut conn, &keys.workers, fake).await, None, "{fake}");
            assert!(!exists(&mut conn, &keys.active(fake)).await, "{fake}");
        }
        let stats = wait_drained(&queue, DEADLINE).await;
        assert_eq!((stats.dead, stats.workers), (0, 2), "{stats:?}");
        close(wa).await;
        close(wb).await;
        assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
    }
    eprintln!("racing reapers: both workers reaped something in {split_rounds} of {ROUNDS} rounds");
}

/// An element that starts like an envelope but is not a valid one (here: an id length longer
/// than the rest) is raw data both to list.rs `decode` and to the reaper's Lua, so recovery
/// keeps its data and id.
// list mode only: an envelope lookalike on a processing list
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_reaper_keeps_malformed_envelope_lookalikes_as_raw_data() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-lookalike", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let element = "\x1fhf1|1|0||99|short";
    let id = raw_id(&mut conn, element).await;

    // Fetched directly, it is raw data.
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(worker_cfg(Duration::from_millis(500)), dispatch)
        .expect("worker");
    let _: i64 = redis::cmd("LPUSH")
        .arg(&keys.wait)
        .arg(element)
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    let job = rx.job(DEADLINE).await;
    assert_eq!(
        (job.id.as_str(), job.payload.as_str()),
        (id.as_str(), element)
    );
    complete_all(&worker, &[job]);

    // Recovered from a dead worker, it must still be the same raw data.
    plant_dead_worker(
        &mut conn,
        &keys,
        "deadhost:1:lookalike",
        &[element.to_owned()],
    )
    .await;
    let job = rx.job(DEADLINE).await;
    assert_eq!(
        (job.id.as_str(), job.payload.as_str(), job.attempt),
        (id.as_str(), element, 1),
        "{job:?}"
    );
    complete_all(&worker, &[job]);
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
}
