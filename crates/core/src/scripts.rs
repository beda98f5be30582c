//! The Lua scripts, one per atomic operation, loaded once. [`crate::conn::Conn::invoke`] runs
//! EVALSHA and loads the script on NOSCRIPT (after a Redis restart or failover). Each script gets
//! the `lua/lib/*.lua` files it uses prepended, in the order listed here.
//!
//! `add`, `promote` and `dead_retry` are shared by both modes: each mode's copy is the same
//! script with that mode's `lib/push_<mode>.lua` (how a job is put where workers fetch it), so
//! no script asks which mode it runs in.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal $(, $lib:literal)*) => {
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!($(include_str!(concat!("../lua/lib/", $lib)), "\n",)* include_str!(concat!("../lua/", $file))))
        });
    };
}

// Both modes.
script!(HEARTBEAT, "heartbeat.lua", "time.lua");
script!(DEAD_PURGE, "dead_purge.lua");
script!(SCHEDULER_RELEASE, "scheduler_release.lua");

// Stream mode.
script!(
    STREAM_ADD,
    "add.lua",
    "envelope.lua",
    "delay.lua",
    "stream.lua",
    "push_stream.lua"
);
script!(
    STREAM_PROMOTE,
    "promote.lua",
    "time.lua",
    "envelope.lua",
    "stream.lua",
    "push_stream.lua"
);
script!(
    STREAM_DEAD_RETRY,
    "dead_retry.lua",
    "envelope.lua",
    "stream.lua",
    "push_stream.lua"
);
script!(STREAM_GROUP, "stream_group.lua");
script!(STREAM_STATS, "stream_stats.lua", "time.lua");
script!(STREAM_TRIM, "stream_trim.lua");
script!(
    STREAM_RETRY,
    "stream_retry.lua",
    "envelope.lua",
    "stream.lua",
    "delay.lua"
);
script!(STREAM_DEAD, "stream_dead.lua", "stream.lua", "dead.lua");
script!(
    STREAM_RECOVER,
    "stream_recover.lua",
    "time.lua",
    "stream.lua",
    "dead.lua"
);
script!(STREAM_REAP, "stream_reap.lua", "time.lua");

// List mode.
script!(
    LIST_ADD,
    "add.lua",
    "envelope.lua",
    "delay.lua",
    "push_list.lua"
);
script!(
    LIST_PROMOTE,
    "promote.lua",
    "time.lua",
    "envelope.lua",
    "push_list.lua"
);
script!(
    LIST_DEAD_RETRY,
    "dead_retry.lua",
    "envelope.lua",
    "stream.lua",
    "push_list.lua"
);
script!(LIST_FETCH, "list_fetch.lua");
script!(LIST_RETRY, "list_retry.lua", "delay.lua");
script!(LIST_DEAD, "list_dead.lua", "dead.lua");
script!(LIST_RETURN_ORPHANS, "list_return_orphans.lua");
script!(
    LIST_REAP,
    "list_reap.lua",
    "time.lua",
    "envelope.lua",
    "dead.lua"
);
