//! Wake-ups across processes, so an idle worker need not poll. A queue's scripts PUBLISH `d` on
//! its `events` channel when a job becomes the earliest in `delayed` (`lua/lib/delay.lua`),
//! `pause()` / `resume()` publish `p`, and a worker giving up the scheduler lease `l`
//! (`lua/scheduler_release.lua`). One subscriber connection per process per Redis server
//! hears every queue's channel and wakes that queue's workers here.
//!
//! Best effort by design: a message is lost while the subscriber reconnects (it then wakes every
//! listener, which looks for itself), and a user whose ACL grants no channels gets none. So each
//! listener knows whether the subscriber is [`Listener::live`]: while it is, schedulers and pause
//! checks look rarely; while it is not, they poll as often as they did before this existed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::net::Endpoint;
use crate::resp::RespConn;
use crate::util::Backoff;

/// A subscribed connection is pinged this often, so a dead one is noticed.
const PING_EVERY: Duration = Duration::from_secs(30);
/// After a NOPERM (the ACL grants no channel), try again this rarely.
const DENIED_RETRY: Duration = Duration::from_secs(60);

/// What a queue's workers wait on. `Notify` keeps one permit, so a wake-up that comes while
/// nobody waits is not lost.
#[derive(Default)]
pub(crate) struct Wakers {
    /// A job may have become due sooner than the scheduler thought.
    pub delayed: Notify,
    /// The paused flag may have changed.
    pub pause: Notify,
    /// The worker holding the scheduler lease gave it up.
    pub lease: Notify,
}

impl Wakers {
    fn wake_all(&self) {
        self.delayed.notify_one();
        self.pause.notify_one();
        self.lease.notify_one();
    }
}

/// One worker's subscription to its queue's channel; dropping it unsubscribes.
pub(crate) struct Listener {
    hub: Arc<Hub>,
    channel: String,
    pub wakers: Arc<Wakers>,
}

impl Listener {
    /// Whether the subscriber is connected and subscribed: wake-ups will come.
    pub fn live(&self) -> bool {
        self.hub.live.load(Ordering::Acquire)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().unwrap();
        if let Some(list) = channels.get_mut(&self.channel) {
            list.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), &*self.wakers));
            if list.is_empty() {
                channels.remove(&self.channel);
            }
        }
        drop(channels);
        self.hub.changed.notify_one();
    }
}

struct Hub {
    key: String,
    endpoint: Endpoint,
    channels: Mutex<HashMap<String, Vec<Weak<Wakers>>>>,
    /// A listener came or went.
    changed: Notify,
    live: AtomicBool,
    /// The task ended (no listener was left); a new listener needs a new hub.
    ended: AtomicBool,
    /// The task, which also ends with the runtime it was spawned on (tests run one per test).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Hub {
    fn serving(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
            && self
                .task
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|t| !t.is_finished())
    }
}

static HUBS: LazyLock<Mutex<HashMap<String, Arc<Hub>>>> = LazyLock::new(Default::default);

/// Subscribes to `channel` on the process's subscriber for `endpoint` (started on first use,
/// within the caller's tokio runtime).
pub(crate) fn listen(endpoint: &Endpoint, channel: &str) -> Listener {
    let key = endpoint.identity();
    let wakers = Arc::new(Wakers::default());
    let mut hubs = HUBS.lock().unwrap();
    let hub = match hubs.get(&key) {
        Some(hub) if hub.serving() => hub.clone(),
        _ => {
            let hub = Arc::new(Hub {
                key: key.clone(),
                endpoint: endpoint.clone(),
                channels: Mutex::default(),
                changed: Notify::new(),
                live: AtomicBool::new(false),
                ended: AtomicBool::new(false),
                task: Mutex::new(None),
            });
            hubs.insert(key, hub.clone());
            *hub.task.lock().unwrap() = Some(tokio::spawn(run(hub.clone())));
            hub
        }
    };
    hub.channels
        .lock()
        .unwrap()
        .entry(channel.to_owned())
        .or_default()
        .push(Arc::downgrade(&wakers));
    drop(hubs);
    hub.changed.notify_one();
    Listener {
        hub,
        channel: channel.to_owned(),
        wakers,
    }
}

