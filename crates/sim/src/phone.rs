//! Phone number checks as Twilio makes them: E.164 with a country plan that knows the number.

/// Whether `s` is an E.164 number that a phone network could reach.
pub fn is_valid(s: &str) -> bool {
    let digits = match s.strip_prefix('+') {
        Some(d) => d,
        None => return false,
    };
    if !(8..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return false;
    }
    // Twilio's test numbers (+1 500 555 xxxx) are accepted whatever the numbering plan says.
    if digits.starts_with("1500555") {
        return true;
    }
    match phonenumber::parse(None, s) {
        Ok(n) => phonenumber::is_valid(&n),
        Err(_) => false,
    }
}

/// The ISO country of a number, as Twilio puts it in `FromCountry`/`ToCountry`.
pub fn country(s: &str) -> Option<String> {
    let n = phonenumber::parse(None, s).ok()?;
    n.country().id().map(|id| format!("{id:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(is_valid("+14155550100"));
        assert!(is_valid("+442071838750"));
        assert!(is_valid("+15005550006"));
        assert!(!is_valid("4155550100"));
        assert!(!is_valid("+1415555010"));
        assert!(!is_valid("+1 415 555 0100"));
        assert!(!is_valid("+12"));
        assert!(!is_valid("+1415555010012345"));
        assert!(!is_valid("+10005550100"));
        assert!(!is_valid(""));
        assert_eq!(country("+14155550100").as_deref(), Some("US"));
        assert_eq!(country("+442071838750").as_deref(), Some("GB"));
    }
}
