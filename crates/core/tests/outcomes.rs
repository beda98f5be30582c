//! Outcomes across processes: a job added with `keep_outcome_ms` records how it finished, and
//! another queue object (as another process would hold) waits for it or looks it up; jobs that
//! do not ask record nothing. `get_job` finds a job wherever it is.

mod common;

use std::time::Duration;

use common::*;
use holdfast_core::{JobOutcome, JobState, Mode, NewJob, Outcome, WorkerConfig, WorkerEvent};

const DEADLINE: Duration = Duration::from_secs(10);

fn kept(payload: &str, job_id: &str) -> NewJob {
    let mut job = NewJob::new(payload);
    job.job_id = Some(job_id.into());
    job.keep_outcome_ms = Some(60_000);
    job.max_attempts = Some(1);
    job
}

async fn waits_across_processes(mode: Mode) {
    let redis = TestRedis::spawn();
    let producer = queue_in(&redis.url(), "outcomes", mode);
    let other = same_queue(&producer);
    producer
        .add(vec![kept("ok", "a"), kept("bad", "b"), {
            let mut plain = NewJob::new("plain");
            plain.job_id = Some("c".into());
            plain
        }])
        .await
        .expect("add");

    // waiting before the jobs run, from another queue object
    let wait_a = tokio::spawn({
        let q = producer.clone();
        async move { q.wait_for("a", DEADLINE).await }
    });
    let wait_b = tokio::spawn({
        let q = producer.clone();
        async move { q.wait_for("b", DEADLINE).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (dispatch, mut rx) = channel_dispatch();
    let worker = other
        .worker(WorkerConfig::default(), dispatch.clone())
        .expect("worker");
    let jobs = rx.jobs(3, DEADLINE).await;
    for job in &jobs {
        assert_eq!(job.keep_outcome_ms.is_some(), job.id != "c", "{job:?}");
    }
    dispatch.complete(
        &worker,
        jobs.iter().map(|j| {
            let outcome = match j.id.as_str() {
                "a" => Outcome::Returned(r#"{"sent":true}"#.into()),
                "b" => Outcome::failed("mailbox full"),
                _ => Outcome::Returned("ignored".into()),
            };
            (j.token, outcome)
        }),
    );
    assert_eq!(
        wait_a.await.unwrap().expect("wait a"),
        Some(JobOutcome::Completed(r#"{"sent":true}"#.into()))
    );
    assert_eq!(
        wait_b.await.unwrap().expect("wait b"),
        Some(JobOutcome::Dead("mailbox full".into()))
    );
    wait_drained(&producer, DEADLINE).await;

    // after the fact: from the key, at once
    assert_eq!(
        other.wait_for("a", DEADLINE).await.expect("late wait"),
        Some(JobOutcome::Completed(r#"{"sent":true}"#.into()))
    );
    // a job that did not ask records nothing: the wait times out, and no key was written
    let started = std::time::Instant::now();
    assert_eq!(
        other
            .wait_for("c", Duration::from_millis(300))
            .await
            .unwrap(),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let mut conn = redis_conn(&redis.url()).await;
    let cfg = producer.config();
    let mut outcome_keys = keys_matching(
        &mut conn,
        &format!("{}:{{{}}}:outcome:*", cfg.prefix, cfg.name),
    )
    .await;
    outcome_keys.sort();
    assert_eq!(
        outcome_keys,
        [
            format!("{}:{{{}}}:outcome:a", cfg.prefix, cfg.name),
            format!("{}:{{{}}}:outcome:b", cfg.prefix, cfg.name)
        ]
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&outcome_keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 50_000 && ttl <= 60_000,
        "kept for keep_outcome_ms: {ttl}"
    );

    let a = other.get_job("a").await.expect("get a");
    assert_eq!(a.state, JobState::Completed);
    let b = other.get_job("b").await.expect("get b");
    assert_eq!(
        (b.state, b.outcome),
        (
            JobState::Dead,
            Some(JobOutcome::Dead("mailbox full".into()))
        )
    );
    close(worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_waits_for_outcomes_across_processes() {
    waits_across_processes(Mode::Stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_waits_for_outcomes_across_processes() {
    waits_across_processes(Mode::List).await;
}

async fn finds_jobs(mode: Mode) {
    let redis = TestRedis::spawn();
    let queue = queue_in(&redis.url(), "get-job", mode);
    let with_id = |payload: &str, id: &str| {
        let mut job = NewJob::new(payload);
        job.job_id = Some(id.into());
        job.max_attempts = Some(1);
        job
    };
    let mut later = with_id("later", "later");
    later.run_at_ms = Some(now_ms() + 600_000);
    queue
        .add(vec![
            with_id("first", "first"),
            with_id("second", "second"),
            later,
        ])
        .await
        .expect("add");
    // plenty of others around them, so the scans page
    let filler: Vec<NewJob> = (0..2500).map(|i| NewJob::new(format!("f{i}"))).collect();
    queue.add(filler).await.expect("add");
    queue.add(vec![with_id("last", "last")]).await.expect("add");

    let w = queue.get_job("last").await.expect("get");
    assert_eq!(w.state, JobState::Waiting, "{w:?}");
    assert_eq!(w.job.expect("job").payload.text(), "last");
    let d = queue.get_job("later").await.expect("get");
    assert_eq!(d.state, JobState::Delayed);
    assert!(d.due_ms.unwrap() > now_ms());
    assert_eq!(
        queue.get_job("never-added").await.unwrap().state,
        JobState::Unknown
    );

    // take the two oldest: active; fail one: dead (no outcome kept: found in the dead letters)
    let (dispatch, mut rx) = channel_dispatch();
    let cfg = WorkerConfig {
        concurrency: 2,
        ..Default::default()
    };
    let worker = queue.worker(cfg, dispatch.clone()).expect("worker");
    let got = rx.jobs(2, DEADLINE).await;
    assert_eq!(ids_of(&got), ["first", "second"].map(String::from).into());
    let a = queue.get_job("first").await.expect("get");
    assert_eq!(a.state, JobState::Active, "{a:?}");
    let first = got.iter().find(|j| j.id == "first").unwrap();
    let second = got.iter().find(|j| j.id == "second").unwrap();
    worker
        .complete_and_dispatch([(first.token, Outcome::failed("nope"))])
        .expect("complete");
    rx.event_where(DEADLINE, |e| {
        matches!(e, WorkerEvent::Dead { .. }).then_some(())
    })
    .await;
    let dead = queue.get_job("first").await.expect("get");
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.dead.expect("dead letter").error, "nope");
    // completed without keeping its outcome: nothing says where it went
    worker
        .complete_and_dispatch([(second.token, Outcome::Completed)])
        .expect("complete");
    eventually(DEADLINE, "second gone", || async {
        match queue.get_job("second").await {
            Ok(s) if s.state == JobState::Unknown => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    worker.close_within(Some(Duration::ZERO)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_get_job_finds_waiting_active_delayed_and_dead_jobs() {
    finds_jobs(Mode::Stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_get_job_finds_waiting_active_delayed_and_dead_jobs() {
    finds_jobs(Mode::List).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_hears_an_outcome_written_while_redis_restarted() {
    let mut redis = TestRedis::spawn();
    let queue = queue(&redis.url(), "outcome-restart");
    let other = same_queue(&queue);
    queue.add(vec![kept("x", "r1")]).await.expect("add");
    let waiting = tokio::spawn({
        let q = queue.clone();
        async move { q.wait_for("r1", Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.restart(); // the job is lost with it (no persistence): add it again after
    other.add(vec![kept("x", "r1")]).await.expect("add again");
    let (dispatch, mut rx) = channel_dispatch();
    let worker = other
        .worker(WorkerConfig::default(), dispatch.clone())
        .expect("worker");
    let job = rx.job(DEADLINE).await;
    dispatch.complete(&worker, [(job.token, Outcome::Returned("42".into()))]);
    assert_eq!(
        waiting.await.unwrap().expect("wait"),
        Some(JobOutcome::Completed("42".into()))
    );
    close(worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_of_a_large_batch_hears_its_own_outcome() {
    let redis = TestRedis::spawn();
    let queue = queue(&redis.url(), "outcome-batch");
    let other = same_queue(&queue);
    let n = 250;
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| kept(&format!("{i}"), &format!("j{i}")))
        .collect();
    queue.add(jobs).await.expect("add");
    let waits: Vec<_> = (0..n)
        .map(|i| {
            let q = other.clone();
            tokio::spawn(async move { q.wait_for(&format!("j{i}"), DEADLINE).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (dispatch, mut rx) = channel_dispatch();
    let cfg = WorkerConfig {
        concurrency: n,
        ..Default::default()
    };
    let worker = queue.worker(cfg, dispatch).expect("worker");
    let got = rx.jobs(n, DEADLINE).await;
    // one completion call: its outcomes go out together, 100 ids per stream entry
    worker
        .complete_and_dispatch(
            got.iter()
                .map(|j| (j.token, Outcome::Returned(j.payload.clone()))),
        )
        .expect("complete");
    for (i, w) in waits.into_iter().enumerate() {
        assert_eq!(
            w.await.unwrap().expect("wait"),
            Some(JobOutcome::Completed(format!("{i}").into())),
            "j{i}"
        );
    }
    close(worker).await;
}
