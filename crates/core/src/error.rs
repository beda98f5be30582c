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
            Error::PayloadTooLarge { .. } => "ERR_HOLDFAST_PAYLOAD_TOO_LARGE",
            Error::WrongType { .. } => "ERR_HOLDFAST_WRONG_TYPE",
            Error::Closed => "ERR_HOLDFAST_CLOSED",
            Error::Redis { .. } => "ERR_HOLDFAST_REDIS",
        }
    }

    /// True when the error means the connection itself is unusable and should be rebuilt.
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection(_))
    }

    /// True when Redis replied with this error code (`NOGROUP`, `BUSYGROUP`, ...).
    pub fn is_server_code(&self, want: &str) -> bool {
        matches!(self, Error::Redis { code, .. } if code == want)
    }

    /// Maps a redis-crate error, naming the key the command touched when Redis says WRONGTYPE.
    pub(crate) fn from_redis(err: redis::RedisError, key: &str) -> Self {
        let text = redact(&err.to_string());
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.kind() == redis::ErrorKind::AuthenticationFailed
        {
            return Error::Connection(text);
        }
        // A pipeline's error has no code of its own: the first failed command's is the one.
        let code = match err.code() {
            Some(code) => Some(code.to_owned()),
            None => err
                .into_server_errors()
                .and_then(|errors| errors.first().map(|(_, e)| e.code().to_owned())),
        };
        match code {
            Some(code) => Self::server(&server_code(&code, &text), text, key),
            None => Error::Redis {
                code: String::new(),
                message: text,
            },
        }
    }

    /// The same mapping for an error reply read off the wire (`resp.rs`): `msg` is the reply's
    /// text, e.g. `WRONGTYPE Operation against a key ...`.
    pub(crate) fn from_reply(msg: &str, key: &str) -> Self {
        let code = msg.split(' ').next().unwrap_or("");
        Self::server(&server_code(code, msg), redact(msg), key)
    }

    /// One mapping of a server error code for both readers.
    fn server(code: &str, message: String, key: &str) -> Self {
        match code {
            "WRONGTYPE" => Error::WrongType {
                key: key.to_owned(),
            },
            "LOADING" | "NOAUTH" | "WRONGPASS" => Error::Connection(message),
            _ => Error::Redis {
                code: code.to_owned(),
                message,
            },
        }
    }
}

/// Before Redis 7, an error raised by `redis.call` inside a script comes back as
/// `ERR Error running script (...): @user_script:1: WRONGTYPE ...`: the code that matters is
/// the inner one.
fn server_code(code: &str, text: &str) -> String {
    if code == "ERR" {
        if let Some(at) = text.find("@user_script:") {
            let inner = text[at..].split(": ").nth(1).unwrap_or("");
            let word = inner.split(' ').next().unwrap_or("");
            if !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase()) {
                return word.to_owned();
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
        assert!(nogroup.is_server_code("NOGROUP"), "{nogroup:?}");
        assert!(nogroup.to_string().contains("NOGROUP No such key"));
    }

    #[test]
    fn script_errors_of_redis_6_carry_the_inner_code() {
        let text = "ERR Error running script (call to f_1): @user_script:12: WRONGTYPE Operation \
                    against a key holding the wrong kind of value";
        assert_eq!(server_code("ERR", text), "WRONGTYPE");
        assert_eq!(server_code("ERR", "ERR unknown command"), "ERR");
        assert_eq!(server_code("NOGROUP", "NOGROUP No such key"), "NOGROUP");
    }
}
