//! The opt-out ledger's rules: which bodies are keywords. Twilio's current defaults, matched on
//! the whole body in any case (`STOP PLEASE` is not a keyword; `OPT OUT` is not supported).

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Stop => "STOP",
            Keyword::Start => "START",
            Keyword::Help => "HELP",
        }
    }
}

pub fn keyword(body: &str) -> Option<Keyword> {
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
    fn keywords() {
        assert_eq!(keyword("stop"), Some(Keyword::Stop));
        assert_eq!(keyword(" Revoke\n"), Some(Keyword::Stop));
        assert_eq!(keyword("optout"), Some(Keyword::Stop));
        assert_eq!(keyword("OPT OUT"), None);
        assert_eq!(keyword("stop please"), None);
        assert_eq!(keyword("Yes"), Some(Keyword::Start));
        assert_eq!(keyword("info"), Some(Keyword::Help));
    }
}
