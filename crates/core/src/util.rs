//! Small helpers every layer uses: the clock, randomness, job ids and a reconnect backoff.

use std::time::Duration;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Not cryptographic: worker ids, job ids and jitter only need to differ between processes.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Ids for jobs added without a `jobId` where Redis gives none (list mode, delayed adds):
/// unique without a round trip, and time-ordered (as strings, until 2059). Base 36 keeps them
/// short: each waiting list element carries its id.
pub fn new_job_id() -> String {
    let mut id = String::with_capacity(17);
    push_base36(&mut id, now_ms(), 8);
    id.push('-');
    push_base36(&mut id, random_u64() % 36u64.pow(8), 8);
    id
}

/// When a [`new_job_id`] id was made (unix ms); None for any other id.
pub fn job_id_ms(id: &str) -> Option<u64> {
    let (time, rand) = id.split_once('-')?;
    if time.len() != 8 || rand.len() != 8 || !rand.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(time, 36).ok()
}

/// `n` in base 36, zero-padded to `width` digits.
fn push_base36(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 13];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width {
        i -= 1;
        digits[i] = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII"));
}

/// Exponential backoff from 100 ms to 5 s, with +-50 % jitter so restarted workers don't stampede.
#[derive(Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn next(&mut self) -> Duration {
        let base = 100u64.saturating_mul(1 << self.attempt.min(6)).min(5_000);
        self.attempt += 1;
        let jitter = random_u64() % (base + 1);
        Duration::from_millis(base / 2 + jitter)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_fixed_width_and_ordered() {
        let mut s = String::new();
        push_base36(&mut s, 0, 3);
        assert_eq!(s, "000");
        s.clear();
        push_base36(&mut s, 36 * 36 + 35, 2);
        assert_eq!(s, "10z", "wider than width when it must be");
        s.clear();
        push_base36(&mut s, u64::MAX, 8);
        assert_eq!(s, "3w5e11264sgsf");
        let a = new_job_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_job_id();
        assert_eq!((a.len(), b.len()), (17, 17));
        assert!(a[..8] < b[..8], "{a} then {b}");
    }

    #[test]
    fn generated_ids_tell_when_they_were_made() {
        let before = now_ms();
        let at = job_id_ms(&new_job_id()).expect("a generated id");
        assert!(at >= before && at <= now_ms(), "{before} <= {at}");
        for other in [
            "1700000000000-0",
            "order-42",
            "raw-0123456789abcdef",
            "abcdefgh-ijk",
        ] {
            assert_eq!(job_id_ms(other), None, "{other}");
        }
    }
}
