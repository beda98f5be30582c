//! Prefetch: the worker reads ahead of its free handler slots; prefetched jobs are handed out by
//! `complete` (no round trip), never more than `concurrency` run at once, each exactly once, and
//! they are held like the running ones (pending entries in stream mode, the worker's processing
//! list in list mode), so a crash loses none and `close` returns them to the queue.
//!
//! Every test runs once per mode (`for mode in MODES`). Deadlines are hang guards, not timing
//! assertions.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use holdfast_core::{NewJob, Outcome, PrefetchPolicy, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetched_jobs_come_back_from_complete_never_more_than_concurrency_at_once() {
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "prefetch", mode);
        let total = 40;
        queue
            .add((0..total).map(|i| NewJob::new(format!("{i}"))).collect())
            .await
            .expect("add");
        let (dispatch, mut rx) = channel_dispatch();
        let cfg = WorkerConfig {
            concurrency: 3,
            prefetch: PrefetchPolicy::Fixed(5),
            visibility_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let worker = queue.worker(cfg, dispatch).expect("worker");

        let mut running = rx.jobs(3, DEADLINE).await;
        rx.no_job_for(Duration::from_millis(300)).await;
        // 3 running + 5 read ahead, all delivered to this worker in Redis terms
        let stats = eventually(DEADLINE, "prefetch to fill", || async {
            let s = queue.stats().await.expect("stats");
            if s.active == 8 {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        })
        .await;
        assert_eq!(stats.waiting, total - 8);

        let mut seen: HashSet<String> = running.iter().map(|j| j.payload.text()).collect();
        let mut done = 0;
        while done < total as usize {
            // finish one at a time: each completion hands back at most one job (one slot freed)
            let job = running.remove(0);
            let next = worker
                .complete([(job.token, Outcome::Completed)])
                .expect("complete");
            done += 1;
            assert!(next.len() <= 1, "one slot freed, {} handed out", next.len());
            for j in next {
                assert!(
                    seen.insert(j.payload.text()),
                    "job {} handed out twice",
                    j.payload.as_str()
                );
                running.push(j);
            }
            // when nothing was prefetched yet, the job comes through dispatch instead
            if running.is_empty() && done < total as usize {
                let j = rx.job(DEADLINE).await;
                assert!(
                    seen.insert(j.payload.text()),
                    "job {} handed out twice",
                    j.payload.as_str()
                );
                running.push(j);
            }
            assert!(
                running.len() <= 3,
                "more than concurrency running: {}",
                running.len()
            );
        }
        assert_eq!(seen.len(), total as usize);
        let stats = wait_drained(&queue, DEADLINE).await;
        assert_eq!(stats.active, 0);
        close(worker).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetched_jobs_of_a_crashed_worker_are_recovered() {
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "prefetch-crash", mode);
        queue
            .add((0..6).map(|i| NewJob::new(format!("{i}"))).collect())
            .await
            .expect("add");
        let cfg = WorkerConfig {
            concurrency: 2,
            prefetch: PrefetchPolicy::Fixed(4),
            visibility_timeout: Duration::from_millis(400),
            ..Default::default()
        };
        let (dispatch, mut rx) = channel_dispatch();
        let a = queue.worker(cfg.clone(), dispatch).expect("worker a");
        rx.jobs(2, DEADLINE).await;
        eventually(DEADLINE, "A holds all 6", || async {
            let s = queue.stats().await.expect("stats");
            (s.active == 6).then_some(()).ok_or(format!("{s:?}"))
        })
        .await;
        drop(a); // a crash: 2 running and 4 prefetched, none acked

        let (dispatch, mut rx) = channel_dispatch();
        let b = queue
            .worker(
                WorkerConfig {
                    prefetch: PrefetchPolicy::Fixed(0),
                    concurrency: 10,
                    ..cfg
                },
                dispatch,
            )
            .expect("worker b");
        let got = rx.jobs(6, DEADLINE).await;
        let payloads: HashSet<_> = got.iter().map(|j| j.payload.text()).collect();
        assert_eq!(
            payloads.len(),
            6,
            "every job, prefetched ones included, ran again once"
        );
        complete_all(&b, &got);
        wait_drained(&queue, DEADLINE).await;
        close(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_prefetched_jobs_to_the_queue_instead_of_running_them() {
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "prefetch-close", mode);
        queue
            .add((0..10).map(|i| NewJob::new(format!("{i}"))).collect())
            .await
            .expect("add");
        let (dispatch, mut rx) = channel_dispatch();
        let cfg = WorkerConfig {
            concurrency: 2,
            prefetch: PrefetchPolicy::Fixed(5),
            ..Default::default()
        };
        let worker = queue.worker(cfg, dispatch).expect("worker");
        let running = rx.jobs(2, DEADLINE).await;
        eventually(DEADLINE, "prefetch to fill", || async {
            let s = queue.stats().await.expect("stats");
            (s.active == 7).then_some(()).ok_or(format!("{s:?}"))
        })
        .await;
        let finish_running = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let next = worker
                .complete(running.iter().map(|j| (j.token, Outcome::Completed)))
                .expect("complete");
            assert!(
                next.is_empty(),
                "a closing worker hands out no prefetched job"
            );
        };
        let (closed, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(15), worker.close()),
            finish_running
        );
        closed.expect("close finished").expect("close");
        rx.no_job_for(Duration::from_millis(200)).await;
        let s = queue.stats().await.expect("stats");
        assert_eq!(
            (s.waiting, s.active),
            (8, 0),
            "the 5 prefetched are waiting again: {s:?}"
        );
    }
}

