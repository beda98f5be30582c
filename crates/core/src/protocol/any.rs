//! The one place that matches on the queue's mode: [`AnyProtocol`] is built from the config
//! and forwards every operation to the mode's protocol. A third mode is one more variant here.

use bytes::Bytes;
use std::time::Duration;

use super::list::{ListProtocol, ListReader};
use super::stream::{StreamProtocol, StreamReader};
use super::{Common, Consumer, Cursor, Place, Promoted, Protocol, Reaped, Recovered};
use crate::config::{Mode, QueueConfig};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::job::{Job, NewJob, Stats};
use crate::keys::ListKeys;

pub enum AnyProtocol {
    Stream(StreamProtocol),
    List(ListProtocol),
}

/// The fetch connection of either mode.
pub enum AnyReader {
    Stream(StreamReader),
    List(ListReader),
}

impl AnyProtocol {
    pub(crate) fn new(cfg: &QueueConfig, conn: Conn) -> Self {
        let adds = match cfg.durable {
            Some(d) => Conn::durable(conn.endpoint().clone(), d),
            None => conn.clone(),
        };
        let common = Common {
            keys: cfg.queue_keys(),
            conn,
            adds,
            dead: super::DeadPolicy {
                max_len: cfg.dead_max_len,
                max_age: cfg.dead_max_age,
            },
            dedup_window: cfg.dedup_window,
            mode: match cfg.mode {
                Mode::Stream => "stream",
                Mode::List => "list",
            },
            stream: match cfg.mode {
                Mode::Stream => Some(cfg.stream_keys()),
                Mode::List => None,
            },
        };
        match cfg.mode {
            Mode::Stream => AnyProtocol::Stream(StreamProtocol {
                common,
                keys: cfg.stream_keys(),
                group_start: cfg.group_start,
            }),
            Mode::List => AnyProtocol::List(ListProtocol {
                common,
                keys: ListKeys::new(&cfg.prefix, &cfg.name, cfg.list_key.as_deref()),
            }),
        }
    }
}

/// `each!(self, p => expr)`: `expr` with `p` bound to the mode's protocol.
macro_rules! each {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyProtocol::Stream($p) => $e,
            AnyProtocol::List($p) => $e,
        }
    };
}

impl Protocol for AnyProtocol {
    type Reader = AnyReader;

    fn common(&self) -> &Common {
        each!(self, p => p.common())
    }

    async fn add(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        each!(self, p => p.add(jobs).await)
    }

    async fn add_scripted(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        each!(self, p => p.add_scripted(jobs).await)
    }

    async fn stats(&self) -> Result<Stats> {
        each!(self, p => p.stats().await)
    }

    async fn locate(&self, id: &str) -> Result<Option<(Place, Job)>> {
        each!(self, p => p.locate(id).await)
    }

    async fn peek(&self, limit: usize) -> Result<Vec<Job>> {
        each!(self, p => p.peek(limit).await)
    }

    async fn dead_retry(&self, ids: Option<&[String]>) -> Result<u64> {
        each!(self, p => p.dead_retry(ids).await)
    }

    async fn promote(&self, batch: usize, worker: Option<&str>) -> Result<Promoted> {
        each!(self, p => p.promote(batch, worker).await)
    }

    async fn prepare(&self) -> Result<()> {
        each!(self, p => p.prepare().await)
    }

    fn needs_prepare(&self, err: &Error) -> bool {
        each!(self, p => p.needs_prepare(err))
    }

    async fn connect_reader(&self, block: Duration) -> Result<(AnyReader, i64)> {
        Ok(match self {
            AnyProtocol::Stream(p) => {
                let (r, id) = p.connect_reader(block).await?;
                (AnyReader::Stream(r), id)
            }
            AnyProtocol::List(p) => {
                let (r, id) = p.connect_reader(block).await?;
                (AnyReader::List(r), id)
            }
        })
    }

    async fn read(
        &self,
        reader: &mut AnyReader,
        c: &Consumer,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Job>> {
        match (self, reader) {
            (AnyProtocol::Stream(p), AnyReader::Stream(r)) => p.read(r, c, count, block_ms).await,
            (AnyProtocol::List(p), AnyReader::List(r)) => p.read(r, c, count, block_ms).await,
            _ => unreachable!("a reader is only ever made by its own protocol"),
        }
    }

    async fn recover(
        &self,
        c: &Consumer,
        cursor: &mut Cursor,
        count: usize,
        not_after: u64,
    ) -> Result<Recovered> {
        each!(self, p => p.recover(c, cursor, count, not_after).await)
    }

    async fn listed(&self, c: &Consumer) -> Result<Option<Vec<Vec<u8>>>> {
        each!(self, p => p.listed(c).await)
    }

    async fn return_orphans(
        &self,
        c: &Consumer,
        listed: Vec<Vec<u8>>,
        held: Vec<Bytes>,
    ) -> Result<u64> {
        each!(self, p => p.return_orphans(c, listed, held).await)
    }

    async fn ack(&self, c: &Consumer, receipts: &[Bytes]) -> Result<()> {
        each!(self, p => p.ack(c, receipts).await)
    }

    async fn retry(
        &self,
        c: &Consumer,
        receipt: &[u8],
        id: &str,
        next_attempt: u32,
        due_ms: u64,
    ) -> Result<()> {
        each!(self, p => p.retry(c, receipt, id, next_attempt, due_ms).await)
    }

    async fn dead(
        &self,
        c: &Consumer,
        receipt: &[u8],
        id: &str,
        attempts: u32,
        reason: &str,
    ) -> Result<bool> {
        each!(self, p => p.dead(c, receipt, id, attempts, reason).await)
    }

    fn trims(&self) -> bool {
        each!(self, p => p.trims())
    }

    async fn trim(&self) -> Result<()> {
        each!(self, p => p.trim().await)
    }

    async fn renew(&self, c: &Consumer, receipts: &[Bytes]) -> Result<()> {
        each!(self, p => p.renew(c, receipts).await)
    }

    async fn reap(&self, c: &Consumer, overdue: &[String], not_after: u64) -> Result<Reaped> {
        each!(self, p => p.reap(c, overdue, not_after).await)
    }

    async fn leave(&self, c: &Consumer) -> Result<bool> {
        each!(self, p => p.leave(c).await)
    }
}
