//! Errors of the core. Each variant has a stable code that the binding passes on to JS unchanged.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad option or argument; the message says which and what is allowed.
    InvalidArgument(String),
    /// Redis could not be reached, or the connection broke. Retrying later may succeed.
    Connection(String),
    /// Redis refused the credentials (none given where it needs a password, or wrong ones).
    /// Handled like a lost connection: workers back off and try again.
    Auth(String),
    /// Redis is at `maxmemory` with a policy that evicts nothing: it refuses writes (new jobs)
    /// until memory is freed.
    RedisFull(String),
    /// An add that Redis took but whose durability (`durable` option) was not confirmed in
    /// time; the job may still be in Redis. Also a server that cannot confirm at all (no
    /// `WAITAOF`, or `appendonly no`), at first use, before anything is added.
    NotDurable(String),
    /// A payload larger than `maxPayloadBytes`.
    PayloadTooLarge { size: usize, limit: usize },
    /// A key of the queue holds a value of another type (someone else's data is at that key).
    WrongType { key: String },
    /// The queue or worker was closed before the call.
    Closed,
    /// Any other error Redis returned: its code (`NOGROUP`, `OOM`, `ERR`, ...; empty when the
    /// client, not the server, failed) and its message.
    Redis { code: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The stable code JS callers can switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "ERR_HOLDFAST_INVALID_ARGUMENT",
            Error::Connection(_) => "ERR_HOLDFAST_CONNECTION",
            Error::Auth(_) => "ERR_HOLDFAST_AUTH",
            Error::RedisFull(_) => "ERR_HOLDFAST_REDIS_FULL",
            Error::NotDurable(_) => "ERR_HOLDFAST_NOT_DURABLE",
            Error::PayloadTooLarge { .. } => "ERR_HOLDFAST_PAYLOAD_TOO_LARGE",
            Error::WrongType { .. } => "ERR_HOLDFAST_WRONG_TYPE",
            Error::Closed => "ERR_HOLDFAST_CLOSED",
            Error::Redis { .. } => "ERR_HOLDFAST_REDIS",
        }
    }

    /// True when the error means the connection itself is unusable and should be rebuilt.
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection(_) | Error::Auth(_))
    }

    /// True when Redis replied with this error code (`NOGROUP`, `BUSYGROUP`, ...).
    pub fn is_server_code(&self, want: &str) -> bool {
        matches!(self, Error::Redis { code, .. } if code == want)
    }

    /// Maps a redis-crate error, naming the key the command touched when Redis says WRONGTYPE.
    pub(crate) fn from_redis(err: redis::RedisError, key: &str) -> Self {
        if err.kind() == redis::ErrorKind::AuthenticationFailed {
            return Error::Auth(bounded(redact(&err.to_string())));
        }
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
        {
            return Error::Connection(bounded(redact(&err.to_string())));
        }
        let client_side = bounded(redact(&err.to_string()));
        let code = err.code().map(str::to_owned);
        // A server error, a pipeline's or an aborted transaction's (EXECABORT): the first failed
        // command's code is the one, and its text stands for all (an OOM reply to 500 adds
        // would otherwise list 500 of them).
        if let Some(errors) = err.into_server_errors() {
            if let Some((_, first)) = errors.first() {
                let mut text = format!("{} {}", first.code(), first.details().unwrap_or_default());
                if errors.len() > 1 {
                    text.push_str(&format!(
                        " (and {} more commands of the same pipeline failed)",
                        errors.len() - 1
                    ));
                }
                let text = bounded(redact(&text));
                return Self::server(&server_code(first.code(), &text), text, key);
            }
        }
        match code {
            Some(code) => Self::server(&server_code(&code, &client_side), client_side, key),
            None => Error::Redis {
                code: String::new(),
                message: client_side,
            },
        }
    }

    /// The same mapping for an error reply read off the wire (`resp.rs`): `msg` is the reply's
    /// text, e.g. `WRONGTYPE Operation against a key ...`.
    pub(crate) fn from_reply(msg: &str, key: &str) -> Self {
        let code = msg.split(' ').next().unwrap_or("");
        Self::server(&server_code(code, msg), bounded(redact(msg)), key)
    }

    /// One mapping of a server error code for both readers.
    fn server(code: &str, message: String, key: &str) -> Self {
        match code {
            "WRONGTYPE" => Error::WrongType {
                key: key.to_owned(),
            },
            "LOADING" => Error::Connection(message),
            // a Redis Cluster's slot is elsewhere (or moving): a blocking loop reconnects to the
            // owner; a short command has followed redirects for a while already
            "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" => Error::Connection(format!(
                "{message} (a Redis Cluster redirect: without the cluster option holdfast cannot follow it; with it, the slot is moving or failing over)"
            )),
            "NOAUTH" | "WRONGPASS" => Error::Auth(message),
            // from the inner code on: Redis 6 wraps a script's refusal in the script's name
            "OOM" => Error::RedisFull(match message.find("OOM ") {
                Some(at) => message[at..].to_owned(),
                None => message,
            }),
            _ => Error::Redis {
                code: code.to_owned(),
                message,
            },
        }
    }
}