async fn run(hub: Arc<Hub>) {
    let mut backoff = Backoff::default();
    loop {
        if hub.retire() {
            return;
        }
        let res = subscribed(&hub, &mut backoff).await;
        hub.live.store(false, Ordering::Release);
        if hub.ended.load(Ordering::Acquire) {
            return;
        }
        let wait = match res {
            Err(e) if e.to_string().contains("NOPERM") => DENIED_RETRY,
            _ => backoff.next(),
        };
        // messages may have been missed: everyone looks for themselves
        hub.wake_all();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = hub.changed.notified() => {}
        }
    }
}

/// One connection's life: subscribe to every channel wanted, keep the set in step with the
/// listeners, and pass each message on. Returns when the connection fails or no listener is left.
async fn subscribed(hub: &Hub, backoff: &mut Backoff) -> crate::error::Result<()> {
    let mut conn = RespConn::connect(&hub.endpoint, PING_EVERY + Duration::from_secs(10)).await?;
    let mut subscribed: Vec<String> = Vec::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let wanted: Vec<String> = hub.channels.lock().unwrap().keys().cloned().collect();
        if wanted.is_empty() && hub.retire() {
            return Ok(());
        }
        let add: Vec<&String> = wanted.iter().filter(|c| !subscribed.contains(c)).collect();
        if !add.is_empty() {
            let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            args.extend(add.iter().map(|c| c.as_bytes()));
            conn.send(&args).await?;
        }
        let gone: Vec<&String> = subscribed.iter().filter(|c| !wanted.contains(c)).collect();
        if !gone.is_empty() {
            let mut args: Vec<&[u8]> = vec![b"UNSUBSCRIBE"];
            args.extend(gone.iter().map(|c| c.as_bytes()));
            conn.send(&args).await?;
        }
        subscribed = wanted;
        tokio::select! {
            push = conn.push() => {
                let push = push?;
                match push.first().map(|k| k.as_slice()) {
                    Some(b"message") if push.len() == 3 => {
                        let channel = String::from_utf8_lossy(&push[1]);
                        hub.wake(&channel, &push[2]);
                    }
                    Some(b"subscribe") if push.len() == 3 => {
                        // from here on no message on it is missed: its listeners catch up on
                        // what they may have missed before
                        backoff.reset();
                        hub.live.store(true, Ordering::Release);
                        hub.wake(&String::from_utf8_lossy(&push[1]), b"");
                    }
                    _ => {}
                }
            }
            _ = hub.changed.notified() => {}
            _ = ping.tick() => conn.send(&[b"PING"]).await?,
        }
    }
}

impl Hub {
    fn wake(&self, channel: &str, what: &[u8]) {
        let channels = self.channels.lock().unwrap();
        for w in channels.get(channel).into_iter().flatten() {
            if let Some(w) = w.upgrade() {
                match what {
                    b"d" => w.delayed.notify_one(),
                    b"p" => w.pause.notify_one(),
                    b"l" => w.lease.notify_one(),
                    _ => w.wake_all(),
                }
            }
        }
    }

    fn wake_all(&self) {
        let channels = self.channels.lock().unwrap();
        for w in channels.values().flatten().filter_map(Weak::upgrade) {
            w.wake_all();
        }
    }

    /// Ends the hub when no listener is left (under the registry's lock, so a new listener
    /// either finds this hub still serving or makes a new one).
    fn retire(&self) -> bool {
        let mut hubs = HUBS.lock().unwrap();
        if !self.channels.lock().unwrap().is_empty() {
            return false;
        }
        self.ended.store(true, Ordering::Release);
        if hubs
            .get(&self.key)
            .is_some_and(|h| std::ptr::eq(Arc::as_ptr(h), self))
        {
            hubs.remove(&self.key);
        }
        true
    }
}
