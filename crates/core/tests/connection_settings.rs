//! The URL's settings reach every connection, the fetch loop's own (`resp.rs`) included: a
//! password, an ACL user, a database number, and a unix socket. A setting lost on the fetch
//! connection would show as a worker that never receives the job.

mod common;

use std::time::Duration;

use common::*;
use holdfast_core::{Mode, NewJob, Queue, QueueConfig, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

async fn round_trip(url: String, mode: Mode) {
    let mut cfg = QueueConfig::new(unique_name("settings"));
    cfg.url = url.clone();
    cfg.mode = mode;
    let queue = Queue::new(cfg).expect("queue");
    queue
        .add(vec![NewJob::new("{\"n\":1}")])
        .await
        .expect("add");
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(WorkerConfig::default(), dispatch)
        .expect("worker");
    let job = rx.job(DEADLINE).await;
    assert_eq!(job.payload, "{\"n\":1}", "{url} {mode:?}");
    complete_all(&worker, &[job]);
    wait_drained(&queue, DEADLINE).await;
    close(worker).await;
    assert!(
        errors(&rx.drain_events()).is_empty(),
        "{url} {mode:?}: no errors"
    );
}

async fn config_set(url: &str, args: &[&str]) {
    let mut conn = redis_conn(url).await;
    let _: () = redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut conn)
        .await
        .expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_acl_user_and_database_number() {
    let redis = TestRedis::spawn();
    let port = redis.port();
    config_set(
        &redis.url(),
        &[
            "ACL", "SETUSER", "worker", "on", ">pw2", "~*", "&*", "+@all",
        ],
    )
    .await;
    config_set(&redis.url(), &["CONFIG", "SET", "requirepass", "s3cret"]).await;
    for mode in [Mode::Stream, Mode::List] {
        round_trip(format!("redis://:s3cret@127.0.0.1:{port}/5"), mode).await;
        round_trip(format!("redis://worker:pw2@127.0.0.1:{port}/0"), mode).await;
    }
    // the jobs went to database 5 and 0 only: nothing of ours in 3
    let mut db3 = redis_conn(&format!("redis://:s3cret@127.0.0.1:{port}/3")).await;
    assert!(keys_matching(&mut db3, "*").await.is_empty());
    let mut db5 = redis_conn(&format!("redis://:s3cret@127.0.0.1:{port}/5")).await;
    assert!(!keys_matching(&mut db5, "*").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket() {
    let redis = TestRedis::spawn();
    let url = format!("redis+unix://{}?db=2", redis.unix_socket().display());
    for mode in [Mode::Stream, Mode::List] {
        round_trip(url.clone(), mode).await;
    }
}
