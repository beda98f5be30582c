//! Waiting for jobs that other processes run: `Queue::wait_for` and `Queue::get_job`'s first
//! look. A job added with `keep_outcome_ms` gets its outcome recorded when it finishes
//! (`outcome:<id>` = `c` + result or `d` + error, for that long) and its id put on the short
//! `outcomes` stream (acker.rs `record_outcomes`, lua/lib/dead.lua `hf_outcome`).
//!
//! One reader per queue object, started by the first waiter and ended when none is left,
//! blocks on the `outcomes` stream on a connection of its own and wakes the waiters of the ids
//! it reads. No outcome is missed: the reader, on every (re)connect, takes the stream's last id
//! as its cursor and then reads the key of every waiter; a waiter reads its key after it is
//! registered. An outcome written before either read is found by it; one written after both
//! comes after the cursor (the key is written before the id is added).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::oneshot;

use crate::conn::{dedicated, Conn};
use crate::error::{Error, Result};
use crate::job::{array, as_bytes, as_str};
use crate::keys::QueueKeys;
use crate::util::Backoff;

/// How long one blocking read waits; the reader ends after a read with no waiter left.
const BLOCK: Duration = Duration::from_secs(2);

/// How a job that keeps its outcome finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The handler's result, encoded as it returned it (empty when it returned nothing).
    Completed(Bytes),
    /// Dead-lettered, with the last error.
    Dead(String),
}

impl JobOutcome {
    /// An `outcome:<id>` value.
    pub(crate) fn parse(record: &[u8]) -> Option<Self> {
        match record.split_first()? {
            (b'c', rest) => Some(JobOutcome::Completed(Bytes::copy_from_slice(rest))),
            (b'd', rest) => Some(JobOutcome::Dead(String::from_utf8_lossy(rest).into_owned())),
            _ => None,
        }
    }
}

type Waiters = HashMap<String, Vec<oneshot::Sender<JobOutcome>>>;

pub(crate) struct Outcomes {
    conn: Conn,
    keys: QueueKeys,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    waiters: Waiters,
    reading: bool,
}

impl Outcomes {
    pub fn new(conn: Conn, keys: QueueKeys) -> Self {
        Self {
            conn,
            keys,
            state: Arc::default(),
        }
    }

    /// The recorded outcome of a job, if it keeps one and it has finished.
    pub async fn get(&self, id: &str) -> Result<Option<JobOutcome>> {
        let key = self.keys.outcome(id);
        let cmd = redis::cmd("GET").arg(&key).to_owned();
        let record: Option<Vec<u8>> = self.conn.query(&key, &cmd).await?;
        Ok(record.as_deref().and_then(JobOutcome::parse))
    }

    /// Waits up to `timeout` for the outcome of job `id`; None when it did not come in time.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<JobOutcome>> {
        let (tx, mut rx) = oneshot::channel();
        {
            let mut s = self.state.lock().unwrap();
            s.waiters.entry(id.to_owned()).or_default().push(tx);
            if !s.reading {
                s.reading = true;
                tokio::spawn(read(
                    self.conn.clone(),
                    self.keys.clone(),
                    self.state.clone(),
                ));
            }
        }
        let found = tokio::time::timeout(timeout, async {
            match self.get(id).await {
                Ok(Some(outcome)) => Ok(Some(outcome)),
                Ok(None) => Ok((&mut rx).await.ok()),
                // the reader keeps trying; a waiter whose own read failed still hears from it
                Err(e) if e.is_connection() => Ok((&mut rx).await.ok()),
                Err(e) => Err(e),
            }
        })
        .await;
        // this waiter's sender goes (the others of the same id stay)
        drop(rx);
        self.forget_closed(id);
        match found {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    fn forget_closed(&self, id: &str) {
        let mut s = self.state.lock().unwrap();
        if let Some(list) = s.waiters.get_mut(id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                s.waiters.remove(id);
            }
        }
    }
}

/// Hands an outcome to every waiter of `id`.
fn wake(state: &Mutex<State>, id: &str, outcome: &JobOutcome) {
    let senders = state.lock().unwrap().waiters.remove(id).unwrap_or_default();
    for tx in senders {
        let _ = tx.send(outcome.clone());
    }
}

