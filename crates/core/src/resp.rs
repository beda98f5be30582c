//! A minimal RESP2 connection for stream mode's blocking `XREADGROUP`, the hottest reply in
//! the system. Parsing it with the redis crate (a generic parser building a `Value` tree, then
//! strings copied out of it) was ~20 % of the worker's CPU in a drain profile; here the reply
//! is parsed straight into jobs. The connection belongs to the fetch loop alone, one command
//! at a time, so there is no multiplexing to do. Everything else keeps using the redis crate.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::job::{self, Job};
use crate::net::{io_error, timed, Endpoint, Io, CONNECT_TIMEOUT};

pub(crate) struct RespConn {
    io: Box<dyn Io>,
    /// Unparsed input is `buf[..filled]`.
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
    /// Longest wait for a reply: the block time plus a margin.
    response_timeout: Duration,
    pub client_id: i64,
}

/// A reply that is not (yet) a job batch.
#[derive(Debug, PartialEq)]
enum Reply {
    Ok,
    Int(i64),
}

impl RespConn {
    /// Connects through the endpoint (TCP or a unix socket, TLS; AUTH, SELECT), then asks for
    /// this connection's CLIENT ID so it can be unblocked.
    pub async fn connect(endpoint: &Endpoint, response_timeout: Duration) -> Result<Self> {
        let io = endpoint.dial().await?;
        let mut conn = RespConn {
            io,
            buf: vec![0; 16 * 1024],
            filled: 0,
            out: Vec::with_capacity(256),
            response_timeout: CONNECT_TIMEOUT,
            client_id: -1,
        };
        let settings = endpoint.redis_settings();
        if let Some(password) = settings.password() {
            match settings.username() {
                Some(user) => conn.command(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => conn.command(&[b"AUTH", password.as_bytes()]),
            }
            conn.expect(Reply::Ok).await?;
        }
        if settings.db() != 0 {
            conn.command(&[b"SELECT", settings.db().to_string().as_bytes()]);
            conn.expect(Reply::Ok).await?;
        }
        if endpoint.is_sentinel() {
            conn.command(&[b"ROLE"]);
            conn.flush().await?;
            let role = conn.reply(role, "").await?;
            endpoint.check_role(&role)?;
        }
        conn.command(&[b"CLIENT", b"ID"]);
        conn.flush().await?;
        conn.client_id = match conn.reply(simple, "").await? {
            Reply::Int(id) => id,
            other => return Err(protocol(format!("CLIENT ID replied {other:?}"))),
        };
        conn.response_timeout = response_timeout;
        Ok(conn)
    }

    /// `XREADGROUP GROUP <group> <consumer> COUNT <count> BLOCK <ms> STREAMS <stream> >`.
    /// A timeout or CLIENT UNBLOCK gives no jobs.
    pub async fn xreadgroup(
        &mut self,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
        stream: &str,
    ) -> Result<Vec<Job>> {
        let (count, block) = (count.to_string(), block_ms.to_string());
        self.command(&[
            b"XREADGROUP",
            b"GROUP",
            group.as_bytes(),
            consumer.as_bytes(),
            b"COUNT",
            count.as_bytes(),
            b"BLOCK",
            block.as_bytes(),
            b"STREAMS",
            stream.as_bytes(),
            b">",
        ]);
        self.flush().await?;
        self.reply(xread_jobs, stream).await
    }

    /// Sends a command without waiting for its reply: on a subscribed connection replies come
    /// in the stream of pushes that [`RespConn::push`] reads.
    pub async fn send(&mut self, args: &[&[u8]]) -> Result<()> {
        self.command(args);
        self.flush().await
    }

    /// The next push of a subscribed connection, as its parts (`message`, channel, payload;
    /// `subscribe`, channel, count; `pong`, ..). Fails after the response timeout of silence.
    /// Cancel-safe: what was read stays buffered for the next call.
    pub async fn push(&mut self) -> Result<Vec<Vec<u8>>> {
        self.reply(parts, "").await
    }

    fn command(&mut self, args: &[&[u8]]) {
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.out
                .extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    async fn flush(&mut self) -> Result<()> {
        let res = timed(self.response_timeout, self.io.write_all(&self.out)).await;
        self.out.clear();
        res
    }

    async fn expect(&mut self, want: Reply) -> Result<()> {
        self.flush().await?;
        match self.reply(simple, "").await? {
            got if got == want => Ok(()),
            got => Err(protocol(format!("expected {want:?}, got {got:?}"))),
        }
    }

    /// Reads until one whole reply is buffered, then parses it with `parse`. `key` names the
    /// key the command touched, for a WRONGTYPE error.
    async fn reply<T>(&mut self, parse: fn(&mut Cursor) -> Parsed<T>, key: &str) -> Result<T> {
        let deadline = tokio::time::Instant::now() + self.response_timeout;
        let invalid = loop {
            match skip(&mut Cursor::new(&self.buf[..self.filled])) {
                Ok(()) => break None,
                Err(Incomplete::Need(n)) if n > self.buf.len() => {
                    // a large reply: make room for what the header says is coming
                    self.buf.resize(n.next_power_of_two(), 0);
                }
                Err(Incomplete::Need(_)) => {
                    if self.filled == self.buf.len() {
                        self.buf.resize(self.buf.len() * 2, 0);
                    }
                }
                Err(Incomplete::Invalid(msg)) => break Some(msg),
            }
            let read =
                tokio::time::timeout_at(deadline, self.io.read(&mut self.buf[self.filled..]))
                    .await
                    .map_err(|_| Error::Connection("timed out waiting for a reply".into()))?
                    .map_err(io_error)?;
            if read == 0 {
                return Err(Error::Connection("the connection was closed".into()));
            }
            self.filled += read;
        };
        if let Some(msg) = invalid {
            return Err(protocol(msg));
        }
        let mut cursor = Cursor::new(&self.buf[..self.filled]);
        let parsed = parse(&mut cursor);
        let used = cursor.pos;
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
        if self.buf.len() > 1 << 20 && self.filled < 16 * 1024 {
            self.buf.truncate(16 * 1024); // don't keep a huge buffer for one huge reply
            self.buf.shrink_to_fit();
        }
        parsed.map_err(|e| match e {
            Fail::Server(msg) => Error::from_reply(&msg, key),
            Fail::Protocol(msg) => protocol(msg),
        })
    }
}

/// A reply this connection cannot make sense of; the fetch loop drops the connection.
fn protocol(msg: String) -> Error {
    Error::Connection(format!("unexpected reply from Redis: {msg}"))
}

// ------------------------------------------------------------------------------------------
// Parsing. `skip` checks that a whole reply is buffered (cheap: bulk strings are skipped by
// length); the parsers then run once over it and can treat running out of input as invalid.
// ------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Incomplete {
    /// At least this many bytes in all are needed (a lower bound).
    Need(usize),
    Invalid(String),
}

#[derive(Debug, PartialEq)]
enum Fail {
    /// An error reply (`-ERR ...`).
    Server(String),
    Protocol(String),
}

type Parsed<T> = std::result::Result<T, Fail>;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// The type byte and the text up to CRLF, or None when the line is not all here yet.
    fn line(&mut self) -> Option<(u8, &'a [u8])> {
        let rest = &self.buf[self.pos..];
        let end = memchr_crlf(rest)?;
        self.pos += end + 2;
        Some((*rest.first()?, &rest[1..end]))
    }

