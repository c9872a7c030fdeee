//! Our identifiers: a type prefix and 26 base-32 characters that sort by creation time
//! (48 bits of milliseconds, then randomness), e.g. `msg_01jd…`. Within one process they are
//! strictly increasing, so rows made in the same millisecond still sort in the order made.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

pub fn new_id(prefix: &str) -> String {
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u128;
    let rand: u128 = rand::rng().random::<u128>() & ((1u128 << 79) - 1);
    let mut v = (ms << 80) | rand;
    {
        static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if v <= *last {
            v = *last + 1 + (rand & 0xffff);
        }
        *last = v;
    }
    let mut buf = [0u8; 26];
    for slot in buf.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    format!("{prefix}_{}", std::str::from_utf8(&buf).expect("ascii"))
}

/// Whether `s` is an id with this prefix.
pub fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|r| r.len() == 26 && r.bytes().all(|b| ALPHABET.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_sort_by_time() {
        let a = new_id("msg");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("msg");
        assert!(is_id(&a, "msg"));
        assert!(!is_id(&a, "call"));
        assert!(a < b);
        assert!(!is_id("msg_'; DROP TABLE", "msg"));
    }

    #[test]
    fn ids_made_in_one_millisecond_still_increase() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("evt")).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
