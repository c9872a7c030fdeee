//! Twilio's default opt-out keywords (as of 2025-05-14, REVOKE and OPTOUT included). A keyword
//! matches only as the whole body, in any case: "STOP PLEASE" is not one, and "OPT OUT" with a
//! space is not supported.

pub const STOP: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
pub const START: &[&str] = &["START", "YES", "UNSTOP"];
pub const HELP: &[&str] = &["HELP", "INFO"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

impl Keyword {
    /// The family's name, as Twilio's `OptOutType` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Stop => "STOP",
            Keyword::Start => "START",
            Keyword::Help => "HELP",
        }
    }
}

/// The keyword family of a message body, if the whole body is one.
pub fn classify(body: &str) -> Option<Keyword> {
    let b = body.trim().to_uppercase();
    if STOP.contains(&b.as_str()) {
        Some(Keyword::Stop)
    } else if START.contains(&b.as_str()) {
        Some(Keyword::Start)
    } else if HELP.contains(&b.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_body_any_case() {
        assert_eq!(classify("stop"), Some(Keyword::Stop));
        assert_eq!(classify(" Revoke\n"), Some(Keyword::Stop));
        assert_eq!(classify("optout"), Some(Keyword::Stop));
        assert_eq!(classify("OPT OUT"), None);
        assert_eq!(classify("stop please"), None);
        assert_eq!(classify("Yes"), Some(Keyword::Start));
        assert_eq!(classify("unstop"), Some(Keyword::Start));
        assert_eq!(classify("info"), Some(Keyword::Help));
        assert_eq!(classify("hello"), None);
    }
}
