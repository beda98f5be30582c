//! List mode (`Mode::List`): producers LPUSH to `wait`, each worker moves jobs into its own
//! processing list `active:<worker id>`, acks are LREMs, and a worker whose heartbeat deadline
//! passed has its whole processing list returned to `wait` by whichever worker reaps it first.
//!
//! Covered here: add/fetch/ack (holdfast's own envelopes and raw elements from a plain LPUSH
//! producer on a `listKey`), two reapers racing for the same dead workers, poison elements,
//! a crashed worker's jobs running elsewhere, reconciliation of a lost fetch reply after a
//! reconnect, the failure path to the dead list, and graceful close. Every test has its own
//! redis-server; deadlines are hang guards, not timing assertions.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{
    Job, NewJob, Outcome, PrefetchPolicy, Stats, Worker, WorkerConfig, WorkerEvent,
};

/// Hang guard for anything that should happen "soon".
const DEADLINE: Duration = Duration::from_secs(10);

fn cfg(visibility_timeout: Duration) -> WorkerConfig {
    WorkerConfig {
        visibility_timeout,
        block: Duration::from_millis(200),
        ..Default::default()
    }
}

fn ids_of(jobs: &[Job]) -> HashSet<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

/// Fails the test if some id occurs more than once; returns the ids as a set.
fn each_once<'a>(what: &str, ids: impl IntoIterator<Item = &'a String>) -> HashSet<String> {
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "{what}: repeated ids {repeated:?}");
    counts.into_keys().cloned().collect()
}

