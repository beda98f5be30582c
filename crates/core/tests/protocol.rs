//! Contract tests of the Redis protocol (`holdfast_core::protocol`): every operation called
//! directly against a real redis-server, with no worker running, one test body per operation run
//! for each mode. What a worker does with the results (events, deliveries) is tested elsewhere;
//! here only what each operation does in Redis and what it returns.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use holdfast_core::protocol::{AnyReader, Consumer, Cursor, Promoted, Protocol};
use holdfast_core::{Job, Mode, NewJob, Queue, Stats};

/// `not_after` for recovery calls that are never stale.
const NO_LIMIT: u64 = u64::MAX;
const DEADLINE: Duration = Duration::from_secs(10);
/// Short reads: an empty queue answers after this.
const BLOCK_MS: u64 = 50;

fn consumer(id: &str, visibility_ms: u64, max_deliveries: u32) -> Consumer {
    Consumer {
        id: format!("{id}-{}", unique_name("c")),
        visibility_timeout: Duration::from_millis(visibility_ms),
        max_deliveries,
    }
}

/// A consumer that is registered (heartbeat) with a prepared queue and an open reader.
async fn reader(queue: &Queue, c: &Consumer) -> AnyReader {
    let p = queue.protocol();
    p.common()
        .heartbeat(c, c.visibility_timeout, true)
        .await
        .expect("heartbeat");
    p.prepare().await.expect("prepare");
    p.connect_reader(Duration::from_millis(BLOCK_MS))
        .await
        .expect("connect reader")
        .0
}

async fn add(queue: &Queue, payloads: &[&str]) -> Vec<String> {
    let jobs = payloads.iter().map(|p| NewJob::new(*p)).collect::<Vec<_>>();
    queue.protocol().add(&jobs).await.expect("add")
}

async fn read(queue: &Queue, r: &mut AnyReader, c: &Consumer, count: usize) -> Vec<Job> {
    queue
        .protocol()
        .read(r, c, count, BLOCK_MS)
        .await
        .expect("read")
}

async fn stats(queue: &Queue) -> Stats {
    queue.protocol().stats().await.expect("stats")
}

/// Stats once finished work is cleaned up, as a worker's acker does after every write. Before
/// Redis 7 (no `lag` in XINFO GROUPS) stream mode counts acked entries still in the stream as
/// waiting until they are trimmed.
async fn settled_stats(queue: &Queue) -> Stats {
    queue.protocol().trim().await.expect("trim");
    stats(queue).await
}

fn counts(s: &Stats) -> (u64, u64, u64, u64) {
    (s.waiting, s.active, s.delayed, s.dead)
}

#[tokio::test]
async fn add_then_read_gives_each_job_once_oldest_first() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-add", mode);
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        let ids = add(&queue, &["1", "2", "3"]).await;
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "{mode:?}");
        assert_eq!(counts(&stats(&queue).await), (3, 0, 0, 0), "{mode:?}");

        let first = read(&queue, &mut r, &c, 2).await;
        let rest = read(&queue, &mut r, &c, 10).await;
        let got: Vec<_> = first
            .iter()
            .chain(&rest)
            .map(|j| (j.id.clone(), j.payload.text(), j.attempt))
            .collect();
        let want: Vec<_> = ids
            .iter()
            .zip(["1", "2", "3"])
            .map(|(id, p)| (id.clone(), p.to_owned(), 1))
            .collect();
        assert_eq!(got, want, "{mode:?}: two reads, in add order");
        assert_eq!(counts(&stats(&queue).await), (0, 3, 0, 0), "{mode:?}");
        assert!(
            read(&queue, &mut r, &c, 10).await.is_empty(),
            "{mode:?}: nothing left"
        );
    }
}