/// Before Redis 7, an error raised by `redis.call` inside a script comes back as
/// `ERR Error running script (...): @user_script:1: WRONGTYPE ...`, or for a command refused
/// there, `... @user_script:1: @user_script: 1: -OOM command not allowed ...`: the code that
/// matters is the inner one.
fn server_code(code: &str, text: &str) -> String {
    if code == "ERR" {
        if let Some(at) = text.find("@user_script:") {
            for part in text[at..].split(": ").skip(1) {
                let word = part.trim_start_matches('-').split(' ').next().unwrap_or("");
                if word.len() > 1 && word.bytes().all(|b| b.is_ascii_uppercase()) {
                    return word.to_owned();
                }
            }
        }
    }
    code.to_owned()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(msg) => write!(f, "{msg}"),
            Error::Connection(msg) => write!(
                f,
                "cannot reach Redis: {msg}. Check that the server runs and the url is right; \
                 holdfast reconnects on its own once it is back"
            ),
            Error::Auth(msg) => write!(
                f,
                "Redis refused the credentials ({msg}). Give them in the url: \
                 redis://[user]:password@host:port; holdfast keeps retrying, with backoff"
            ),
            Error::RedisFull(msg) => write!(
                f,
                "Redis is out of memory and refuses writes ({msg}): jobs cannot be added until \
                 workers drain the queue or maxmemory is raised"
            ),
            Error::NotDurable(msg) => write!(f, "{msg}"),
            Error::PayloadTooLarge { size, limit } => write!(
                f,
                "payload is {size} bytes, over the {limit}-byte limit; store large data elsewhere \
                 and enqueue a reference, or raise maxPayloadBytes"
            ),
            Error::WrongType { key } => write!(
                f,
                "Redis key \"{key}\" holds a value of another type; another program uses that key. \
                 Pick another queue name or prefix, or delete the key"
            ),
            Error::Closed => write!(f, "this queue or worker is closed; create a new one"),
            Error::Redis { message, .. } => write!(f, "Redis error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// Longest message text kept from Redis or the client: replies can be long (a script's error
/// with its source, a pipeline's list of failures).
const MAX_MESSAGE: usize = 500;

/// `msg`, cut to `MAX_MESSAGE` bytes on a character boundary.
fn bounded(mut msg: String) -> String {
    if msg.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
        msg.push_str("...");
    }
    msg
}

/// Removes anything that looks like credentials (`user:pass@`) from a message.
pub fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for word in msg.split_inclusive(char::is_whitespace) {
        match (word.find("://"), word.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                out.push_str(&word[..scheme + 3]);
                out.push_str("***@");
                out.push_str(&word[at + 1..]);
            }
            _ => out.push_str(word),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials() {
        assert_eq!(
            redact("failed redis://user:secret@host:6379/0 now"),
            "failed redis://***@host:6379/0 now"
        );
        assert_eq!(redact("no url here"), "no url here");
    }

    #[test]
    fn error_replies_map_like_the_redis_crates_errors() {
        let wrong = Error::from_reply("WRONGTYPE Operation against a key", "q:stream");
        assert_eq!(
            wrong,
            Error::WrongType {
                key: "q:stream".into()
            }
        );
        assert!(Error::from_reply("LOADING Redis is loading", "").is_connection());
        let noauth = Error::from_reply("NOAUTH Authentication required.", "");
        assert_eq!(noauth.code(), "ERR_HOLDFAST_AUTH");
        assert!(noauth.is_connection(), "retried like a lost connection");
        assert_eq!(
            Error::from_reply(
                "OOM command not allowed when used memory > 'maxmemory'.",
                ""
            )
            .code(),
            "ERR_HOLDFAST_REDIS_FULL"
        );
        let long = Error::from_reply(&format!("ERR {}", "x".repeat(5000)), "");
        assert!(long.to_string().len() < 600, "{}", long.to_string().len());
        let nogroup = Error::from_reply("NOGROUP No such key", "k");
        assert!(nogroup.is_server_code("NOGROUP"), "{nogroup:?}");
        assert!(nogroup.to_string().contains("NOGROUP No such key"));
    }

    #[test]
    fn script_errors_of_redis_6_carry_the_inner_code() {
        let text = "ERR Error running script (call to f_1): @user_script:12: WRONGTYPE Operation \
                    against a key holding the wrong kind of value";
        assert_eq!(server_code("ERR", text), "WRONGTYPE");
        let text = "ERR Error running script (call to f_1): @user_script:88: @user_script: 88: \
                    -OOM command not allowed when used memory > 'maxmemory'.";
        assert_eq!(server_code("ERR", text), "OOM");
        assert_eq!(server_code("ERR", "ERR unknown command"), "ERR");
        assert_eq!(server_code("NOGROUP", "NOGROUP No such key"), "NOGROUP");
    }
}
