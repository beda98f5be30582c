//! `Queue::server_warnings`: what `INFO` says about settings that lose jobs or defeat an option.

mod common;

use common::*;
use holdfast_core::{Durable, Queue, QueueConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_policy_and_fsync_without_aof_are_reported() {
    let server = TestRedis::spawn_with(|_| vec!["--maxmemory-policy".into(), "allkeys-lru".into()]);
    let queue = queue(&server.url(), "warnings");
    let warnings = queue.server_warnings().await.expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].code, "HOLDFAST_EVICTION");
    assert!(warnings[0].message.contains("allkeys-lru"), "{warnings:?}");

    let mut conn = redis_conn(&server.url()).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET");
    assert_eq!(queue.server_warnings().await.expect("warnings"), vec![]);

    let mut cfg = QueueConfig::new(unique_name("warnings"));
    cfg.url = server.url();
    cfg.durable = Some(Durable {
        fsync: true,
        ..Default::default()
    });
    let fsync = Queue::new(cfg).expect("queue");
    let warnings = fsync.server_warnings().await.expect("warnings");
    assert_eq!(
        warnings.iter().map(|w| w.code).collect::<Vec<_>>(),
        ["HOLDFAST_NO_AOF"]
    );
}

/// The check is advice: a user the ACL does not let run INFO gets no warnings and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_info_in_the_acl_there_are_no_warnings() {
    let server = TestRedis::spawn_with(|_| vec!["--maxmemory-policy".into(), "allkeys-lru".into()]);
    let mut conn = redis_conn(&server.url()).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-info"])
        .query_async(&mut conn)
        .await
        .expect("ACL SETUSER");
    let url = server.url().replace("redis://", "redis://noinfo:pw@");
    let queue = queue(&url, "warnings");
    assert_eq!(queue.server_warnings().await.expect("warnings"), vec![]);
}