    fn need_line(&mut self) -> Parsed<(u8, &'a [u8])> {
        self.line()
            .ok_or_else(|| Fail::Protocol("truncated reply".into()))
    }

    /// An array header: Some(len), or None for a nil array. Error replies become `Fail::Server`.
    fn array(&mut self) -> Parsed<Option<usize>> {
        match self.need_line()? {
            (b'*', n) => Ok(length(n)?),
            (b'-', msg) => Err(Fail::Server(String::from_utf8_lossy(msg).into_owned())),
            (b'$', b"-1") => Ok(None), // some servers send a nil bulk for "no data"
            (t, _) => Err(Fail::Protocol(format!(
                "expected an array, got '{}'",
                t as char
            ))),
        }
    }

    /// A bulk string (or simple string), None for nil.
    fn bulk(&mut self) -> Parsed<Option<&'a [u8]>> {
        match self.need_line()? {
            (b'$', n) => {
                let Some(n) = length(n)? else { return Ok(None) };
                let data = self
                    .buf
                    .get(self.pos..self.pos + n)
                    .ok_or_else(|| Fail::Protocol("truncated bulk string".into()))?;
                self.pos += n + 2;
                Ok(Some(data))
            }
            (b'+', s) => Ok(Some(s)),
            (b'-', msg) => Err(Fail::Server(String::from_utf8_lossy(msg).into_owned())),
            (t, _) => Err(Fail::Protocol(format!(
                "expected a string, got '{}'",
                t as char
            ))),
        }
    }
}