#[tokio::test]
async fn add_scripted_deduplicates_job_ids_and_delays_start_times() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-add-scripted", mode);
        let p = queue.protocol();
        let with_id = NewJob {
            job_id: Some("order-1".into()),
            ..NewJob::new("a")
        };
        let later = NewJob {
            run_at_ms: Some(u64::MAX / 2),
            ..NewJob::new("b")
        };
        let ids = p
            .add_scripted(&[with_id.clone(), later])
            .await
            .expect("add");
        assert_eq!(ids[0], "order-1", "{mode:?}");
        assert!(!ids[1].is_empty(), "{mode:?}: a delayed job gets an id");
        let again = p.add_scripted(&[with_id]).await.expect("add again");
        assert_eq!(
            again,
            vec!["order-1".to_owned()],
            "{mode:?}: a duplicate returns its id"
        );
        assert_eq!(counts(&stats(&queue).await), (1, 0, 1, 0), "{mode:?}");
    }
}

#[tokio::test]
async fn one_live_worker_at_a_time_holds_the_scheduler_lease() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-lease", mode);
        let p = queue.protocol();
        let common = p.common();
        let (a, b) = (consumer("a", 30_000, 5), consumer("b", 30_000, 5));
        let lease = Duration::from_secs(30);
        common.heartbeat(&a, lease, true).await.expect("beat a");
        common.heartbeat(&b, lease, true).await.expect("beat b");
        // a delayed job that is due by the time the next promote runs
        let add_due = |data: &'static str| {
            let jobs = [NewJob {
                run_at_ms: Some(now_ms() + 100),
                ..NewJob::new(data)
            }];
            async move {
                p.add_scripted(&jobs).await.expect("add");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        add_due("1").await;

        // a takes the lease and moves; b, standing by, moves nothing while a lives
        let by_a = p.promote(100, Some(&a.id)).await.expect("promote a");
        assert_eq!((by_a.moved, by_a.held_elsewhere), (1, None), "{mode:?}");
        add_due("2").await;
        let by_b = p.promote(100, Some(&b.id)).await.expect("promote b");
        assert_eq!(by_b.moved, 0, "{mode:?}");
        let held = by_b.held_elsewhere.expect("held by a");
        assert!(
            held <= lease && held > lease / 2,
            "{mode:?}: until a's deadline, {held:?}"
        );
        // a tool moves without the lease
        assert_eq!(
            p.promote(100, None).await.expect("tool").moved,
            1,
            "{mode:?}"
        );

        // releasing is only the holder's to do, and hands over at once
        common.release_scheduler(&b.id).await.expect("release b");
        add_due("3").await;
        let by_b = p.promote(100, Some(&b.id)).await.expect("promote b");
        assert!(
            by_b.held_elsewhere.is_some(),
            "{mode:?}: b could not release a's lease"
        );
        common.release_scheduler(&a.id).await.expect("release a");
        let by_b = p.promote(100, Some(&b.id)).await.expect("promote b");
        assert_eq!((by_b.moved, by_b.held_elsewhere), (1, None), "{mode:?}");

        // a holder whose heartbeat is gone (a crash) loses the lease without releasing it
        add_due("4").await;
        let by_a = p.promote(100, Some(&a.id)).await.expect("promote a");
        assert!(by_a.held_elsewhere.is_some(), "{mode:?}: b holds it now");
        common.unregister(&b).await.expect("b dies");
        let by_a = p.promote(100, Some(&a.id)).await.expect("promote a");
        assert_eq!((by_a.moved, by_a.held_elsewhere), (1, None), "{mode:?}");
        assert_eq!(
            counts(&stats(&queue).await).0,
            4,
            "{mode:?}: each job moved once"
        );
    }
}

