//! Twilio SIDs: a two-letter prefix and 32 lowercase hex digits.

/// Whether `s` is a SID with `prefix` (`AC`, `SM`, `MM`, `ME`, `PN`, `CA`, …).
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` looks like any SID (two capital letters and 32 hex digits).
pub fn is_any_sid(s: &str) -> bool {
    s.len() == 34
        && s.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
        && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_shape() {
        assert!(is_sid("AC0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcde", "AC"));
        assert!(!is_sid("SM0123456789abcdef0123456789abcdef", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcdeg", "AC"));
        assert!(is_any_sid("MM0123456789abcdef0123456789abcdef"));
        assert!(!is_any_sid("mm0123456789abcdef0123456789abcdef"));
    }
}
