//! The envelope: how a job travels as one Redis string — a list-mode element, and a member of
//! the `delayed` zset in both modes:
//! `"\x1fhf1|<attempt>|<recoveries>|<options>|<id length>|<id><payload>"`.
//! The id is length-prefixed, so it may hold anything, and the payload is the rest, any bytes.
//! `options` is `;`-separated items, `m<n>` (max attempts), `b<spec>` (backoff, opaque here: the
//! JS layer writes and reads it), `r` (the payload is raw bytes, not text) and `g<hex>` (a retry
//! for one consumer group only, its name in hex: the other groups reading the stream skip it);
//! it never holds `|`. Anything that is not an envelope is raw data from another producer: attempt 1, id
//! `raw-` + 16 hex of its SHA-1. `lua/lib/envelope.lua` parses exactly the same way.

use std::borrow::Cow;

const MAGIC: &[u8] = b"\x1fhf1|";

/// Per-job options that travel with the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    pub max_attempts: Option<u32>,
    /// Backoff spec written by the caller, e.g. `e:1000:60000:0.5`; no `|` or `;`.
    pub backoff: Option<String>,
    /// The payload is bytes for the caller to take as they are, not (JSON) text.
    pub binary: bool,
    /// Record the job's outcome (result or error) for this long once it finishes, for
    /// `waitFor` and `getJob` (`k<ms>`).
    pub keep_outcome_ms: Option<u64>,
    /// Stream mode: the consumer group this entry is for, when it is one group's retry (set
    /// by the scripts that retry, `lua/lib/stream.lua` `hf_for_group`); None: every group.
    pub group: Option<String>,
}

impl JobOptions {
    pub(crate) fn encode(&self) -> String {
        let mut items = Vec::new();
        if let Some(m) = self.max_attempts {
            items.push(format!("m{m}"));
        }
        if let Some(b) = &self.backoff {
            items.push(format!("b{b}"));
        }
        if self.binary {
            items.push("r".to_owned());
        }
        if let Some(k) = self.keep_outcome_ms {
            items.push(format!("k{k}"));
        }
        if let Some(g) = &self.group {
            let hex: String = g.bytes().map(|b| format!("{b:02x}")).collect();
            items.push(format!("g{hex}"));
        }
        items.join(";")
    }

    /// Unknown or malformed items are ignored.
    pub(crate) fn decode(s: &str) -> Self {
        let mut opts = JobOptions::default();
        for item in s.split(';') {
            match item.split_at_checked(1) {
                Some(("m", n)) => opts.max_attempts = n.parse().ok().filter(|&m| m > 0),
                Some(("b", spec)) if !spec.is_empty() => opts.backoff = Some(spec.to_owned()),
                Some(("r", "")) => opts.binary = true,
                Some(("k", ms)) => opts.keep_outcome_ms = ms.parse().ok().filter(|&k| k > 0),
                Some(("g", hex)) => opts.group = unhex(hex),
                _ => {}
            }
        }
        opts
    }
}

/// A group name from its hex; None when malformed (then the entry is every group's).
fn unhex(hex: &str) -> Option<String> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The parts of an envelope (or of raw data, read as one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub id: Cow<'a, str>,
    pub attempt: u32,
    pub recoveries: u32,
    pub options: &'a str,
    pub payload: &'a [u8],
}