// ------------------------------------------------------------------------------------------
// 1. add / fetch / ack
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_fetch_ack_delivers_each_job_once_and_leaves_no_key() {
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
        let fresh = expected.insert(id.clone(), (job.payload.clone(), job.max_attempts));
        assert!(fresh.is_none(), "id {id} returned twice");
    }
    assert_eq!(llen(&mut conn, &keys.wait).await, expected.len() as u64);

    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(cfg(Duration::from_secs(5)), dispatch)
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
        expected.insert(id, (job.payload.clone(), None));
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
            (&job.payload, job.attempt, job.max_attempts),
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
    assert_eq!(queue.stats().await.expect("stats"), Stats::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_key_consumes_elements_of_a_plain_lpush_producer() {
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
        .worker(cfg(Duration::from_secs(5)), dispatch)
        .expect("worker");
    let got = rx.jobs(2, DEADLINE).await;
    // Oldest first, each element exactly as pushed.
    assert_eq!(
        got.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>(),
        ["{\"a\":1}", "plain text"]
    );
    for job in &got {
        assert_eq!(job.id, raw_id(&mut conn, &job.payload).await, "{job:?}");
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
    let mut all = vec![active.clone(), keys.workers.clone()];
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
    // only the jobId's dedup marker stays, for the dedup window
    let mut left = keys_matching(&mut conn, "*").await;
    left.retain(|k| !k.contains(":dedup:"));
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(queue.stats().await.expect("stats"), Stats::default());
}

// ------------------------------------------------------------------------------------------
// 2. two reapers racing
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
                &envelope(id, 1, 0, job.max_attempts, &job.payload),
                "the hand-built envelope matches holdfast's own"
            );
            expected.insert(id.clone(), (job.payload.clone(), 1, job.max_attempts));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_reapers_requeue_each_dead_workers_jobs_exactly_once() {
    const ROUNDS: usize = 10;
    const DEAD_WORKERS: usize = 6;
    let redis = TestRedis::spawn();
    let url = redis.url();
    let mut conn = redis_conn(&url).await;
    let cfg = cfg(Duration::from_millis(500));
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
                (&job.payload, job.attempt, job.max_attempts),
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

// ------------------------------------------------------------------------------------------
// 3. poison
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_element_of_a_dead_worker_goes_to_the_dead_list() {
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
                ..cfg(Duration::from_millis(500))
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

// ------------------------------------------------------------------------------------------
// 4. a crashed worker
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_crashed_worker_run_again_elsewhere() {
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
    let worker_a = queue.worker(cfg(vt), dispatch_a).expect("worker a");
    let held = rx_a.jobs(JOBS, DEADLINE).await;
    assert_eq!(ids_of(&held), ids.iter().cloned().collect());
    let a_id = worker_a.id().to_owned();
    assert_eq!(llen(&mut conn, &keys.active(&a_id)).await, JOBS as u64);

    // Worker B, another process, idle on the empty wait list.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let worker_b = queue_b.worker(cfg(vt), dispatch_b).expect("worker b");
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
        assert_eq!(job.receipt, envelope(&job.id, 1, 1, None, &job.payload));
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
// 5. reconciliation after a reconnect
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_of_a_lost_fetch_reply_runs_once_after_a_reconnect() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-reclaim", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(
            WorkerConfig {
                block: Duration::from_millis(500),
                ..cfg(Duration::from_secs(3))
            },
            dispatch,
        )
        .expect("worker");
    let active = keys.active(worker.id());

    // Jobs the worker legitimately holds across the cut.
    let held_ids = queue
        .add(
            (0..3)
                .map(|i| NewJob::new(format!("{{\"held\":{i}}}")))
                .collect(),
        )
        .await
        .expect("add");
    let held = rx.jobs(3, DEADLINE).await;
    assert_eq!(ids_of(&held), held_ids.iter().cloned().collect());

    // A job moved into the processing list whose reply never reached the worker.
    let orphan = envelope("orphan-1", 1, 0, None, "{\"orphan\":true}");
    let _: i64 = redis::cmd("LPUSH")
        .arg(&active)
        .arg(&orphan)
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    assert_eq!(llen(&mut conn, &active).await, 4);

    // Every connection of the worker and of the queue is cut; the test's own survives.
    let killed = kill_other_clients(&mut conn).await;
    assert!(killed >= 2, "killed {killed} connections");

    let job = rx.job(DEADLINE).await;
    assert_eq!(
        (job.id.as_str(), job.payload.as_str(), job.attempt),
        ("orphan-1", "{\"orphan\":true}", 1),
        "{job:?}"
    );
    // Nothing else: the jobs held across the cut are not orphans, and the orphan runs once.
    rx.no_job_for(Duration::from_millis(1500)).await;
    let events = rx.drain_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Error(err) if err.is_connection())),
        "the worker noticed the cut: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Stalled { .. } | WorkerEvent::Dead { .. })),
        "{events:?}"
    );
    let mut listed = lrange(&mut conn, &active).await;
    listed.sort();
    let mut want: Vec<String> = held.iter().map(|j| j.receipt.clone()).collect();
    want.push(orphan.clone());
    want.sort();
    assert_eq!(listed, want, "the held jobs stay in the processing list");
    assert_eq!(llen(&mut conn, &keys.wait).await, 0);

    // The held jobs (and the orphan) complete normally: their LREMs find them.
    complete_all(&worker, &held);
    complete_all(&worker, std::slice::from_ref(&job));
    eventually(DEADLINE, "the processing list is empty", || {
        let mut conn = conn.clone();
        let active = active.clone();
        async move {
            match llen(&mut conn, &active).await {
                0 => Ok(()),
                n => Err(format!("LLEN {n}")),
            }
        }
    })
    .await;

    // And it still fetches new jobs (added through a fresh handle: the queue's own connection
    // was cut too).
    let producer = same_queue(&queue);
    let more = producer
        .add(vec![NewJob::new("{\"after\":1}")])
        .await
        .expect("add after the cut");
    let after = rx.job(DEADLINE).await;
    assert_eq!(after.id, more[0]);
    complete_all(&worker, &[after]);
    let stats = wait_drained(&queue, DEADLINE).await;
    assert_eq!(stats.dead, 0, "{stats:?}");
    close(worker).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}