/// The reader: until no waiter is left, blocks on the `outcomes` stream and wakes the waiters
/// of what it reads; reconnects with backoff, sweeping every waiter's key each time.
async fn read(conn: Conn, keys: QueueKeys, state: Arc<Mutex<State>>) {
    let mut backoff = Backoff::default();
    'connect: loop {
        if stop_if_idle(&state) {
            return;
        }
        let (mut link, mut cursor) = match connect(&conn, &keys).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        if sweep(&mut link, &keys, &state).await.is_err() {
            tokio::time::sleep(backoff.next()).await;
            continue;
        }
        backoff.reset();
        loop {
            if stop_if_idle(&state) {
                return;
            }
            let cmd = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&keys.outcomes)
                .arg(&cursor)
                .to_owned();
            let reply: Value = match cmd.query_async(&mut link).await {
                Ok(v) => v,
                Err(_) => continue 'connect,
            };
            let mut ids = Vec::new();
            for stream in array(reply) {
                let mut parts = array(stream).into_iter();
                let entries = parts.nth(1).map(array).unwrap_or_default();
                for entry in entries {
                    let mut e = array(entry).into_iter();
                    let (Some(entry_id), Some(fields)) = (e.next(), e.next()) else {
                        continue;
                    };
                    if let Some(eid) = as_str(&entry_id) {
                        cursor = eid.into_owned();
                    }
                    // an entry holds one `id` field per job of the batch that recorded it
                    for pair in array(fields).chunks_exact(2) {
                        if as_str(&pair[0]).as_deref() == Some("id") {
                            if let Some(id) = as_str(&pair[1]) {
                                ids.push(id.into_owned());
                            }
                        }
                    }
                }
            }
            let wanted: Vec<String> = {
                let s = state.lock().unwrap();
                ids.into_iter()
                    .filter(|id| s.waiters.contains_key(id))
                    .collect()
            };
            if !wanted.is_empty()
                && fetch_and_wake(&mut link, &keys, &state, &wanted)
                    .await
                    .is_err()
            {
                continue 'connect;
            }
        }
    }
}

/// Ends the reader when no waiter is left (under the lock that `wait` starts one under).
fn stop_if_idle(state: &Mutex<State>) -> bool {
    let mut s = state.lock().unwrap();
    if s.waiters.is_empty() {
        s.reading = false;
        return true;
    }
    false
}

/// A connection of the reader's own, and the stream's last id as its cursor.
async fn connect(conn: &Conn, keys: &QueueKeys) -> Result<(MultiplexedConnection, String)> {
    let mut link = dedicated(conn.endpoint(), BLOCK).await?;
    let last: Value = redis::cmd("XREVRANGE")
        .arg(&keys.outcomes)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut link)
        .await
        .map_err(|e| Error::from_redis(e, &keys.outcomes))?;
    let cursor = array(last)
        .into_iter()
        .next()
        .and_then(|e| array(e).into_iter().next())
        .and_then(|id| as_str(&id).map(|s| s.into_owned()))
        .unwrap_or_else(|| "0-0".to_owned());
    Ok((link, cursor))
}

/// Reads the key of every waiter: what finished before the cursor was taken.
async fn sweep(
    link: &mut MultiplexedConnection,
    keys: &QueueKeys,
    state: &Mutex<State>,
) -> Result<()> {
    let ids: Vec<String> = state.lock().unwrap().waiters.keys().cloned().collect();
    for chunk in ids.chunks(500) {
        fetch_and_wake(link, keys, state, chunk).await?;
    }
    Ok(())
}

async fn fetch_and_wake(
    link: &mut MultiplexedConnection,
    keys: &QueueKeys,
    state: &Mutex<State>,
    ids: &[String],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("GET").arg(keys.outcome(id));
    }
    let records: Vec<Value> = pipe
        .query_async(link)
        .await
        .map_err(|e| Error::from_redis(e, &keys.outcomes))?;
    for (id, record) in ids.iter().zip(records) {
        if let Some(outcome) = as_bytes(&record).and_then(|r| JobOutcome::parse(&r)) {
            wake(state, id, &outcome);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        assert_eq!(
            JobOutcome::parse(b"c{\"ok\":1}"),
            Some(JobOutcome::Completed(Bytes::from_static(b"{\"ok\":1}")))
        );
        assert_eq!(
            JobOutcome::parse(b"c"),
            Some(JobOutcome::Completed(Bytes::new()))
        );
        assert_eq!(
            JobOutcome::parse(b"dboom"),
            Some(JobOutcome::Dead("boom".into()))
        );
        assert_eq!(JobOutcome::parse(b""), None);
        assert_eq!(JobOutcome::parse(b"x"), None);
    }
}
