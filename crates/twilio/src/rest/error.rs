use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Twilio's error body: `{"code":21211,"message":"…","more_info":"…","status":400}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: i64,
    pub message: String,
    #[serde(default)]
    pub more_info: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// From the `Retry-After` header, on 429s.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            more_info: format!("https://www.twilio.com/docs/errors/{code}"),
            status,
            details: None,
            retry_after: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Twilio answered with its error body.
    #[error("Twilio error {} (HTTP {}): {}", .0.code, .0.status, .0.message)]
    Api(ApiError),
    /// Twilio answered with an error status and a body that is not its error shape.
    #[error("HTTP {status} from Twilio: {body}")]
    Http { status: u16, body: String },
    /// No connection could be made: the request was not sent.
    #[error("could not connect to Twilio: {0}")]
    Connect(String),
    /// The request may have reached Twilio, but no answer came in time.
    #[error("Twilio did not answer in time")]
    Timeout,
    #[error("transport error talking to Twilio: {0}")]
    Transport(String),
    #[error("Twilio's answer could not be read: {0}")]
    Decode(String),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Config(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn from_transport(e: reqwest::Error) -> Self {
        if e.is_connect() {
            Error::Connect(e.to_string())
        } else if e.is_timeout() {
            Error::Timeout
        } else {
            Error::Transport(e.to_string())
        }
    }

    pub(crate) fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        match serde_json::from_slice::<ApiError>(body) {
            Ok(mut e) => {
                e.retry_after = retry_after;
                Error::Api(e)
            }
            Err(_) => Error::Http {
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            },
        }
    }

    /// The HTTP status Twilio answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Twilio's error code, if it sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: rate limits, server errors, lost connections.
    /// A 4xx other than 429 is a final answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(_) | Error::Http { .. } => {
                let s = self.status().unwrap_or(0);
                s == 429 || s >= 500
            }
            Error::Connect(_) | Error::Timeout | Error::Transport(_) => true,
            Error::Decode(_) | Error::TooLarge(_) | Error::Config(_) | Error::Invalid(_) => false,
        }
    }

    /// Whether Twilio may have acted on the request even though no answer was read: a create
    /// that fails this way must be reconciled before it is sent again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::Timeout | Error::Transport(_) | Error::Decode(_)
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(e) => e.retry_after,
            _ => None,
        }
    }
}

pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_twilio_error_body() {
        let body = br#"{"code": 21211, "message": "The 'To' number 5551234567 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let e = Error::from_response(400, body, None);
        assert_eq!(e.code(), Some(21211));
        assert_eq!(e.status(), Some(400));
        assert!(!e.is_retryable());
        let e = Error::from_response(
            429,
            br#"{"code":20429,"message":"Too Many Requests","more_info":"","status":429}"#,
            Some(Duration::from_secs(2)),
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = Error::from_response(502, b"<html>bad gateway</html>", None);
        assert!(matches!(e, Error::Http { status: 502, .. }));
        assert!(e.is_retryable());
    }
}