// ------------------------------------------------------------------------------------------
// 6. failures
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_are_retried_up_to_max_attempts_then_dead() {
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
        expected.insert(job.job_id.clone().unwrap(), (job.payload.clone(), max));
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
                ..cfg(Duration::from_secs(5))
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
            .complete([(
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

// ------------------------------------------------------------------------------------------
// 7. graceful close
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_jobs_then_removes_heartbeat_and_processing_list() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-close", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(cfg(Duration::from_millis(300)), dispatch)
        .expect("worker");
    let id = worker.id().to_owned();
    let active = keys.active(&id);

    queue
        .add(vec![NewJob::new("1"), NewJob::new("2")])
        .await
        .expect("add");
    let held = rx.jobs(2, DEADLINE).await;

    let done = {
        let closing = worker.close();
        tokio::pin!(closing);
        // Held for several visibility timeouts while closing: the heartbeat keeps the jobs.
        let early = tokio::time::timeout(Duration::from_millis(1000), &mut closing).await;
        assert!(
            early.is_err(),
            "close returned with jobs in flight: {early:?}"
        );
        let late = queue.add(vec![NewJob::new("late")]).await.expect("add");
        assert_eq!(late.len(), 1);
        let deadline = zscore(&mut conn, &keys.workers, &id)
            .await
            .expect("heartbeat while closing");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        assert!(
            deadline > now,
            "the heartbeat deadline {deadline} passed ({now})"
        );
        assert_eq!(llen(&mut conn, &active).await, 2);
        complete_all(&worker, &held);
        tokio::time::timeout(DEADLINE, closing)
            .await
            .expect("close hung")
    };
    done.expect("close");
    // The late job was not fetched by the closing worker.
    rx.no_job_for(Duration::from_millis(200)).await;

    assert_eq!(zscore(&mut conn, &keys.workers, &id).await, None);
    assert!(!exists(&mut conn, &active).await);
    assert_eq!(
        queue.stats().await.expect("stats"),
        Stats {
            waiting: 1,
            ..Stats::default()
        }
    );
    assert_eq!(queue_keys(&mut conn, &queue).await, vec![keys.wait.clone()]);
    let events = rx.drain_events();
    assert!(events.is_empty(), "{events:?}");
    assert!(matches!(
        worker.complete([(0, Outcome::Completed)]),
        Err(holdfast_core::Error::Closed)
    ));

    // An idle worker closes at once too, and leaves nothing behind.
    let (dispatch, mut rx) = channel_dispatch();
    let idle = queue
        .worker(cfg(Duration::from_millis(300)), dispatch)
        .expect("worker");
    let late = rx.job(DEADLINE).await;
    assert_eq!(late.payload, "late");
    complete_all(&idle, &[late]);
    wait_drained(&queue, DEADLINE).await;
    close(idle).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}

/// `leave` keeps the heartbeat while the processing list is not empty (acks that could not be
/// written on close; here: an element the worker never held), so a reaper returns what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_keeps_the_heartbeat_while_the_processing_list_is_not_empty() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-close-left", None);
    let keys = keys_of(&queue);
    let mut conn = redis_conn(&url).await;
    let vt = Duration::from_millis(500);
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue.worker(cfg(vt), dispatch).expect("worker");
    let id = worker.id().to_owned();
    let active = keys.active(&id);
    eventually(DEADLINE, "worker registered", || {
        let mut conn = conn.clone();
        let (workers, id) = (keys.workers.clone(), id.clone());
        async move {
            match zscore(&mut conn, &workers, &id).await {
                Some(_) => Ok(()),
                None => Err("no heartbeat yet".into()),
            }
        }
    })
    .await;
    let left = envelope("left-behind", 1, 0, None, "{\"left\":true}");
    let _: i64 = redis::cmd("LPUSH")
        .arg(&active)
        .arg(&left)
        .query_async(&mut conn)
        .await
        .expect("LPUSH");
    close(worker).await;
    rx.no_job_for(Duration::from_millis(100)).await;
    assert!(zscore(&mut conn, &keys.workers, &id).await.is_some());
    assert_eq!(lrange(&mut conn, &active).await, [left]);

    // Once its deadline passes, another worker returns the element and runs it.
    let queue_b = same_queue(&queue);
    let (dispatch_b, mut rx_b) = channel_dispatch();
    let worker_b = queue_b.worker(cfg(vt), dispatch_b).expect("worker b");
    let job = rx_b.job(DEADLINE).await;
    assert_eq!((job.id.as_str(), job.attempt), ("left-behind", 1));
    complete_all(&worker_b, std::slice::from_ref(&job));
    rx_b.no_job_for(Duration::from_millis(300)).await;
    wait_drained(&queue, DEADLINE).await;
    let events = rx_b.drain_events();
    assert_eq!(stalled_ids(&events), ["left-behind"], "{events:?}");
    assert_eq!(zscore(&mut conn, &keys.workers, &id).await, None);
    close(worker_b).await;
    assert_eq!(queue_keys(&mut conn, &queue).await, Vec::<String>::new());
}

// ------------------------------------------------------------------------------------------
// Elements other producers may push
// ------------------------------------------------------------------------------------------

/// An element that starts like an envelope but is not a valid one (here: an id length longer
/// than the rest) is raw data both to list.rs `decode` and to the reaper's Lua, so recovery
/// keeps its data and id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_keeps_malformed_envelope_lookalikes_as_raw_data() {
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
        .worker(cfg(Duration::from_millis(500)), dispatch)
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

/// One element that is not UTF-8 — binary data from another producer on a `listKey` — must not
/// wedge the worker (it goes to `dead`); the jobs behind it run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_utf8_element_does_not_wedge_the_worker() {
    let redis = TestRedis::spawn();
    let url = redis.url();
    let queue = list_queue(&url, "list-binary", Some("jobs:binary"));
    let mut conn = redis_conn(&url).await;
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(cfg(Duration::from_millis(500)), dispatch)
        .expect("worker");
    let _: i64 = redis::cmd("LPUSH")
        .arg("jobs:binary")
        .arg(&b"\xff\xfe\x00binary"[..])
        .arg("{\"after\":\"binary\"}")
        .query_async(&mut conn)
        .await
        .expect("LPUSH");

    // Whatever happens to the binary element (delivered lossily, or dead-lettered), the job
    // behind it must run.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let job = tokio::time::timeout_at(deadline, rx.jobs.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the job behind a binary element never ran; events: {:?}",
                    rx.drain_events()
                )
            })
            .expect("job channel open");
        let done = job.payload == "{\"after\":\"binary\"}";
        complete_all(&worker, &[job]);
        if done {
            break;
        }
    }
    close(worker).await;
}

