//! Errors of the core. Each variant has a stable code that the binding passes on to JS unchanged.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad option or argument; the message says which and what is allowed.
    InvalidArgument(String),
    /// Redis could not be reached, or the connection broke. Retrying later may succeed.
    Connection(String),
    /// A payload larger than `maxPayloadBytes`.
    PayloadTooLarge { size: usize, limit: usize },
    /// A key of the queue holds a value of another type (someone else's data is at that key).
    WrongType { key: String },
    /// The queue or worker was closed before the call.
    Closed,
    /// Any other error Redis returned.
    Redis(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The stable code JS callers can switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "ERR_HOLDFAST_INVALID_ARGUMENT",
            Error::Connection(_) => "ERR_HOLDFAST_CONNECTION",
            Error::PayloadTooLarge { .. } => "ERR_HOLDFAST_PAYLOAD_TOO_LARGE",
            Error::WrongType { .. } => "ERR_HOLDFAST_WRONG_TYPE",
            Error::Closed => "ERR_HOLDFAST_CLOSED",
            Error::Redis(_) => "ERR_HOLDFAST_REDIS",
        }
    }

    /// True when the error means the connection itself is unusable and should be rebuilt.
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection(_))
    }

    /// Maps a redis-crate error, naming the key the command touched when Redis says WRONGTYPE.
    pub(crate) fn from_redis(err: redis::RedisError, key: &str) -> Self {
        let text = err.to_string();
        if err.code() == Some("WRONGTYPE") || text.contains("WRONGTYPE") {
            return Error::WrongType {
                key: key.to_owned(),
            };
        }
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.kind() == redis::ErrorKind::AuthenticationFailed
            || err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
        {
            return Error::Connection(redact(&text));
        }
        Error::Redis(redact(&text))
    }

    /// The same mapping for an error reply read off the wire (`resp.rs`): `msg` is the reply's
    /// text, e.g. `WRONGTYPE Operation against a key ...`.
    pub(crate) fn from_reply(msg: &str, key: &str) -> Self {
        let code = msg.split(' ').next().unwrap_or("");
        match code {
            "WRONGTYPE" => Error::WrongType {
                key: key.to_owned(),
            },
            "LOADING" | "NOAUTH" | "WRONGPASS" => Error::Connection(redact(msg)),
            _ => Error::Redis(redact(msg)),
        }
    }
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
            Error::Redis(msg) => write!(f, "Redis error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

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
        assert!(Error::from_reply("NOAUTH Authentication required.", "").is_connection());
        let nogroup = Error::from_reply("NOGROUP No such key", "k");
        assert!(matches!(&nogroup, Error::Redis(m) if m.starts_with("NOGROUP")));
    }
}
