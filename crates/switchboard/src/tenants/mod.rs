//! Tenants: who owns which numbers and Twilio credentials, and which API keys act for them.

pub mod api;
pub mod directory;
pub mod store;

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

/// A tenant using a Twilio account, with the account's auth token opened: what a webhook
/// signed for that account is checked against.
#[derive(Clone)]
pub struct Signer {
    pub tenant_id: String,
    pub auth_token: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("tenant_id", &self.tenant_id)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

/// Times are kept as milliseconds and shown as RFC 3339 UTC, like every time in the API.
pub(crate) fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
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
