//! TLS on every connection holdfast opens, the stream fetch connection (`resp.rs`) included:
//! each test's redis-server listens for TLS only on the port the queue is given (its plain port
//! serves the test's own checks), so a connection that skipped TLS would fail.

mod common;

use std::time::{Duration, Instant};

use common::*;
use holdfast_core::{Error, Mode, NewJob, Queue, QueueConfig, TlsConfig, WorkerConfig};

const DEADLINE: Duration = Duration::from_secs(10);

struct TlsRedis {
    redis: TestRedis,
    certs: TestCerts,
    tls_port: u16,
}

fn tls_redis(auth_clients: bool) -> TlsRedis {
    let mut made = None;
    let tls_port = free_port();
    let redis = TestRedis::spawn_with(|dir| {
        let certs = TestCerts::make(dir);
        let args = certs.server_args(tls_port, auth_clients);
        made = Some(certs);
        args
    });
    TlsRedis {
        redis,
        certs: made.expect("certs"),
        tls_port,
    }
}

impl TlsRedis {
    fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.tls_port)
    }

    fn trusting(&self) -> TlsConfig {
        TlsConfig {
            ca: Some(self.certs.pem("ca.crt")),
            ..Default::default()
        }
    }

    fn with_client_cert(&self) -> TlsConfig {
        TlsConfig {
            cert: Some(self.certs.pem("client.crt")),
            key: Some(self.certs.pem("client.key")),
            ..self.trusting()
        }
    }
}

fn queue_at(url: String, tls: Option<TlsConfig>, mode: Mode) -> std::sync::Arc<Queue> {
    let mut cfg = QueueConfig::new(unique_name("tls"));
    cfg.url = url;
    cfg.tls = tls;
    cfg.mode = mode;
    Queue::new(cfg).expect("queue")
}

