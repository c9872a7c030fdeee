//! IncomingPhoneNumbers: the account's numbers and where Twilio sends their webhooks.

use super::messages::{parse_bool, seg};
use super::{Client, Error, Form, Listed, Page};
use crate::types::rfc2822_opt;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    #[serde(default)]
    pub voice: bool,
    #[serde(default)]
    pub sms: bool,
    #[serde(default)]
    pub mms: bool,
    #[serde(default)]
    pub fax: bool,
}

/// `api.v2010.account.incoming_phone_number` (the fields a messaging and voice app uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingPhoneNumber {
    pub sid: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: Option<String>,
    pub capabilities: Option<Capabilities>,
    pub sms_url: Option<String>,
    pub sms_method: Option<String>,
    pub sms_fallback_url: Option<String>,
    pub sms_fallback_method: Option<String>,
    pub sms_application_sid: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: Option<String>,
    pub voice_application_sid: Option<String>,
    pub voice_caller_id_lookup: Option<bool>,
    pub status_callback: Option<String>,
    pub status_callback_method: Option<String>,
    pub status: Option<String>,
    pub origin: Option<String>,
    pub beta: Option<bool>,
    pub api_version: Option<String>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_updated: Option<DateTime<Utc>>,
    pub uri: Option<String>,
}

impl Listed for IncomingPhoneNumber {
    const LIST_KEY: &'static str = "incoming_phone_numbers";
}

/// The settable fields of a number (create and update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberSettings {
    pub friendly_name: Option<String>,
    pub sms_url: Option<String>,
    pub sms_method: Option<String>,
    pub sms_fallback_url: Option<String>,
    pub sms_fallback_method: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: Option<String>,
    pub voice_caller_id_lookup: Option<bool>,
    pub status_callback: Option<String>,
    pub status_callback_method: Option<String>,
}

impl NumberSettings {
    const FIELDS: [&'static str; 11] = [
        "FriendlyName",
        "SmsUrl",
        "SmsMethod",
        "SmsFallbackUrl",
        "SmsFallbackMethod",
        "VoiceUrl",
        "VoiceMethod",
        "VoiceFallbackUrl",
        "VoiceFallbackMethod",
        "StatusCallback",
        "StatusCallbackMethod",
    ];

    fn slots(&self) -> [&Option<String>; 11] {
        [
            &self.friendly_name,
            &self.sms_url,
            &self.sms_method,
            &self.sms_fallback_url,
            &self.sms_fallback_method,
            &self.voice_url,
            &self.voice_method,
            &self.voice_fallback_url,
            &self.voice_fallback_method,
            &self.status_callback,
            &self.status_callback_method,
        ]
    }

    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        for (k, v) in Self::FIELDS.iter().zip(self.slots()) {
            f.push_opt(k, v.as_ref());
        }
        f.push_opt("VoiceCallerIdLookup", self.voice_caller_id_lookup);
        f
    }

    pub fn from_form(f: &Form) -> Result<Self, Error> {
        let get = |k: &str| f.get(k).map(str::to_string);
        let s = NumberSettings {
            friendly_name: get("FriendlyName"),
            sms_url: get("SmsUrl"),
            sms_method: get("SmsMethod"),
            sms_fallback_url: get("SmsFallbackUrl"),
            sms_fallback_method: get("SmsFallbackMethod"),
            voice_url: get("VoiceUrl"),
            voice_method: get("VoiceMethod"),
            voice_fallback_url: get("VoiceFallbackUrl"),
            voice_fallback_method: get("VoiceFallbackMethod"),
            voice_caller_id_lookup: parse_bool(f, "VoiceCallerIdLookup")?,
            status_callback: get("StatusCallback"),
            status_callback_method: get("StatusCallbackMethod"),
        };
        for (k, v) in Self::FIELDS.iter().zip(s.slots()) {
            if k.ends_with("Method") {
                if let Some(m) = v {
                    let up = m.to_ascii_uppercase();
                    if up != "GET" && up != "POST" {
                        return Err(Error::Invalid(format!(
                            "{k} must be GET or POST, not {m:?}"
                        )));
                    }
                }
            }
        }
        Ok(s)
    }
}

/// Filters of `GET /IncomingPhoneNumbers.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListNumbers {
    pub phone_number: Option<String>,
    pub friendly_name: Option<String>,
    pub page_size: Option<u32>,
}

impl Client {
    pub async fn list_numbers(
        &self,
        filter: &ListNumbers,
    ) -> Result<Page<IncomingPhoneNumber>, Error> {
        let mut q = Form::new();
        q.push_opt("PhoneNumber", filter.phone_number.as_ref())
            .push_opt("FriendlyName", filter.friendly_name.as_ref())
            .push_opt("PageSize", filter.page_size);
        let mut url = self
            .base
            .url("api", &self.account_path("/IncomingPhoneNumbers.json"));
        if !q.pairs().is_empty() {
            url = format!("{url}?{}", q.encode());
        }
        self.get_page(&url).await
    }

    /// The number with this E.164 value, if the account owns it.
    pub async fn find_number(
        &self,
        phone_number: &str,
    ) -> Result<Option<IncomingPhoneNumber>, Error> {
        let page = self
            .list_numbers(&ListNumbers {
                phone_number: Some(phone_number.to_string()),
                ..Default::default()
            })
            .await?;
        Ok(page
            .items
            .into_iter()
            .find(|n| n.phone_number == phone_number))
    }

    pub async fn fetch_number(&self, sid: &str) -> Result<IncomingPhoneNumber, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/IncomingPhoneNumbers/{}.json", seg(sid))),
        );
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }

    /// Buys (in the twin: creates) a number.
    pub async fn create_number(
        &self,
        phone_number: &str,
        settings: &NumberSettings,
    ) -> Result<IncomingPhoneNumber, Error> {
        let mut form = settings.to_form();
        form.push("PhoneNumber", phone_number);
        let url = self
            .base
            .url("api", &self.account_path("/IncomingPhoneNumbers.json"));
        let rb = self
            .request(reqwest::Method::POST, &url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.encode());
        self.send_json(rb).await
    }

    pub async fn update_number(
        &self,
        sid: &str,
        settings: &NumberSettings,
    ) -> Result<IncomingPhoneNumber, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/IncomingPhoneNumbers/{}.json", seg(sid))),
        );
        let rb = self
            .request(reqwest::Method::POST, &url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(settings.to_form().encode());
        self.send_json(rb).await
    }
}
