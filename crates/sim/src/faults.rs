//! Scriptable faults: what can go wrong on Twilio's side, per number or for everything.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// The carrier does not deliver: the message ends `undelivered` (or `failed`) with this
    /// error code (30003, 30005, 30006, 30007, 30008, …).
    CarrierError {
        code: i64,
        #[serde(default)]
        failed: bool,
    },
    /// The REST API answers 429 with code 20429 and `Retry-After`.
    RateLimit {
        #[serde(default = "one")]
        retry_after_secs: u64,
    },
    /// The REST API answers 500 (after doing nothing).
    ServerError,
    /// The REST API does the work, then waits this long before answering.
    Slow { ms: u64 },
    /// Every status callback is sent twice.
    DuplicateCallbacks,
    /// Status callbacks are held until the last one and then sent newest first.
    ReorderCallbacks,
    /// Status callbacks are never sent (as when the receiver was down through Twilio's retries).
    DropCallbacks,
    /// Media answers 404 for its first `count` fetches.
    MediaNotReady { count: u32 },
    /// Verify's Fraud Guard blocks SMS codes to numbers starting with `prefix` (60410).
    FraudGuard { prefix: String },
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub id: String,
    /// Applies to messages to or from this number; all messages when absent.
    #[serde(default)]
    pub number: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many more times it fires; forever when absent.
    #[serde(default)]
    pub times: Option<u32>,
}

impl Fault {
    pub fn matches(&self, numbers: &[&str]) -> bool {
        self.times != Some(0)
            && match &self.number {
                None => true,
                Some(n) => numbers.contains(&n.as_str()),
            }
    }
}

/// Takes the first fault that matches `numbers` and `pick`, counting one use of it.
pub fn take<T>(
    faults: &mut [Fault],
    numbers: &[&str],
    pick: impl Fn(&FaultKind) -> Option<T>,
) -> Option<T> {
    for f in faults.iter_mut() {
        if !f.matches(numbers) {
            continue;
        }
        if let Some(v) = pick(&f.kind) {
            if let Some(t) = f.times.as_mut() {
                *t -= 1;
            }
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts_down() {
        let f: Fault = serde_json::from_str(
            r#"{"number":"+15005550006","kind":"carrier_error","code":30003,"times":1}"#,
        )
        .unwrap();
        assert_eq!(
            f.kind,
            FaultKind::CarrierError {
                code: 30003,
                failed: false
            }
        );
        let mut all = vec![f];
        let pick = |k: &FaultKind| match k {
            FaultKind::CarrierError { code, .. } => Some(*code),
            _ => None,
        };
        assert_eq!(take(&mut all, &["+15551230000"], pick), None);
        assert_eq!(take(&mut all, &["+15005550006"], pick), Some(30003));
        assert_eq!(take(&mut all, &["+15005550006"], pick), None);
    }
}