#[tokio::test]
async fn promote_moves_due_jobs_and_tells_when_the_next_is_due() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-promote", mode);
        let p = queue.protocol();
        let far = u64::MAX / 2;
        let now = now_ms();
        let jobs = [
            NewJob {
                run_at_ms: Some(now + 1500),
                ..NewJob::new("soon")
            },
            NewJob {
                run_at_ms: Some(far),
                ..NewJob::new("later")
            },
        ];
        let ids = p.add_scripted(&jobs).await.expect("add");
        let first = p.promote(100, None).await.expect("promote");
        assert_eq!(first.moved, 0, "{mode:?}: nothing due yet");
        assert_eq!(first.next_due, Some(now + 1500), "{mode:?}");
        eventually(DEADLINE, "the first job becomes due", || async {
            match p.promote(100, None).await.expect("promote") {
                Promoted {
                    moved: 1, next_due, ..
                } => Ok(next_due),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(counts(&stats(&queue).await), (1, 0, 1, 0), "{mode:?}");
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        let job = &read(&queue, &mut r, &c, 10).await[0];
        assert_eq!(
            (&job.id, job.payload.as_str()),
            (&ids[0], "soon"),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn prepare_is_idempotent_and_repairs_a_missing_group() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-prepare", mode);
        let p = queue.protocol();
        p.prepare().await.expect("prepare");
        p.prepare().await.expect("prepare again");
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        // Redis restarted empty (or someone deleted the key): the group is gone.
        let mut conn = redis_conn(&redis.url()).await;
        let _: i64 = redis::cmd("DEL")
            .arg(&keys_of(&queue).stream)
            .query_async(&mut conn)
            .await
            .unwrap();
        match (mode, p.read(&mut r, &c, 10, BLOCK_MS).await) {
            (Mode::Stream, Err(e)) => assert!(p.needs_prepare(&e), "{e:?}"),
            (Mode::List, Ok(read)) => assert!(read.is_empty()),
            other => panic!("{mode:?}: {other:?}"),
        }
        p.prepare().await.expect("prepare repairs");
        add(&queue, &["x"]).await;
        assert_eq!(read(&queue, &mut r, &c, 10).await.len(), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn a_blocked_read_is_woken_by_unblock() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-unblock", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        p.prepare().await.expect("prepare");
        let (mut r, client_id) = p
            .connect_reader(Duration::from_secs(60))
            .await
            .expect("reader");
        let read = p.read(&mut r, &c, 10, 30_000);
        let unblock = async {
            // repeat: the read may reach Redis after an UNBLOCK
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                p.common().unblock(client_id).await;
            }
        };
        let got = tokio::time::timeout(DEADLINE, async {
            tokio::select! {
                r = read => r,
                _ = unblock => unreachable!(),
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{mode:?}: a 30 s read was not woken"));
        assert!(got.expect("read").is_empty(), "{mode:?}");
    }
}

#[tokio::test]
async fn ack_finishes_deliveries() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-ack", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        add(&queue, &["1", "2", "3"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        let receipts: Vec<_> = jobs.iter().map(|j| j.receipt.clone()).collect();
        p.ack(&c, &receipts[..2]).await.expect("ack");
        assert_eq!(
            counts(&settled_stats(&queue).await),
            (0, 1, 0, 0),
            "{mode:?}"
        );
        p.ack(&c, &receipts[2..]).await.expect("ack");
        p.ack(&c, &receipts[2..])
            .await
            .expect("a repeated ack is harmless");
        assert_eq!(
            counts(&settled_stats(&queue).await),
            (0, 0, 0, 0),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn retry_requeues_the_next_attempt_now_or_later() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-retry", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        let ids = add(&queue, &["now", "later"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        p.retry(&c, &jobs[0].receipt, &jobs[0].id, 2, 0)
            .await
            .expect("retry now");
        p.retry(&c, &jobs[1].receipt, &jobs[1].id, 2, u64::MAX / 2)
            .await
            .expect("retry later");
        assert_eq!(
            counts(&settled_stats(&queue).await),
            (1, 0, 1, 0),
            "{mode:?}"
        );
        let again = read(&queue, &mut r, &c, 10).await;
        assert_eq!(again.len(), 1, "{mode:?}");
        assert_eq!(
            (&again[0].id, again[0].attempt, again[0].payload.as_str()),
            (&ids[0], 2, "now"),
            "{mode:?}"
        );
        // the first delivery is finished: retrying it again adds nothing
        p.retry(&c, &jobs[0].receipt, &jobs[0].id, 3, 0)
            .await
            .expect("retry twice");
        assert_eq!(
            counts(&settled_stats(&queue).await),
            (0, 1, 1, 0),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn dead_letters_are_written_listed_retried_and_purged() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-dead", mode);
        let p = queue.protocol();
        let common = p.common();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        let ids = add(&queue, &["{\"n\":1}", "{\"n\":2}"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        for job in &jobs {
            let moved = p
                .dead(&c, &job.receipt, &job.id, 3, "boom")
                .await
                .expect("dead");
            assert!(moved, "{mode:?}");
        }
        let twice = p
            .dead(&c, &jobs[0].receipt, &jobs[0].id, 3, "boom")
            .await
            .expect("dead");
        assert!(
            !twice,
            "{mode:?}: a finished delivery is not dead-lettered again"
        );
        assert_eq!(
            counts(&settled_stats(&queue).await),
            (0, 0, 0, 2),
            "{mode:?}"
        );

        let page = common.dead_page(0, 10).await.expect("page");
        let seen: Vec<_> = page
            .iter()
            .map(|d| (d.id.clone(), d.payload.text(), d.attempts, d.error.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (ids[1].clone(), "{\"n\":2}".to_owned(), 3, "boom".to_owned()),
                (ids[0].clone(), "{\"n\":1}".to_owned(), 3, "boom".to_owned()),
            ],
            "{mode:?}: newest first"
        );
        assert!(page.iter().all(|d| d.failed_at_ms > 0), "{mode:?}");
        assert_eq!(
            common.dead_page(1, 10).await.expect("page").len(),
            1,
            "{mode:?}: offset"
        );

        assert_eq!(
            p.dead_retry(Some(&[ids[0].clone()]))
                .await
                .expect("retry one"),
            1,
            "{mode:?}"
        );
        let back = read(&queue, &mut r, &c, 10).await;
        assert_eq!(
            (&back[0].id, back[0].attempt, back[0].payload.as_str()),
            (&ids[0], 1, "{\"n\":1}"),
            "{mode:?}"
        );
        assert_eq!(common.dead_purge().await.expect("purge"), 1, "{mode:?}");
        assert_eq!(
            counts(&settled_stats(&queue).await),
            (0, 1, 0, 0),
            "{mode:?}"
        );
    }
}

/// Bytes that are not UTF-8 (NUL, a lone continuation byte, `|`, CRLF) travel as they are,
/// flagged `binary`, through add, read, a delayed retry, the dead letters and back.
#[tokio::test]
async fn bytes_payloads_keep_every_byte_and_their_flag_on_every_path() {
    let redis = TestRedis::shared_or_spawn();
    let bytes: &[u8] = b"\x80\xff\x00|\r\n\xc3";
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-bytes", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        let job = NewJob {
            binary: true,
            ..NewJob::new(bytes)
        };
        let ids = p.add(&[job, NewJob::new("text")]).await.expect("add");
        let jobs = read(&queue, &mut r, &c, 10).await;
        let got: Vec<_> = jobs.iter().map(|j| (&j.payload[..], j.binary)).collect();
        assert_eq!(got, [(bytes, true), (&b"text"[..], false)], "{mode:?}");

        // through the delayed set and back (promote)
        p.retry(&c, &jobs[0].receipt, &jobs[0].id, 2, 1)
            .await
            .expect("retry");
        p.ack(
            &c,
            &jobs[1..]
                .iter()
                .map(|j| j.receipt.clone())
                .collect::<Vec<_>>(),
        )
        .await
        .expect("ack");
        p.promote(100, None).await.expect("promote");
        let again = read(&queue, &mut r, &c, 10).await;
        assert_eq!(
            (
                &again[0].id,
                &again[0].payload[..],
                again[0].binary,
                again[0].attempt
            ),
            (&ids[0], bytes, true, 2),
            "{mode:?}"
        );

        assert!(p
            .dead(&c, &again[0].receipt, &again[0].id, 2, "boom")
            .await
            .expect("dead"));
        let page = p.common().dead_page(0, 10).await.expect("page");
        assert_eq!(
            (&page[0].payload[..], page[0].binary),
            (bytes, true),
            "{mode:?}"
        );
        p.dead_retry(None).await.expect("dead retry");
        let back = read(&queue, &mut r, &c, 10).await;
        assert_eq!(
            (&back[0].payload[..], back[0].binary, back[0].attempt),
            (bytes, true, 1),
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn recover_claims_expired_leases_or_dead_letters_poison() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-recover", mode);
        let p = queue.protocol();
        let crashed = consumer("crashed", 100, 1);
        let mut r = reader(&queue, &crashed).await;
        let ids = add(&queue, &["x"]).await;
        read(&queue, &mut r, &crashed, 10).await;

        let other = consumer("other", 100, 2);
        let mut cursor = Cursor::default();
        match mode {
            // stream mode: the entry's lease is its idle time in the pending list
            Mode::Stream => {
                let found = eventually(DEADLINE, "the lease expires", || async {
                    let found = p
                        .recover(&other, &mut Cursor::default(), 10, NO_LIMIT)
                        .await
                        .expect("recover");
                    match found.jobs.len() {
                        1 => Ok(found),
                        _ => Err(format!("{found:?}")),
                    }
                })
                .await;
                assert_eq!(found.jobs[0].id, ids[0]);
                assert!(found.dead.is_empty());
                // delivered twice now; the next recovery past max_deliveries (1) dead-letters it
                let strict = consumer("strict", 100, 1);
                let found = eventually(DEADLINE, "the lease expires again", || async {
                    let found = p
                        .recover(&strict, &mut Cursor::default(), 10, NO_LIMIT)
                        .await
                        .expect("recover");
                    match found.dead.len() {
                        1 => Ok(found),
                        _ => Err(format!("{found:?}")),
                    }
                })
                .await;
                assert!(found.jobs.is_empty());
                assert_eq!(found.dead[0].id, ids[0]);
                assert!(
                    found.dead[0].reason.contains("maxDeliveries 1"),
                    "{:?}",
                    found.dead
                );
                let page = p.common().dead_page(0, 10).await.expect("page");
                assert_eq!(
                    page[0].error, found.dead[0].reason,
                    "one wording, event and letter"
                );
            }
            // list mode has no per-delivery lease: a dead worker's jobs come back by `reap`
            Mode::List => {
                let found = p
                    .recover(&other, &mut cursor, 10, NO_LIMIT)
                    .await
                    .expect("recover");
                assert!(found.jobs.is_empty() && found.dead.is_empty() && !found.more);
            }
        }
    }
}

#[tokio::test]
async fn reap_handles_workers_whose_heartbeat_deadline_passed() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-reap", mode);
        let p = queue.protocol();
        let crashed = consumer("crashed", 1000, 5);
        let mut r = reader(&queue, &crashed).await;
        let ids = add(&queue, &["x"]).await;
        read(&queue, &mut r, &crashed, 10).await;
        let reaper = consumer("reaper", 30_000, 5);
        p.common()
            .heartbeat(&reaper, reaper.visibility_timeout, true)
            .await
            .expect("heartbeat");
        assert_eq!(stats(&queue).await.workers, 2, "{mode:?}");
        eventually(DEADLINE, "the crashed worker's deadline passes", || async {
            match stats(&queue).await.workers {
                1 => Ok(()),
                n => Err(format!("{n} live workers")),
            }
        })
        .await;
        // the reaper's next heartbeat names it
        let overdue = p
            .common()
            .heartbeat(&reaper, reaper.visibility_timeout, true)
            .await
            .expect("heartbeat")
            .overdue;
        assert_eq!(overdue, vec![crashed.id.clone()], "{mode:?}");
        if mode == Mode::Stream {
            // its entry must be claimed first: a consumer with pending entries is kept
            let reaped = p.reap(&reaper, &overdue, NO_LIMIT).await.expect("reap");
            assert!(reaped.stalled.is_empty() && reaped.dead.is_empty());
            let mut conn = redis_conn(&redis.url()).await;
            let workers = keys_of(&queue).workers;
            assert!(zscore(&mut conn, &workers, &crashed.id).await.is_some());
            let claimer = consumer("claimer", 100, 5);
            let stale = p
                .recover(&claimer, &mut Cursor::default(), 10, 1)
                .await
                .expect("stale recover");
            assert!(stale.jobs.is_empty() && stale.dead.is_empty());
            let claimed = p
                .recover(&claimer, &mut Cursor::default(), 10, NO_LIMIT)
                .await
                .expect("recover");
            assert_eq!(claimed.jobs[0].id, ids[0]);
        }
        // a request that reaches Redis after its not-after time (server clock) does nothing
        let stale = p.reap(&reaper, &overdue, 1).await.expect("stale reap");
        assert!(stale.stalled.is_empty() && stale.dead.is_empty());
        assert_eq!(stats(&queue).await.active, 1, "{mode:?}: still held");
        let reaped = p.reap(&reaper, &overdue, NO_LIMIT).await.expect("reap");
        let mut conn = redis_conn(&redis.url()).await;
        assert_eq!(
            zscore(&mut conn, &keys_of(&queue).workers, &crashed.id).await,
            None,
            "{mode:?}: forgotten"
        );
        match mode {
            Mode::Stream => assert!(reaped.stalled.is_empty()),
            Mode::List => {
                assert_eq!(reaped.stalled, ids, "its processing list went back to wait");
                assert_eq!(counts(&stats(&queue).await), (1, 0, 0, 0));
                assert!(!exists(&mut conn, &keys_of(&queue).active(&crashed.id)).await);
            }
        }
        assert!(p
            .common()
            .heartbeat(&reaper, reaper.visibility_timeout, true)
            .await
            .expect("hb")
            .overdue
            .is_empty());
        let again = p
            .reap(&reaper, &overdue, NO_LIMIT)
            .await
            .expect("reap again");
        assert!(
            again.stalled.is_empty() && again.dead.is_empty(),
            "{mode:?}: reaped once"
        );
    }
}

#[tokio::test]
async fn list_mode_reaper_dead_letters_a_job_past_max_deliveries() {
    let redis = TestRedis::shared_or_spawn();
    let queue = queue_in(&redis.url(), "p-reap-poison", Mode::List);
    let p = queue.protocol();
    let mut conn = redis_conn(&redis.url()).await;
    // recovered once already; max_deliveries 1 makes this reaping the one too many
    plant_dead_worker(
        &mut conn,
        &keys_of(&queue),
        "gone",
        &[envelope("poison", 1, 1, None, "x")],
    )
    .await;
    let reaper = consumer("reaper", 30_000, 1);
    let overdue = p
        .common()
        .heartbeat(&reaper, reaper.visibility_timeout, true)
        .await
        .expect("heartbeat")
        .overdue;
    assert_eq!(overdue, vec!["gone".to_string()]);
    let reaped = p.reap(&reaper, &overdue, NO_LIMIT).await.expect("reap");
    assert!(reaped.stalled.is_empty());
    assert_eq!(reaped.dead.len(), 1);
    assert_eq!(reaped.dead[0].id, "poison");
    let page = p.common().dead_page(0, 10).await.expect("page");
    assert_eq!(
        (page[0].id.as_str(), page[0].error.as_str()),
        ("poison", reaped.dead[0].reason.as_str())
    );
    assert!(page[0].error.contains("maxDeliveries 1"), "{page:?}");
}

#[tokio::test]
async fn listed_and_return_orphans_give_back_what_a_lost_reply_moved() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-orphans", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        add(&queue, &["held", "lost"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        let listed = p.listed(&c).await.expect("listed");
        match mode {
            // a lost XREADGROUP reply leaves the entry pending for this consumer: recovery takes it
            Mode::Stream => assert_eq!(listed, None),
            Mode::List => {
                let listed = listed.expect("list mode lists its processing list");
                assert_eq!(listed.len(), 2);
                let held = vec![jobs[0].receipt.clone()];
                let returned = p.return_orphans(&c, listed, held).await.expect("return");
                assert_eq!(returned, 1);
                assert_eq!(counts(&stats(&queue).await), (1, 1, 0, 0));
                let back = read(&queue, &mut r, &c, 10).await;
                assert_eq!(
                    (back[0].payload.as_str(), back[0].attempt),
                    ("lost", 1),
                    "no attempt counted"
                );
            }
        }
    }
}

#[tokio::test]
async fn renew_resets_the_lease_of_deliveries_in_flight() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-renew", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        add(&queue, &["x"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        let receipts = vec![jobs[0].receipt.clone()];
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut conn = redis_conn(&redis.url()).await;
        let stream = keys_of(&queue).stream;
        let before = match mode {
            Mode::Stream => Some(idle_ms(&mut conn, &stream).await),
            Mode::List => None,
        };
        p.renew(&c, &receipts).await.expect("renew");
        match before {
            Some(before) => {
                let after = idle_ms(&mut conn, &stream).await;
                assert!(
                    after < before,
                    "idle {before} ms, then {after} ms after renewing"
                );
            }
            // list mode's lease is the worker's heartbeat: renew has nothing to do
            None => assert_eq!(counts(&stats(&queue).await), (0, 1, 0, 0)),
        }
    }
}

