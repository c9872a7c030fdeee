//! Messaging: sending (validated, stored, then dispatched), receiving, status callbacks,
//! threads, templates, contacts, opt-outs and media.

pub mod api;
pub mod contacts;
pub mod dispatch;
pub mod inbound;
pub mod media;
pub mod store;
pub mod templates;
pub mod webhooks;

use serde::Serialize;

/// Twilio's published price of one outbound US SMS segment, for estimates before sending.
pub const PRICE_PER_SEGMENT_USD: f64 = 0.0079;
pub const MAX_BODY_CHARS: usize = 1600;
pub const MAX_MEDIA: usize = 10;

pub use crate::status::{Direction, MessageStatus};

/// The rank of a status Twilio or a client names (see [`MessageStatus::rank`]); None for one
/// we do not know.
pub fn status_rank(status: &str) -> Option<i64> {
    MessageStatus::parse(status).map(MessageStatus::rank)
}

/// Statuses after which nothing changes, as stored (`delivered` can still become `read`).
pub const TERMINAL: [&str; 5] = ["undelivered", "failed", "canceled", "read", "received"];

pub fn is_terminal(status: &str) -> bool {
    MessageStatus::parse(status).is_some_and(MessageStatus::is_final)
}

/// A message as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub body: String,
    pub media_urls: Vec<String>,
    pub status: MessageStatus,
    pub twilio_sid: Option<String>,
    pub encoding: String,
    pub segments: i64,
    pub price_estimate: Option<String>,
    pub price_currency: &'static str,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// What `error_code` means (Twilio's codes and ours).
    pub error_description: Option<&'static str>,
    pub conversation_id: Option<String>,
    pub contact_id: Option<String>,
    pub number_id: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<Vec<Media>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub status: Option<String>,
    pub applied: bool,
    pub payload: serde_json::Value,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Media {
    pub id: String,
    pub content_type: Option<String>,
    pub size: Option<i64>,
    pub status: String,
    pub url: String,
    pub error: Option<String>,
}

/// What an error code on a message means: Twilio's numeric codes, and the ones this server
/// gives when no Twilio code applies.
pub fn describe_error(code: &str) -> Option<&'static str> {
    if let Ok(n) = code.parse::<i64>() {
        return twilio::errors::describe(n);
    }
    Some(match code {
        "validity_expired" => "The validity period ended before the message could be sent",
        "twilio_not_configured" => "The tenant has no Twilio credentials",
        "transport" => "Twilio could not be reached; retried until the attempts ran out",
        c if c.starts_with("http_5") => {
            "Twilio answered with a server error; retried until the attempts ran out"
        }
        c if c.starts_with("http_") => "Twilio answered with an HTTP error and no error code",
        _ => return None,
    })
}

/// Formats stored milliseconds as RFC 3339.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Encoding, segments and price estimate of a body.
pub fn cost(body: &str, media: usize) -> (twilio::segments::Segments, String) {
    let seg = twilio::segments::count(body);
    // An MMS is priced as one message; this estimate covers SMS only.
    let units = if media > 0 { 1 } else { seg.count.max(1) };
    (seg, format!("{:.4}", PRICE_PER_SEGMENT_USD * units as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_only_move_forward() {
        assert!(status_rank("sent") > status_rank("queued"));
        assert!(status_rank("delivered") > status_rank("sent"));
        assert_eq!(status_rank("delivered"), status_rank("undelivered"));
        assert!(status_rank("read") > status_rank("delivered"));
        assert_eq!(status_rank("teleported"), None);
        assert!(is_terminal("failed") && !is_terminal("delivered"));
    }

    #[test]
    fn cost_estimates() {
        let (s, p) = cost("hello", 0);
        assert_eq!((s.count, p.as_str()), (1, "0.0079"));
        let (s, p) = cost(&"a".repeat(161), 0);
        assert_eq!((s.count, p.as_str()), (2, "0.0158"));
        assert_eq!(cost("😀", 0).0.encoding, twilio::segments::Encoding::Ucs2);
    }
}
