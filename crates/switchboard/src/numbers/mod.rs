//! Numbers: the tenant's Twilio numbers, their settings, pointing their webhooks here, and
//! pacing what is sent from them.

pub mod api;
pub mod setup;
pub mod store;

use crate::phone::E164;
use serde::Serialize;

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
    #[serde(serialize_with = "crate::tenants::rfc3339")]
    pub created_at: i64,
}

impl Number {
    pub fn e164(&self) -> E164 {
        E164::trusted(self.phone_number.clone())
    }
}

/// Twilio's published default throughput for a long code: one segment per second.
pub const DEFAULT_SEGMENTS_PER_SECOND: f64 = 1.0;
