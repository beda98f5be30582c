//! Pause: within a poll interval of `pause()`, a worker takes nothing new, even while its read
//! blocks for long (the read is woken, and a read sent just as the pause lands is woken too);
//! `resume()` starts it again. Rounds, because the bug this guards was a race.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use holdfast_core::{NewJob, Queue, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

async fn pause_rounds(queue: Arc<Queue>) {
    let (dispatch, mut rx) = channel_dispatch();
    let cfg = WorkerConfig {
        concurrency: 2,
        // a long BLOCK: without the wake-up a paused worker would sit in its read for this long
        block: Duration::from_secs(20),
        ..Default::default()
    };
    let worker = queue.worker(cfg, dispatch).expect("worker");
    for round in 0..4 {
        queue
            .add(vec![NewJob::new(format!("before-{round}"))])
            .await
            .expect("add");
        let job = rx.job(DEADLINE).await;
        complete_all(&worker, &[job]);

        queue.pause().await.expect("pause");
        // the worker polls the flag every 0.2 s
        tokio::time::sleep(Duration::from_millis(500)).await;
        queue
            .add(vec![NewJob::new(format!("paused-{round}"))])
            .await
            .expect("add");
        rx.no_job_for(Duration::from_millis(500)).await;
        let s = queue.stats().await.expect("stats");
        assert!(s.paused, "{s:?}");
        assert_eq!(
            (s.waiting, s.active),
            (1, 0),
            "round {round}: nothing fetched while paused"
        );

        queue.resume().await.expect("resume");
        let job = rx.job(DEADLINE).await;
        assert_eq!(job.payload, format!("paused-{round}"));
        complete_all(&worker, &[job]);
    }
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_pause_wakes_a_blocked_read_and_resume_restarts_it() {
    let redis = TestRedis::spawn();
    pause_rounds(queue(&redis.url(), "pause-stream")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_mode_pause_wakes_a_blocked_read_and_resume_restarts_it() {
    let redis = TestRedis::spawn();
    pause_rounds(list_queue(&redis.url(), "pause-list", None)).await;
}
