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
    /// `sms`, or `call` for a code read out by Verify.
    pub channel: &'static str,
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

/// One line of what happened on a call, in order: the call read like a transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Seconds into the call (simulated time).
    pub at: u64,
    pub what: String,
    #[serde(flatten)]
    pub detail: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub seq: u64,
    pub sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: String,
    pub status: twilio::types::CallStatus,
    pub phone_number_sid: Option<String>,
    pub url: Option<String>,
    pub method: String,
    pub twiml: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub status_callback_events: Vec<String>,
    pub record: bool,
    pub recording_status_callback: Option<String>,
    pub timeout: u32,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub duration: Option<u64>,
    pub steps: Vec<Step>,
    /// A redirect or hang-up asked for through the REST API while the call runs.
    pub pending_update: Option<CallUpdate>,
}

#[derive(Debug, Clone)]
pub enum CallUpdate {
    Redirect {
        url: Option<String>,
        method: String,
        twiml: Option<String>,
    },
    End,
}

#[derive(Debug, Clone)]
pub struct Recording {
    pub sid: String,
    pub account_sid: String,
    pub call_sid: String,
    pub duration: u64,
    pub source: String,
    pub status: String,
    pub created: DateTime<Utc>,
    pub transcription_sid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Transcription {
    pub sid: String,
    pub account_sid: String,
    pub recording_sid: String,
    pub status: String,
    pub text: String,
    pub duration: u64,
    pub created: DateTime<Utc>,
}

/// How a phone the twin simulates behaves when it is called or calls: what it presses or
/// says at each `<Gather>`, how dialled numbers answer, what it says into a `<Record>`.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct CallScript {
    /// Consumed one per `<Gather>`, in order; when they run out the caller stays silent.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// How each dialled number answers: `answer`, `no-answer`, `busy` or `failed` (default answer).
    #[serde(default)]
    pub dial: BTreeMap<String, String>,
    /// Seconds a dialled party talks once it answers (default 30).
    #[serde(default)]
    pub talk_secs: Option<u64>,
    /// What the caller leaves at each `<Record>`, in order (default: 5 seconds, "Hello").
    #[serde(default)]
    pub recordings: Vec<Spoken>,
    /// For calls placed to this phone: how it answers (default answer).
    #[serde(default)]
    pub answer: Option<String>,
    /// The caller hangs up after this many seconds of the call.
    #[serde(default)]
    pub hangup_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct Input {
    #[serde(default)]
    pub digits: Option<String>,
    #[serde(default)]
    pub speech: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct Spoken {
    pub duration_secs: u64,
    #[serde(default)]
    pub text: String,
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
    pub calls: HashMap<String, Call>,
    pub recordings: HashMap<String, Recording>,
    pub transcriptions: HashMap<String, Transcription>,
    /// How simulated phones answer calls placed to them (by number).
    pub phones: HashMap<String, CallScript>,
    /// Verify v2: services and verifications by SID.
    pub verify_services: HashMap<String, crate::verify::Service>,
    pub verifications: HashMap<String, crate::verify::Verification>,
    /// Line types Lookup reports (`landline`, `fixedVoip`, …) by number; `mobile` otherwise.
    pub line_types: HashMap<String, String>,
    /// How far the twin's clock is ahead of the real one (for expiry tests), in milliseconds.
    pub clock_offset_ms: i64,
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
