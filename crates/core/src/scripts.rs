//! The Lua scripts, one per atomic operation, loaded once. `invoke_async` runs EVALSHA and
//! falls back to loading the script on NOSCRIPT (after a Redis restart or failover). Scripts
//! that read or write envelopes or dead letters get `lua/lib/*.lua` prepended.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal $(, $lib:literal)*) => {
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!($(include_str!(concat!("../lua/lib/", $lib)), "\n",)* include_str!(concat!("../lua/", $file))))
        });
    };
}

script!(ADD, "add.lua", "envelope.lua", "stream.lua");
script!(PROMOTE, "promote.lua", "envelope.lua", "stream.lua");

script!(TRIM, "stream_trim.lua");
script!(RETRY, "stream_retry.lua", "envelope.lua", "stream.lua");
script!(DEAD, "stream_dead.lua", "stream.lua", "dead.lua");
script!(RECOVER, "stream_recover.lua", "stream.lua", "dead.lua");
script!(REAP, "stream_reap.lua");
script!(STATS, "stream_stats.lua");
script!(DEAD_RETRY, "stream_dead_retry.lua", "stream.lua");

script!(LIST_FETCH, "list_fetch.lua");
script!(
    LIST_REQUEUE_WORKER,
    "list_requeue_worker.lua",
    "envelope.lua",
    "dead.lua"
);
script!(LIST_RETRY, "list_retry.lua");
script!(LIST_DEAD, "list_dead.lua", "dead.lua");
script!(LIST_RECLAIM, "list_reclaim.lua");
script!(LIST_DEAD_RETRY, "list_dead_retry.lua", "envelope.lua");
script!(LIST_DEAD_PAGE, "list_dead_page.lua");
