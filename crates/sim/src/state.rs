//! The twin's world, in memory: accounts, their numbers and messages, media, the handsets'
//! opt-outs, what the network delivered, the faults in force and every webhook sent.

use crate::faults::Fault;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use twilio::types::{MessageDirection, MessageStatus};

/// A new SID: two-letter prefix and 32 lowercase hex digits.
pub fn new_sid(prefix: &str) -> String {
    let n: u128 = rand::rng().random();
    format!("{prefix}{n:032x}")
}

/// A new auth token or secret: 32 lowercase hex digits.
pub fn new_secret() -> String {
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

#[derive(Debug, Clone)]
pub struct Account {
    pub sid: String,
    pub auth_token: String,
    pub friendly_name: String,
    /// Test credentials: magic numbers, nothing delivered, no callbacks.
    pub test: bool,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ApiKey {
    pub sid: String,
    pub secret: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Number {
    pub sid: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub sms_url: Option<String>,
    pub sms_method: String,
    pub sms_fallback_url: Option<String>,
    pub sms_fallback_method: String,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: String,
    pub voice_caller_id_lookup: bool,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct MediaItem {
    pub sid: String,
    pub content_type: String,
    pub content: bytes::Bytes,
    pub created: DateTime<Utc>,
    /// Fetches that still answer 404 ("not ready yet").
    pub not_ready_for: u32,
}

#[derive(Debug, Clone)]
pub struct Message {
    /// Creation order, for stable newest-first listing and page tokens.
    pub seq: u64,
    pub sid: String,
    pub account_sid: String,
    pub messaging_service_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub body: String,
    pub status: MessageStatus,
    pub direction: MessageDirection,
    pub num_segments: u32,
    pub media: Vec<MediaItem>,
    /// Media URLs given on create (outbound), as sent.
    pub media_urls: Vec<String>,
    pub status_callback: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub sent: Option<DateTime<Utc>>,
}

/// A message the simulated network handed to a handset.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub media_urls: Vec<String>,
    pub status: String,
    pub error_code: Option<i64>,
    pub date: DateTime<Utc>,
}

/// A webhook the twin sent, with what came back.
#[derive(Debug, Clone, Serialize)]
pub struct SentWebhook {
    pub kind: &'static str,
    pub url: String,
    pub method: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub signature: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Timing of the outbound status progression.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct Delays {
    /// queued → sending.
    pub sending_ms: u64,
    /// sending → sent.
    pub sent_ms: u64,
    /// sent → delivered / undelivered / failed.
    pub delivered_ms: u64,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            sending_ms: 100,
            sent_ms: 200,
            delivered_ms: 400,
        }
    }
}

#[derive(Default)]
pub struct World {
    pub accounts: HashMap<String, Account>,
    pub keys: HashMap<String, ApiKey>,
    /// Numbers by SID.
    pub numbers: HashMap<String, Number>,
    /// Messages by SID.
    pub messages: HashMap<String, Message>,
    pub next_seq: u64,
    /// (handset, twin number) pairs that replied STOP.
    pub opt_outs: HashSet<(String, String)>,
    pub deliveries: Vec<Delivery>,
    pub webhooks: Vec<SentWebhook>,
    pub faults: Vec<Fault>,
    pub next_fault: u64,
    pub delays: Delays,
}

impl World {
    pub fn number_by_phone(&self, phone: &str) -> Option<&Number> {
        self.numbers.values().find(|n| n.phone_number == phone)
    }

    pub fn account_number(&self, account_sid: &str, phone: &str) -> Option<&Number> {
        self.numbers
            .values()
            .find(|n| n.account_sid == account_sid && n.phone_number == phone)
    }

    pub fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}
