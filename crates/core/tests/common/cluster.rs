//! A local Redis Cluster for tests: `masters` masters with `replicas` replicas each, every node
//! a [`TestRedis`] of its own (killed and restarted like any other), joined by
//! `redis-cli --cluster create`. Fails over fast: a node is failing after 1 s of silence.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::{eventually, redis_conn, TestRedis};

const DEADLINE: Duration = Duration::from_secs(60);

pub struct TestCluster {
    pub nodes: Vec<TestRedis>,
}

impl TestCluster {
    pub async fn spawn(masters: usize, replicas: usize) -> Self {
        let nodes: Vec<TestRedis> = (0..masters * (1 + replicas))
            .map(|_| {
                TestRedis::spawn_with(|_| {
                    [
                        "--cluster-enabled yes",
                        "--cluster-node-timeout 1000",
                        // a replica may always take over, however long its link was down
                        "--cluster-replica-validity-factor 0",
                        "--repl-diskless-sync-delay 0",
                    ]
                    .iter()
                    .flat_map(|a| a.split(' ').map(String::from))
                    .collect()
                })
            })
            .collect();
        let cli = std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into());
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cli:?}: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok().await;
        cluster
    }

    /// Every running node says `cluster_state:ok` and knows every node.
    pub async fn wait_ok(&self) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            eventually(DEADLINE, "the cluster is ok on every node", || async {
                let mut conn = redis_conn(&node.url()).await;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let known = format!("cluster_known_nodes:{}", self.nodes.len());
                match info.contains("cluster_state:ok") && info.contains(&known) {
                    true => Ok(()),
                    false => Err(info),
                }
            })
            .await;
        }
    }

    /// Seed urls for the `cluster` option.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = Vec::new();
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let role = role_of(n.port());
            if role == "master" {
                ports.push(n.port());
            }
        }
        ports
    }

    /// The port of the master that owns `slot`, as a running node sees it.
    pub async fn owner_of(&self, slot: u16) -> u16 {
        let node = self.nodes.iter().find(|n| n.is_running()).expect("a node");
        let mut conn = redis_conn(&node.url()).await;
        let nodes = cluster_nodes(&mut conn).await;
        nodes
            .iter()
            .find(|n| n.master && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no owner of slot {slot} in {nodes:?}"))
    }

    pub fn node(&mut self, port: u16) -> &mut TestRedis {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a node on that port")
    }

    /// Moves `slot` to the master on `to` the way `redis-cli --cluster reshard` does
    /// (IMPORTING, MIGRATING, MIGRATE key by key, SETSLOT NODE everywhere), pausing `pace`
    /// after each key so that commands meet the slot half moved.
    pub async fn move_slot(&self, slot: u16, to: u16, pace: Duration) {
        let from = self.owner_of(slot).await;
        assert_ne!(from, to, "slot {slot} is on {to} already");
        let mut src = redis_conn(&format!("redis://127.0.0.1:{from}")).await;
        let mut dst = redis_conn(&format!("redis://127.0.0.1:{to}")).await;
        let (src_id, dst_id) = (myid(&mut src).await, myid(&mut dst).await);
        setslot(&mut dst, slot, "IMPORTING", &src_id).await;
        setslot(&mut src, slot, "MIGRATING", &dst_id).await;
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(1)
                .query_async(&mut src)
                .await
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut src)
                .await
                .expect("MIGRATE");
            tokio::time::sleep(pace).await;
        }
        setslot(&mut dst, slot, "NODE", &dst_id).await;
        setslot(&mut src, slot, "NODE", &dst_id).await;
        for port in self.masters() {
            if port != from && port != to {
                let mut c = redis_conn(&format!("redis://127.0.0.1:{port}")).await;
                setslot(&mut c, slot, "NODE", &dst_id).await;
            }
        }
    }
}

#[derive(Debug)]
pub struct NodeInfo {
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    pub slots: Vec<(u16, u16)>,
}

/// `CLUSTER NODES`, parsed: `<id> <ip:port@cport> <flags> <master> ... <slot ranges>`.
pub async fn cluster_nodes(conn: &mut MultiplexedConnection) -> Vec<NodeInfo> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(conn)
        .await
        .expect("CLUSTER NODES");
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let port = f
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let flags = f.get(2)?;
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeInfo {
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail"),
                slots,
            })
        })
        .collect()
}

fn role_of(port: u16) -> String {
    let out = Command::new(std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into()))
        .args(["-p", &port.to_string(), "ROLE"])
        .output()
        .expect("redis-cli ROLE");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

async fn myid(conn: &mut MultiplexedConnection) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(conn)
        .await
        .expect("CLUSTER MYID")
}

async fn setslot(conn: &mut MultiplexedConnection, slot: u16, what: &str, id: &str) {
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(what)
        .arg(id)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {what}: {e}"));
}

/// A raw connection to one node's `CLUSTER KEYSLOT`, to check `keys::slot` against Redis.
pub async fn keyslot(conn: &mut MultiplexedConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .expect("CLUSTER KEYSLOT")
}
