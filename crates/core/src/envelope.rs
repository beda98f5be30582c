//! The envelope: how a job travels as one string — a list-mode element, and a member of the
//! `delayed` zset in both modes:
//! `"\x1fhf1|<attempt>|<recoveries>|<options>|<id length>|<id><payload>"`.
//! The id is length-prefixed, so it may hold anything. `options` is `;`-separated items, `m<n>`
//! (max attempts) and `b<spec>` (backoff, opaque here: the JS layer writes and reads it); it
//! never holds `|`. Any string that is not an envelope is raw data from another producer:
//! attempt 1, id `raw-` + 16 hex of its SHA-1. `lua/lib/envelope.lua` parses exactly the same way.

use std::borrow::Cow;

const MAGIC: &str = "\x1fhf1|";

/// Per-job options that travel with the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    pub max_attempts: Option<u32>,
    /// Backoff spec written by the caller, e.g. `e:1000:60000:0.5`; no `|` or `;`.
    pub backoff: Option<String>,
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
        items.join(";")
    }

    /// Unknown or malformed items are ignored.
    pub(crate) fn decode(s: &str) -> Self {
        let mut opts = JobOptions::default();
        for item in s.split(';') {
            match item.split_at_checked(1) {
                Some(("m", n)) => opts.max_attempts = n.parse().ok().filter(|&m| m > 0),
                Some(("b", spec)) if !spec.is_empty() => opts.backoff = Some(spec.to_owned()),
                _ => {}
            }
        }
        opts
    }
}

/// The parts of an envelope (or of raw data, read as one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub id: Cow<'a, str>,
    pub attempt: u32,
    pub recoveries: u32,
    pub options: &'a str,
    pub payload: &'a str,
}

pub(crate) fn encode(
    id: &str,
    attempt: u32,
    recoveries: u32,
    options: &str,
    payload: &str,
) -> String {
    format!(
        "{MAGIC}{attempt}|{recoveries}|{options}|{}|{id}{payload}",
        id.len()
    )
}

pub(crate) fn decode(element: &str) -> Envelope<'_> {
    parse(element).unwrap_or_else(|| Envelope {
        id: Cow::Owned(raw_id(element.as_bytes())),
        attempt: 1,
        recoveries: 0,
        options: "",
        payload: element,
    })
}

/// Must agree byte for byte with `hf_parse` in lua/lib/envelope.lua: counters are 1 to 10 ASCII
/// digits that fit a u32, the id is whole and ends on a character boundary.
fn parse(element: &str) -> Option<Envelope<'_>> {
    fn number(s: &str) -> Option<u32> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let rest = element.strip_prefix(MAGIC)?;
    let mut fields = rest.splitn(5, '|');
    let attempt = number(fields.next()?)?;
    let recoveries = number(fields.next()?)?;
    let options = fields.next()?;
    let id_len = number(fields.next()?)? as usize;
    let tail = fields.next()?;
    if tail.len() < id_len || !tail.is_char_boundary(id_len) {
        return None;
    }
    let (id, payload) = tail.split_at(id_len);
    Some(Envelope {
        id: Cow::Borrowed(id),
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
        let el = encode("job|1", 2, 1, "m5;be:1000:0:0", "{\"a\":\"x|y\"}");
        let env = decode(&el);
        assert_eq!(env.id, "job|1");
        assert_eq!(
            (env.attempt, env.recoveries, env.options),
            (2, 1, "m5;be:1000:0:0")
        );
        assert_eq!(env.payload, "{\"a\":\"x|y\"}");
        let el = encode("é", 1, 0, "", "");
        let env = decode(&el);
        assert_eq!((env.id.as_ref(), env.options, env.payload), ("é", "", ""));
    }

    #[test]
    fn options() {
        let o = JobOptions {
            max_attempts: Some(5),
            backoff: Some("e:1000:60000:0.5".into()),
        };
        assert_eq!(o.encode(), "m5;be:1000:60000:0.5");
        assert_eq!(JobOptions::decode(&o.encode()), o);
        assert_eq!(JobOptions::decode(""), JobOptions::default());
        assert_eq!(JobOptions::decode("m0;x;b"), JobOptions::default());
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
            "\x1fhf1|1|0||1|\u{e9}",
        ] {
            let env = decode(raw);
            assert_eq!((env.attempt, env.payload), (1, raw));
            assert!(
                env.id.starts_with("raw-") && env.id.len() == 20,
                "{}",
                env.id
            );
        }
        assert_eq!(decode("same").id, decode("same").id);
        // the same id the Lua side computes: "raw-" .. first 16 hex of redis.sha1hex
        assert_eq!(decode("hello").id, "raw-aaf4c61ddcc5e8a2");
    }
}