fn memchr_crlf(s: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let i = from + s[from..].iter().position(|&b| b == b'\r')?;
        match s.get(i + 1) {
            Some(b'\n') => return Some(i),
            Some(_) => from = i + 1,
            None => return None,
        }
    }
}

/// A length field: None for -1 (nil). Digits by hand: this runs several times per job.
fn length(digits: &[u8]) -> Parsed<Option<usize>> {
    if digits == b"-1" {
        return Ok(None);
    }
    let bad = || Fail::Protocol(format!("bad length {:?}", String::from_utf8_lossy(digits)));
    if digits.is_empty() || digits.len() > 12 {
        return Err(bad());
    }
    let mut n = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        n = n * 10 + (d - b'0') as usize;
    }
    Ok(Some(n))
}

/// `ROLE`'s first element (`master`, `slave`, `sentinel`); the rest is skipped.
fn role(c: &mut Cursor) -> Parsed<Vec<u8>> {
    let n = c
        .array()?
        .ok_or_else(|| Fail::Protocol("ROLE replied nil".into()))?;
    if n == 0 {
        return Err(Fail::Protocol("ROLE replied an empty array".into()));
    }
    let first = c.bulk()?.unwrap_or_default().to_vec();
    for _ in 1..n {
        skip(c).map_err(|_| Fail::Protocol("truncated ROLE reply".into()))?;
    }
    Ok(first)
}

/// An array of strings and integers (a pub/sub push), each as its bytes.
fn parts(c: &mut Cursor) -> Parsed<Vec<Vec<u8>>> {
    let n = c.array()?.unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = c.pos;
        match c.need_line()? {
            (b':', digits) => out.push(digits.to_vec()),
            _ => {
                c.pos = at;
                out.push(c.bulk()?.unwrap_or_default().to_vec());
            }
        }
    }
    Ok(out)
}

/// Skips one whole reply, or says how much more input it needs.
fn skip(c: &mut Cursor) -> std::result::Result<(), Incomplete> {
    let mut pending: usize = 1; // replies still to skip, nested arrays flattened
    while pending > 0 {
        let Some((t, text)) = c.line() else {
            return Err(Incomplete::Need(c.buf.len() + 1));
        };
        pending -= 1;
        let n = || {
            length(text)
                .map_err(|_| Incomplete::Invalid(format!("bad length in a '{}' line", t as char)))
        };
        match t {
            b'+' | b'-' | b':' => {}
            b'$' => {
                if let Some(n) = n()? {
                    let end = c.pos + n + 2;
                    if end > c.buf.len() {
                        return Err(Incomplete::Need(end));
                    }
                    c.pos = end;
                }
            }
            b'*' => pending += n()?.unwrap_or(0),
            t => {
                return Err(Incomplete::Invalid(format!(
                    "unknown reply type '{}'",
                    t as char
                )))
            }
        }
    }
    Ok(())
}

/// `+OK` or `:<n>` (the handshake's replies).
fn simple(c: &mut Cursor) -> Parsed<Reply> {
    match c.need_line()? {
        (b'+', b"OK") => Ok(Reply::Ok),
        (b':', n) => std::str::from_utf8(n)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Reply::Int)
            .ok_or_else(|| Fail::Protocol("bad integer".into())),
        (b'-', msg) => Err(Fail::Server(String::from_utf8_lossy(msg).into_owned())),
        (t, _) => Err(Fail::Protocol(format!("unexpected '{}' reply", t as char))),
    }
}