/// Adds jobs, runs them on a worker and waits until the queue is empty.
async fn round_trip(queue: &Queue, n: usize) {
    let jobs = (0..n)
        .map(|i| NewJob::new(format!("{{\"n\":{i}}}")))
        .collect();
    let ids = queue.add(jobs).await.expect("add over TLS");
    let (dispatch, mut rx) = channel_dispatch();
    let worker = queue
        .worker(WorkerConfig::default(), dispatch)
        .expect("worker");
    let got = rx.jobs(n, DEADLINE).await;
    assert_eq!(ids_of(&got), ids.into_iter().collect());
    complete_all(&worker, &got);
    wait_drained(queue, DEADLINE).await;
    close(worker).await;
    assert!(errors(&rx.drain_events()).is_empty(), "no worker errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_verified_tls_in_both_modes() {
    let server = tls_redis(false);
    for mode in [Mode::Stream, Mode::List] {
        // the certificate names localhost and 127.0.0.1: both verify
        for host in ["localhost", "127.0.0.1"] {
            round_trip(
                &queue_at(server.url(host), Some(server.trusting()), mode),
                20,
            )
            .await;
        }
        // `tls` turns TLS on for a redis:// url too
        let url = format!("redis://127.0.0.1:{}", server.tls_port);
        round_trip(&queue_at(url, Some(server.trusting()), mode), 5).await;
        // rejectUnauthorized: false needs no CA
        let insecure = TlsConfig {
            reject_unauthorized: false,
            ..Default::default()
        };
        round_trip(&queue_at(server.url("127.0.0.1"), Some(insecure), mode), 5).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_in_both_modes() {
    let server = tls_redis(true);
    for mode in [Mode::Stream, Mode::List] {
        let queue = queue_at(
            server.url("localhost"),
            Some(server.with_client_cert()),
            mode,
        );
        round_trip(&queue, 20).await;
        // without a client certificate the server hangs up
        let queue = queue_at(server.url("localhost"), Some(server.trusting()), mode);
        let err = queue.add(vec![NewJob::new("{}")]).await.unwrap_err();
        assert!(matches!(err, Error::Connection(_)), "{err:?}");
    }
}

/// A server the client cannot verify is refused within seconds, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverifiable_server_is_refused_with_the_reason() {
    let server = tls_redis(false);
    let wrong_name = TlsConfig {
        servername: Some("redis.example.com".into()),
        ..server.trusting()
    };
    // Mozilla's roots do not know the test CA; the certificate does not name redis.example.com
    for (tls, why) in [
        (None, "UnknownIssuer"),
        (Some(wrong_name), "NotValidForName"),
    ] {
        let queue = queue_at(server.url("127.0.0.1"), tls, Mode::Stream);
        let started = Instant::now();
        let err = queue.add(vec![NewJob::new("{}")]).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{err:?}");
        assert_eq!(err.code(), "ERR_HOLDFAST_CONNECTION");
        let msg = err.to_string();
        assert!(
            msg.contains("TLS certificate verification failed") && msg.contains(why),
            "{msg}"
        );
        // a worker reports the same and keeps trying
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(WorkerConfig::default(), dispatch)
            .expect("worker");
        let (event, _) = rx
            .event_where(DEADLINE, |e| match e {
                holdfast_core::WorkerEvent::Error(e) => Some(e.clone()),
                _ => None,
            })
            .await;
        assert!(event
            .to_string()
            .contains("certificate verification failed"));
        close(worker).await;
    }
    // the servername option names the host the certificate must carry
    let renamed = TlsConfig {
        servername: Some("localhost".into()),
        ..server.trusting()
    };
    let queue = queue_at(server.url("127.0.0.1"), Some(renamed), Mode::List);
    round_trip(&queue, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_options_are_refused_up_front() {
    let cases = [
        (
            TlsConfig {
                ca: Some(b"not a pem".to_vec()),
                ..Default::default()
            },
            "tls.ca",
        ),
        (
            TlsConfig {
                cert: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
                ..Default::default()
            },
            "tls.cert and tls.key go together",
        ),
        (
            TlsConfig {
                servername: Some("bad name!".into()),
                ..Default::default()
            },
            "servername",
        ),
    ];
    for (tls, says) in cases {
        let mut cfg = QueueConfig::new(unique_name("tls"));
        cfg.url = "rediss://127.0.0.1:1".into();
        cfg.tls = Some(tls);
        let err = Queue::new(cfg).err().expect("refused");
        assert_eq!(err.code(), "ERR_HOLDFAST_INVALID_ARGUMENT", "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
    }
    let mut cfg = QueueConfig::new(unique_name("tls"));
    cfg.url = "redis+unix:///tmp/redis.sock".into();
    cfg.tls = Some(TlsConfig::default());
    assert!(Queue::new(cfg).is_err());
}

/// Workers and producers come back by themselves after the TLS server restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_a_tls_server_restart() {
    let mut server = tls_redis(false);
    for mode in [Mode::Stream, Mode::List] {
        let queue = queue_at(server.url("localhost"), Some(server.trusting()), mode);
        let (dispatch, mut rx) = channel_dispatch();
        let worker = queue
            .worker(worker_cfg(Duration::from_millis(600)), dispatch)
            .expect("worker");
        queue
            .add(vec![NewJob::new("{\"before\":1}")])
            .await
            .expect("add");
        let job = rx.job(DEADLINE).await;
        complete_all(&worker, &[job]);
        wait_drained(&queue, DEADLINE).await;

        server.redis.restart();

        let id = eventually(DEADLINE, "an add after the restart", || {
            let queue = queue.clone();
            async move {
                queue
                    .add(vec![NewJob::new("{\"after\":1}")])
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        let job = rx.job(Duration::from_secs(15)).await;
        assert_eq!(vec![job.id.clone()], id);
        complete_all(&worker, &[job]);
        wait_drained(&queue, DEADLINE).await;
        close(worker).await;
    }
}
