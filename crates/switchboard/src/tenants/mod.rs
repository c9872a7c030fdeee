//! Tenants: who owns which numbers and Twilio credentials, and which API keys act for them.

pub mod api;
pub mod directory;
pub mod store;

use crate::phone::E164;
use serde::Serialize;

/// A tenant's Twilio account, with the auth token opened (kept in memory only).
#[derive(Clone)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: String,
}

impl std::fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

/// Times are kept as milliseconds and shown as RFC 3339 UTC, like every time in the API.
fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::messaging::iso(*ms))
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub account_sid: Option<String>,
    pub default_region: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Number {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub phone_number: String,
    pub twilio_sid: Option<String>,
    pub segments_per_second: f64,
    pub auto_reply: Option<String>,
    /// The call flow that answers calls to this number.
    pub flow_id: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: i64,
}

impl Number {
    pub fn e164(&self) -> E164 {
        E164::trusted(self.phone_number.clone())
    }
}

/// Twilio's published default throughput for a long code: one segment per second.
pub const DEFAULT_SEGMENTS_PER_SECOND: f64 = 1.0;
