//! The `durable` option: an add resolves once `WAIT` / `WAITAOF` confirms it, and fails with
//! `NotDurable` (saying the job may still be in Redis) when the confirmation does not come.
//! A real master and a real replica; the replica is frozen with SIGSTOP to withhold its ack.

mod common;

use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{Durable, Error, Mode, NewJob, Queue, QueueConfig};
use redis::aio::MultiplexedConnection;

const DEADLINE: Duration = Duration::from_secs(10);

/// A master and a replica of it, once the replica acks.
async fn master_and_replica() -> (TestRedis, TestRedis) {
    // no 5 s wait for more replicas before the first full sync
    let master = TestRedis::spawn_with(|_| vec!["--repl-diskless-sync-delay".into(), "0".into()]);
    let port = master.port().to_string();
    let replica = TestRedis::spawn_with(|_| vec!["--replicaof".into(), "127.0.0.1".into(), port]);
    wait_replicas_ack(&master.url(), 1).await;
    (master, replica)
}

fn durable_queue(url: &str, mode: Mode, durable: Durable) -> std::sync::Arc<Queue> {
    let mut cfg = QueueConfig::new(unique_name("durable"));
    cfg.url = url.to_owned();
    cfg.mode = mode;
    cfg.durable = Some(durable);
    Queue::new(cfg).expect("queue")
}

/// Jobs waiting in `queue`'s keys as the server at `conn` sees them.
async fn waiting_on(conn: &mut MultiplexedConnection, queue: &Queue) -> u64 {
    let keys = keys_of(queue);
    match queue.config().mode {
        Mode::Stream => xlen(conn, &keys.stream).await,
        Mode::List => redis::cmd("LLEN")
            .arg(&keys.wait)
            .query_async(conn)
            .await
            .expect("LLEN"),
    }
}

fn replicas(n: u32, timeout: Duration) -> Durable {
    Durable {
        replicas: n,
        fsync: false,
        timeout,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_resolves_once_the_replica_has_it() {
    let (master, replica) = master_and_replica().await;
    let mut on_replica = redis_conn(&replica.url()).await;
    for mode in MODES {
        let queue = durable_queue(&master.url(), mode, replicas(1, Duration::from_secs(5)));
        let mut expected = 0;
        for round in 0..5 {
            // plain adds, and adds with a jobId (a script), one at a time and in batches
            let jobs: Vec<NewJob> = (0..=round)
                .map(|i| {
                    let mut job = NewJob::new(format!("{{\"n\":{i}}}"));
                    if round % 2 == 1 {
                        job.job_id = Some(format!("job-{round}-{i}"));
                    }
                    job
                })
                .collect();
            expected += jobs.len() as u64;
            queue.add(jobs).await.expect("durable add");
            // no waiting: WAIT said the replica has every write of the add's connection
            assert_eq!(
                waiting_on(&mut on_replica, &queue).await,
                expected,
                "{mode:?}"
            );
        }
        // concurrent adds share the durable connection; each one is confirmed
        let mut adds = tokio::task::JoinSet::new();
        for i in 0..20 {
            let queue = queue.clone();
            adds.spawn(async move { queue.add(vec![NewJob::new(format!("{i}"))]).await });
        }
        while let Some(added) = adds.join_next().await {
            added.expect("task").expect("concurrent durable add");
        }
        assert_eq!(waiting_on(&mut on_replica, &queue).await, expected + 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_does_not_ack_makes_the_add_not_durable() {
    let (master, replica) = master_and_replica().await;
    let mut on_master = redis_conn(&master.url()).await;
    for mode in MODES {
        let queue = durable_queue(&master.url(), mode, replicas(1, Duration::from_millis(300)));
        queue
            .add(vec![NewJob::new("1")])
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:?}"));
        replica.freeze();
        let started = Instant::now();
        let err = queue.add(vec![NewJob::new("2")]).await.unwrap_err();
        let waited = started.elapsed();
        replica.thaw();
        assert_eq!(err.code(), "ERR_HOLDFAST_NOT_DURABLE", "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("copy to 1 replica(s) was not confirmed"),
            "{text}"
        );
        assert!(text.contains("retry with the same jobId"), "{text}");
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < DEADLINE, "{waited:?}");
        // the master took it: "may still be in Redis" is true
        assert_eq!(waiting_on(&mut on_master, &queue).await, 2);
        // once the replica is back, adds are confirmed again
        eventually(DEADLINE, "adds are durable again", || {
            let queue = queue.clone();
            async move {
                queue
                    .add(vec![NewJob::new("3")])
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enough_replicas_no_add_is_durable() {
    let master = TestRedis::spawn();
    let mut conn = redis_conn(&master.url()).await;
    for mode in MODES {
        let queue = durable_queue(&master.url(), mode, replicas(1, Duration::from_millis(100)));
        let err = queue.add(vec![NewJob::new("1")]).await.unwrap_err();
        assert!(matches!(err, Error::NotDurable(_)), "{err:?}");
        assert!(
            err.to_string().contains("confirmed by 0 replica(s)"),
            "{err}"
        );
        assert_eq!(waiting_on(&mut conn, &queue).await, 1);
    }
}

/// `fsync` on a server that cannot confirm it (no WAITAOF before Redis 7.2; `appendonly no`)
/// is refused before anything is added; where it can, adds resolve once fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_is_confirmed_or_refused_before_anything_is_added() {
    for aof in ["no", "yes"] {
        let server = TestRedis::spawn_with(|_| vec!["--appendonly".into(), aof.into()]);
        let mut conn = redis_conn(&server.url()).await;
        let has_waitaof = redis::cmd("COMMAND")
            .arg("INFO")
            .arg("WAITAOF")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .expect("COMMAND INFO")
            .first()
            .is_some_and(|v| *v != redis::Value::Nil);
        for mode in MODES {
            let fsync = Durable {
                replicas: 0,
                fsync: true,
                timeout: Duration::from_secs(5),
            };
            let queue = durable_queue(&server.url(), mode, fsync);
            let added = queue.add(vec![NewJob::new("1")]).await;
            if has_waitaof && aof == "yes" {
                added.expect("an fsynced add");
                assert_eq!(waiting_on(&mut conn, &queue).await, 1);
            } else {
                let err = added.unwrap_err();
                assert!(matches!(err, Error::NotDurable(_)), "{err:?}");
                assert!(err.to_string().contains("nothing was added"), "{err}");
                assert_eq!(waiting_on(&mut conn, &queue).await, 0);
            }
        }
    }
}

#[test]
fn bad_durable_options_are_refused() {
    for (durable, why) in [
        (
            replicas(0, Duration::from_secs(1)),
            "replicas >= 1 or fsync",
        ),
        (replicas(1, Duration::ZERO), "timeoutMs"),
        (replicas(1, Duration::from_secs(3601)), "timeoutMs"),
    ] {
        let mut cfg = QueueConfig::new("q");
        cfg.durable = Some(durable);
        let err = Queue::new(cfg).err().expect("refused");
        assert_eq!(err.code(), "ERR_HOLDFAST_INVALID_ARGUMENT");
        assert!(err.to_string().contains(why), "{err}");
    }
}