/// How long the first pending entry of the stream has been idle.
async fn idle_ms(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> u64 {
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(holdfast_core::config::DEFAULT_GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(conn)
        .await
        .expect("XPENDING");
    pending[0].2
}

#[tokio::test]
async fn trim_removes_finished_stream_entries() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-trim", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        add(&queue, &["1", "2"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        p.ack(&c, &[jobs[0].receipt.clone()]).await.expect("ack");
        p.trim().await.expect("trim");
        let mut conn = redis_conn(&redis.url()).await;
        match mode {
            Mode::Stream => {
                assert!(p.trims());
                // the pending second entry and everything after it stay
                assert_eq!(xlen(&mut conn, &keys_of(&queue).stream).await, 1);
                p.ack(&c, &[jobs[1].receipt.clone()]).await.expect("ack");
                p.trim().await.expect("trim");
                assert_eq!(xlen(&mut conn, &keys_of(&queue).stream).await, 0);
            }
            // LREM already removed the finished element
            Mode::List => {
                assert!(!p.trims());
                assert_eq!(llen(&mut conn, &keys_of(&queue).active(&c.id)).await, 1);
            }
        }
    }
}

#[tokio::test]
async fn leave_says_whether_the_heartbeat_may_go() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-leave", mode);
        let p = queue.protocol();
        let c = consumer("a", 30_000, 5);
        let mut r = reader(&queue, &c).await;
        add(&queue, &["x"]).await;
        let jobs = read(&queue, &mut r, &c, 10).await;
        let holding = p.leave(&c).await.expect("leave while holding");
        // stream mode: what is pending is recovered by XAUTOCLAIM either way
        assert_eq!(holding, mode == Mode::Stream, "{mode:?}");
        p.ack(&c, &[jobs[0].receipt.clone()]).await.expect("ack");
        assert!(p.leave(&c).await.expect("leave"), "{mode:?}");
        p.common().unregister(&c).await.expect("unregister");
        assert_eq!(stats(&queue).await.workers, 0, "{mode:?}");
        let mut conn = redis_conn(&redis.url()).await;
        if mode == Mode::Stream {
            let consumers: redis::Value = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&keys_of(&queue).stream)
                .arg(holdfast_core::config::DEFAULT_GROUP)
                .query_async(&mut conn)
                .await
                .expect("XINFO CONSUMERS");
            assert_eq!(
                consumers,
                redis::Value::Array(vec![]),
                "the consumer was deleted"
            );
        }
    }
}

#[tokio::test]
async fn heartbeats_and_the_pause_flag_are_shared_by_every_mode() {
    let redis = TestRedis::shared_or_spawn();
    for mode in MODES {
        let queue = queue_in(&redis.url(), "p-common", mode);
        let common = queue.protocol().common();
        let (a, b) = (consumer("a", 30_000, 5), consumer("b", 30_000, 5));
        common
            .heartbeat(&a, a.visibility_timeout, true)
            .await
            .expect("heartbeat");
        common
            .heartbeat(&b, b.visibility_timeout, true)
            .await
            .expect("heartbeat");
        assert_eq!(stats(&queue).await.workers, 2, "{mode:?}");
        common.unregister(&a).await.expect("unregister");
        assert_eq!(stats(&queue).await.workers, 1, "{mode:?}");

        assert!(!common.is_paused().await.expect("paused?"));
        common.set_paused(true).await.expect("pause");
        assert!(common.is_paused().await.expect("paused?") && stats(&queue).await.paused);
        common.set_paused(false).await.expect("resume");
        assert!(!common.is_paused().await.expect("paused?"), "{mode:?}");
    }
}
