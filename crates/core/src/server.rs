//! What the server's configuration means for the queue, read once from `INFO`: settings that
//! lose jobs or defeat an option, reported as warnings (the queue works either way).

use crate::config::QueueConfig;
use crate::conn::Conn;
use crate::error::Result;

/// Something about the server a user should know; `code` is stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerWarning {
    pub code: &'static str,
    pub message: String,
}

/// `INFO memory` (and `INFO persistence` for `durable.fsync`). A user without `+info` gets no
/// warnings rather than an error: the check is advice, not a requirement.
pub(crate) async fn warnings(conn: &Conn, cfg: &QueueConfig) -> Result<Vec<ServerWarning>> {
    let mut info = String::new();
    let mut sections = vec!["memory"];
    if cfg.durable.is_some_and(|d| d.fsync) {
        sections.push("persistence");
    }
    // one section per INFO: Redis 6.2 takes only one
    for section in sections {
        match conn
            .query::<String>("", redis::cmd("INFO").arg(section))
            .await
        {
            Ok(text) => info.push_str(&text),
            Err(e) if e.is_server_code("NOPERM") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    Ok(from_info(&info, cfg))
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn from_info(info: &str, cfg: &QueueConfig) -> Vec<ServerWarning> {
    let mut out = Vec::new();
    match field(info, "maxmemory_policy") {
        Some(policy) if policy.starts_with("allkeys-") => out.push(ServerWarning {
            code: "HOLDFAST_EVICTION",
            message: format!(
                "Redis has maxmemory-policy {policy}: when it reaches maxmemory it deletes keys, \
                 holdfast's queues among them, and an evicted key is lost jobs. Set \
                 maxmemory-policy noeviction (then adds fail with ERR_HOLDFAST_REDIS_FULL \
                 instead), or give the queue a Redis of its own"
            ),
        }),
        Some(policy) if policy.starts_with("volatile-") => out.push(ServerWarning {
            code: "HOLDFAST_EVICTION",
            message: format!(
                "Redis has maxmemory-policy {policy}: at maxmemory it deletes keys with a TTL, \
                 holdfast's jobId markers among them, so a repeated jobId may add a job twice. \
                 maxmemory-policy noeviction keeps them"
            ),
        }),
        _ => {}
    }
    if cfg.durable.is_some_and(|d| d.fsync) && field(info, "aof_enabled") == Some("0") {
        out.push(ServerWarning {
            code: "HOLDFAST_NO_AOF",
            message: "durable.fsync is set but Redis has appendonly no: every add will be \
                      refused with ERR_HOLDFAST_NOT_DURABLE until appendonly is yes"
                .into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durable;

    #[test]
    fn policies_that_evict_are_reported() {
        let cfg = QueueConfig::new("q");
        let info = |p: &str| format!("# Memory\r\nused_memory:1\r\nmaxmemory_policy:{p}\r\n");
        assert!(from_info(&info("noeviction"), &cfg).is_empty());
        let w = from_info(&info("allkeys-lru"), &cfg);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("allkeys-lru") && w[0].message.contains("lost jobs"));
        let w = from_info(&info("volatile-ttl"), &cfg);
        assert!(w[0].message.contains("jobId markers"));
        assert!(from_info("", &cfg).is_empty());
    }

    #[test]
    fn fsync_without_aof_is_reported() {
        let mut cfg = QueueConfig::new("q");
        let info = "maxmemory_policy:noeviction\r\naof_enabled:0\r\n";
        assert!(from_info(info, &cfg).is_empty());
        cfg.durable = Some(Durable {
            fsync: true,
            ..Default::default()
        });
        assert_eq!(from_info(info, &cfg)[0].code, "HOLDFAST_NO_AOF");
        assert!(from_info("aof_enabled:1\r\n", &cfg).is_empty());
    }
}