/// `[[stream, [[id, [field, value, ...]], ...]]]`, or nil when the read timed out.
fn xread_jobs(c: &mut Cursor) -> Parsed<Vec<Job>> {
    let mut jobs = Vec::new();
    let Some(streams) = c.array()? else {
        return Ok(jobs);
    };
    for _ in 0..streams {
        if c.array()? != Some(2) {
            return Err(Fail::Protocol(
                "a stream in XREADGROUP's reply is not [name, entries]".into(),
            ));
        }
        c.bulk()?; // the stream's name
        let entries = c.array()?.unwrap_or(0);
        jobs.reserve(entries);
        for _ in 0..entries {
            if c.array()? != Some(2) {
                return Err(Fail::Protocol(
                    "an entry in XREADGROUP's reply is not [id, fields]".into(),
                ));
            }
            let id = c
                .bulk()?
                .ok_or_else(|| Fail::Protocol("an entry without an id".into()))?;
            let id = job::text(id);
            let fields = c.array()?.unwrap_or(0);
            let mut pairs = Vec::with_capacity(fields / 2);
            for _ in 0..fields / 2 {
                let (name, value) = (c.bulk()?, c.bulk()?);
                if let (Some(name), Some(value)) = (name, value) {
                    pairs.push((name, value));
                }
            }
            if fields % 2 == 1 {
                c.bulk()?;
            }
            jobs.push(job::from_pairs(id, pairs.into_iter()));
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Parsed<Vec<Job>> {
        assert_eq!(skip(&mut Cursor::new(input)), Ok(()), "a whole reply");
        let mut c = Cursor::new(input);
        let jobs = xread_jobs(&mut c);
        assert_eq!(c.pos, input.len(), "the parser consumed exactly the reply");
        jobs
    }

    const REPLY: &[u8] = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n\
        *2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nd\r\n$7\r\n{\"a\":1}\r\n\
        *2\r\n$3\r\n2-0\r\n*8\r\n$1\r\nd\r\n$4\r\nx\r\ny\r\n$2\r\nid\r\n$3\r\nmy1\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\no\r\n$2\r\nm5\r\n";

    #[test]
    fn parses_entries_into_jobs() {
        let jobs = parse_all(REPLY).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            (&jobs[0].receipt[..], jobs[0].id.as_str()),
            (&b"1-0"[..], "1-0")
        );
        assert_eq!(
            (&jobs[0].payload[..], jobs[0].attempt),
            (&b"{\"a\":1}"[..], 1)
        );
        assert_eq!(
            jobs[1].payload, "x\r\ny",
            "CRLF inside a bulk string is data"
        );
        assert_eq!((jobs[1].id.as_str(), jobs[1].attempt), ("my1", 3));
        assert_eq!(jobs[1].max_attempts, Some(5));
    }

    #[test]
    fn every_prefix_is_incomplete_and_asks_for_more() {
        for cut in 0..REPLY.len() {
            match skip(&mut Cursor::new(&REPLY[..cut])) {
                Err(Incomplete::Need(n)) => assert!(n > cut, "cut {cut}: needs {n}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn nil_errors_and_garbage() {
        assert_eq!(parse_all(b"*-1\r\n").unwrap().len(), 0);
        assert_eq!(parse_all(b"$-1\r\n").unwrap().len(), 0);
        assert_eq!(
            parse_all(b"-NOGROUP No such key\r\n").unwrap_err(),
            Fail::Server("NOGROUP No such key".into())
        );
        assert!(matches!(
            skip(&mut Cursor::new(b"?what\r\n")),
            Err(Incomplete::Invalid(_))
        ));
        assert!(matches!(parse_all(b":1\r\n"), Err(Fail::Protocol(_))));
        for bad in [&b""[..], b"12a", b"+1", b"1234567890123", b"-2"] {
            assert!(length(bad).is_err(), "{bad:?}");
        }
        assert_eq!(length(b"0"), Ok(Some(0)));
        assert_eq!(length(b"524288"), Ok(Some(524288)));
    }

    #[test]
    fn a_large_bulk_header_says_how_much_is_coming() {
        let head =
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nd\r\n$100000\r\nxx";
        match skip(&mut Cursor::new(head)) {
            Err(Incomplete::Need(n)) => assert_eq!(n, head.len() - 2 + 100_000 + 2),
            other => panic!("{other:?}"),
        }
    }
}
