//! Phone numbers at the edge: whatever a user typed becomes E.164 or a clear error.

use std::fmt;

/// A valid phone number in E.164 form (`+14155550100`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid phone number{hint}")]
pub struct PhoneError {
    pub input: String,
    hint: String,
}

impl E164 {
    /// Parses `input` as written by a person: `+44 20 7183 8750`, `(415) 555-0100` with a
    /// default region, `tel:+1…`.
    pub fn parse(input: &str, default_region: &str) -> Result<Self, PhoneError> {
        let err = |hint: &str| PhoneError {
            input: input.to_string(),
            hint: hint.to_string(),
        };
        let trimmed = input.trim().trim_start_matches("tel:");
        if trimmed.is_empty() {
            return Err(err(" (empty)"));
        }
        if trimmed.len() > 32
            || trimmed
                .chars()
                .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)))
        {
            return Err(err(""));
        }
        let region = default_region.parse::<phonenumber::country::Id>().ok();
        let parsed = phonenumber::parse(region, trimmed).map_err(|_| err(""))?;
        // Twilio's test numbers are not in the numbering plan but are real to Twilio.
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        if !phonenumber::is_valid(&parsed) && !e164.starts_with("+1500555") {
            return Err(err(" for its country"));
        }
        Ok(E164(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For values already known to be E.164 (read back from our database).
    pub fn trusted(s: String) -> Self {
        E164(s)
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            E164::parse("+1 (415) 555-0100", "US").unwrap().as_str(),
            "+14155550100"
        );
        assert_eq!(
            E164::parse("(415) 555-0100", "US").unwrap().as_str(),
            "+14155550100"
        );
        assert_eq!(
            E164::parse("020 7183 8750", "GB").unwrap().as_str(),
            "+442071838750"
        );
        assert_eq!(
            E164::parse("tel:+15005550006", "US").unwrap().as_str(),
            "+15005550006"
        );
        assert!(E164::parse("", "US").is_err());
        assert!(E164::parse("12", "US").is_err());
        assert!(E164::parse("+1 415 555 010", "US").is_err());
        assert!(E164::parse("'; DROP TABLE messages; --", "US").is_err());
        assert!(E164::parse("415555010x", "US").is_err());
    }
}