pub(crate) fn encode(
    id: &str,
    attempt: u32,
    recoveries: u32,
    options: &str,
    payload: &[u8],
) -> Vec<u8> {
    let head = format!("{attempt}|{recoveries}|{options}|{}|{id}", id.len());
    let mut out = Vec::with_capacity(MAGIC.len() + head.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

pub(crate) fn decode(element: &[u8]) -> Envelope<'_> {
    parse(element).unwrap_or_else(|| Envelope {
        id: Cow::Owned(raw_id(element)),
        attempt: 1,
        recoveries: 0,
        options: "",
        payload: element,
    })
}

/// Must agree byte for byte with `hf_parse` in lua/lib/envelope.lua: counters are 1 to 10 ASCII
/// digits that fit a u32, and the id is whole. (An id that is not UTF-8, which holdfast never
/// writes, is read with replacement characters rather than as raw data, so both sides agree
/// that the element is an envelope.)
fn parse(element: &[u8]) -> Option<Envelope<'_>> {
    fn next<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let at = rest.iter().position(|&b| b == b'|')?;
        let (field, tail) = rest.split_at(at);
        *rest = &tail[1..];
        Some(field)
    }
    fn number(s: &[u8]) -> Option<u32> {
        if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    }
    let mut rest = element.strip_prefix(MAGIC)?;
    let attempt = number(next(&mut rest)?)?;
    let recoveries = number(next(&mut rest)?)?;
    let options = std::str::from_utf8(next(&mut rest)?).ok()?;
    let id_len = number(next(&mut rest)?)? as usize;
    if rest.len() < id_len {
        return None;
    }
    let (id, payload) = rest.split_at(id_len);
    Some(Envelope {
        id: String::from_utf8_lossy(id),
        attempt,
        recoveries,
        options,
        payload,
    })
}

pub(crate) fn raw_id(element: &[u8]) -> String {
    let hex = sha1_smol::Sha1::from(element).digest().to_string();
    format!("raw-{}", &hex[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let el = encode("job|1", 2, 1, "m5;be:1000:0:0", b"{\"a\":\"x|y\"}");
        let env = decode(&el);
        assert_eq!(env.id, "job|1");
        assert_eq!(
            (env.attempt, env.recoveries, env.options),
            (2, 1, "m5;be:1000:0:0")
        );
        assert_eq!(env.payload, b"{\"a\":\"x|y\"}");
        let el = encode("é", 1, 0, "", b"");
        let env = decode(&el);
        assert_eq!(
            (env.id.as_ref(), env.options, env.payload),
            ("é", "", &b""[..])
        );
        // bytes that are not UTF-8, right after the id too
        let bytes = [0x80, 0xff, 0, b'|', 0xc3];
        let el = encode("é", 1, 0, "r", &bytes);
        let env = decode(&el);
        assert_eq!(
            (env.id.as_ref(), env.options, env.payload),
            ("é", "r", &bytes[..])
        );
    }

    #[test]
    fn options() {
        let o = JobOptions {
            max_attempts: Some(5),
            backoff: Some("e:1000:60000:0.5".into()),
            binary: true,
            keep_outcome_ms: Some(60_000),
            group: Some("bill;ing|é".into()),
        };
        assert_eq!(
            o.encode(),
            "m5;be:1000:60000:0.5;r;k60000;g62696c6c3b696e677cc3a9"
        );
        assert_eq!(JobOptions::decode(&o.encode()), o);
        assert_eq!(JobOptions::decode(""), JobOptions::default());
        assert_eq!(
            JobOptions::decode("m0;x;b;rr;k0;k;g;g6;gzz;gff"),
            JobOptions::default()
        );
    }

    #[test]
    fn other_producers_strings_are_raw_data() {
        for raw in [
            "{\"to\":\"a@b.c\"}",
            "plain text",
            "\x1fhf1|x|y",
            "\x1fhf1|1|0||99|short",
            "\x1fhf1|+1|0||1|xy",
            "\x1fhf1|99999999999|0||1|xy",
        ] {
            let env = decode(raw.as_bytes());
            assert_eq!((env.attempt, env.payload), (1, raw.as_bytes()));
            assert!(
                env.id.starts_with("raw-") && env.id.len() == 20,
                "{}",
                env.id
            );
        }
        assert_eq!(decode(b"same").id, decode(b"same").id);
        // the same id the Lua side computes: "raw-" .. first 16 hex of redis.sha1hex
        assert_eq!(decode(b"hello").id, "raw-aaf4c61ddcc5e8a2");
    }
}