// ------------------------------------------------------------------------------------------
// Batch fetch
// ------------------------------------------------------------------------------------------

/// `list_fetch.lua` moves a batch with one LRANGE/LTRIM/LPUSH; the result must be what N x
/// LMOVE RIGHT LEFT gives: the N oldest, delivered oldest first, the processing list newest
/// first, the rest left waiting in order. 2500 crosses the script's 1000-element LPUSH chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fetch_takes_the_oldest_in_order() {
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
                ..cfg(Duration::from_secs(30))
            },
            dispatch,
        )
        .expect("worker");
    let first = rx.jobs(batch, DEADLINE).await;
    let payloads: Vec<String> = first.iter().map(|j| j.payload.clone()).collect();
    let want: Vec<String> = (0..batch).map(|i| i.to_string()).collect();
    assert_eq!(payloads, want, "the oldest, oldest first");

    let active: Vec<String> = queue_keys(&mut conn, &queue)
        .await
        .into_iter()
        .filter(|k| k.contains(":active:"))
        .collect();
    assert_eq!(active.len(), 1, "{active:?}");
    let held: Vec<String> = lrange(&mut conn, &active[0]).await;
    let receipts: Vec<String> = first.iter().rev().map(|j| j.receipt.clone()).collect();
    assert_eq!(
        held, receipts,
        "processing list: newest first, as LMOVE RIGHT LEFT leaves it"
    );
    let waiting = lrange(&mut conn, &keys_of(&queue).wait).await;
    assert_eq!(waiting.len(), total - batch);

    complete_all(&worker, &first);
    let rest = rx.jobs(total - batch, DEADLINE).await;
    let payloads: Vec<String> = rest.iter().map(|j| j.payload.clone()).collect();
    let want: Vec<String> = (batch..total).map(|i| i.to_string()).collect();
    assert_eq!(payloads, want);
    complete_all(&worker, &rest);
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
}