/// Adaptive prefetch (`prefetch_max` above `prefetch`): while handlers finish fast, reads go
/// beyond `concurrency + prefetch`; once the queue has run dry, the next burst is taken at the
/// floor again, so a worker that was busy with fast jobs does not hoard what comes after a lull.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_prefetch_grows_for_fast_handlers_and_starts_low_after_a_lull() {
    for mode in MODES {
        eprintln!("{mode:?} mode");
        let redis = TestRedis::spawn();
        let queue = queue_in(&redis.url(), "prefetch-adaptive", mode);
        let (concurrency, floor) = (10, 10);
        let cfg = WorkerConfig {
            concurrency,
            prefetch: PrefetchPolicy::Between(floor, 300),
            ..Default::default()
        };
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue.worker(cfg, dispatch).expect("worker");

        let total = 6000;
        queue
            .add((0..total).map(|i| NewJob::new(format!("{i}"))).collect())
            .await
            .expect("add");
        let mut seen = HashSet::new();
        let mut most_held = 0;
        let mut running: Vec<holdfast_core::Job> = Vec::new();
        while seen.len() < total {
            if running.is_empty() {
                running.push(rx.job(DEADLINE).await);
            }
            while let Ok(j) = rx.jobs.try_recv() {
                running.push(j);
            }
            for j in &running {
                assert!(
                    seen.insert(j.payload.text()),
                    "job {} twice",
                    j.payload.as_str()
                );
            }
            most_held = most_held.max(worker.in_flight());
            let done: Vec<_> = running
                .drain(..)
                .map(|j| (j.token, Outcome::Completed))
                .collect();
            running = worker.complete(done).expect("complete");
        }
        assert!(
            most_held > concurrency + floor,
            "prefetch grew while handlers were fast: at most {most_held} held"
        );
        wait_drained(&queue, DEADLINE).await;

        // A lull, then a burst nobody finishes: the worker takes only concurrency + floor.
        tokio::time::sleep(Duration::from_millis(300)).await;
        queue
            .add(
                (0..500)
                    .map(|i| NewJob::new(format!("later-{i}")))
                    .collect(),
            )
            .await
            .expect("add");
        let first = rx.jobs(concurrency, DEADLINE).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held = worker.in_flight();
        assert!(
            held <= concurrency + floor,
            "after a lull the worker holds {held}, more than concurrency + prefetch"
        );
        let s = queue.stats().await.expect("stats");
        assert_eq!(s.waiting, 500 - held as u64, "{s:?}");

        // finish the burst, so close has nothing left to wait for
        let (mut finished, mut running) = (0, first);
        while finished < 500 {
            if running.is_empty() {
                running.push(rx.job(DEADLINE).await);
            }
            while let Ok(j) = rx.jobs.try_recv() {
                running.push(j);
            }
            finished += running.len();
            let done: Vec<_> = running
                .drain(..)
                .map(|j| (j.token, Outcome::Completed))
                .collect();
            running = worker.complete(done).expect("complete");
        }
        wait_drained(&queue, DEADLINE).await;
        close(worker).await;
    }
}
