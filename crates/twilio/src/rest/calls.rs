//! Calls, Recordings and Transcriptions.

use super::messages::{parse_bool, parse_opt, seg};
use super::{Client, Error, Form, Listed, Page};
use crate::types::{rfc2822_opt, CallStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `api.v2010.account.call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub to: Option<String>,
    pub to_formatted: Option<String>,
    pub from: Option<String>,
    pub from_formatted: Option<String>,
    pub phone_number_sid: Option<String>,
    pub status: CallStatus,
    #[serde(with = "rfc2822_opt", default)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub end_time: Option<DateTime<Utc>>,
    pub duration: Option<String>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub direction: Option<String>,
    pub answered_by: Option<String>,
    pub forwarded_from: Option<String>,
    pub caller_name: Option<String>,
    pub api_version: Option<String>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_updated: Option<DateTime<Utc>>,
    pub uri: Option<String>,
    pub subresource_uris: Option<BTreeMap<String, String>>,
}

impl Listed for Call {
    const LIST_KEY: &'static str = "calls";
}

/// `api.v2010.account.recording`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub sid: String,
    pub account_sid: String,
    pub call_sid: Option<String>,
    pub conference_sid: Option<String>,
    pub status: Option<String>,
    pub duration: Option<String>,
    pub channels: Option<i64>,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub api_version: Option<String>,
    #[serde(with = "rfc2822_opt", default)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_updated: Option<DateTime<Utc>>,
    pub uri: Option<String>,
    pub media_url: Option<String>,
    pub subresource_uris: Option<BTreeMap<String, String>>,
}

impl Listed for Recording {
    const LIST_KEY: &'static str = "recordings";
}

/// `api.v2010.account.transcription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub sid: String,
    pub account_sid: String,
    pub recording_sid: Option<String>,
    pub status: Option<String>,
    pub transcription_text: Option<String>,
    pub duration: Option<String>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub api_version: Option<String>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_updated: Option<DateTime<Utc>>,
    pub uri: Option<String>,
}

impl Listed for Transcription {
    const LIST_KEY: &'static str = "transcriptions";
}

/// Parameters of `POST /Calls.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateCall {
    pub to: String,
    pub from: String,
    pub url: Option<String>,
    pub twiml: Option<String>,
    pub application_sid: Option<String>,
    pub method: Option<String>,
    pub fallback_url: Option<String>,
    pub status_callback: Option<String>,
    /// `initiated`, `ringing`, `answered`, `completed`.
    pub status_callback_event: Vec<String>,
    pub status_callback_method: Option<String>,
    /// Seconds to let the call ring (default 60, at most 600).
    pub timeout: Option<u32>,
    pub record: Option<bool>,
    pub recording_status_callback: Option<String>,
    pub time_limit: Option<u32>,
    pub send_digits: Option<String>,
}

impl CreateCall {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.push("To", &self.to)
            .push("From", &self.from)
            .push_opt("Url", self.url.as_ref())
            .push_opt("Twiml", self.twiml.as_ref())
            .push_opt("ApplicationSid", self.application_sid.as_ref())
            .push_opt("Method", self.method.as_ref())
            .push_opt("FallbackUrl", self.fallback_url.as_ref())
            .push_opt("StatusCallback", self.status_callback.as_ref())
            .push_opt("StatusCallbackMethod", self.status_callback_method.as_ref());
        for e in &self.status_callback_event {
            f.push("StatusCallbackEvent", e);
        }
        f.push_opt("Timeout", self.timeout)
            .push_opt("Record", self.record)
            .push_opt(
                "RecordingStatusCallback",
                self.recording_status_callback.as_ref(),
            )
            .push_opt("TimeLimit", self.time_limit)
            .push_opt("SendDigits", self.send_digits.as_ref());
        f
    }

    pub fn from_form(f: &Form) -> Result<Self, Error> {
        let owned = |k: &str| f.non_empty(k).map(str::to_string);
        Ok(CreateCall {
            to: f.get("To").unwrap_or_default().to_string(),
            from: f.get("From").unwrap_or_default().to_string(),
            url: owned("Url"),
            twiml: owned("Twiml"),
            application_sid: owned("ApplicationSid"),
            method: owned("Method"),
            fallback_url: owned("FallbackUrl"),
            status_callback: owned("StatusCallback"),
            // Both repeated keys and one space-separated value are seen in the wild.
            status_callback_event: f
                .all("StatusCallbackEvent")
                .flat_map(|v| v.split_whitespace())
                .map(str::to_string)
                .collect(),
            status_callback_method: owned("StatusCallbackMethod"),
            timeout: parse_opt(f, "Timeout")?,
            record: parse_bool(f, "Record")?,
            recording_status_callback: owned("RecordingStatusCallback"),
            time_limit: parse_opt(f, "TimeLimit")?,
            send_digits: owned("SendDigits"),
        })
    }
}

/// Parameters of `POST /Calls/{Sid}.json`: redirect a live call or end it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateCall {
    pub url: Option<String>,
    pub method: Option<String>,
    pub twiml: Option<String>,
    /// `completed` (hang up a live call) or `canceled` (a call not yet answered).
    pub status: Option<String>,
    pub status_callback: Option<String>,
}

impl UpdateCall {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.push_opt("Url", self.url.as_ref())
            .push_opt("Method", self.method.as_ref())
            .push_opt("Twiml", self.twiml.as_ref())
            .push_opt("Status", self.status.as_ref())
            .push_opt("StatusCallback", self.status_callback.as_ref());
        f
    }
}

/// Filters of `GET /Calls.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListCalls {
    pub to: Option<String>,
    pub from: Option<String>,
    pub status: Option<String>,
    pub page_size: Option<u32>,
}

impl Client {
    fn post_form(&self, url: &str, form: &Form) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.encode())
    }

    /// Places a call. Never retried here: see [`super::Error::outcome_unknown`].
    pub async fn create_call(&self, req: &CreateCall) -> Result<Call, Error> {
        let url = self.base.url("api", &self.account_path("/Calls.json"));
        self.send_json(self.post_form(&url, &req.to_form())).await
    }

    pub async fn fetch_call(&self, sid: &str) -> Result<Call, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Calls/{}.json", seg(sid))),
        );
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }

    pub async fn update_call(&self, sid: &str, req: &UpdateCall) -> Result<Call, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Calls/{}.json", seg(sid))),
        );
        self.send_json(self.post_form(&url, &req.to_form())).await
    }

    pub async fn list_calls(&self, filter: &ListCalls) -> Result<Page<Call>, Error> {
        let mut q = Form::new();
        q.push_opt("To", filter.to.as_ref())
            .push_opt("From", filter.from.as_ref())
            .push_opt("Status", filter.status.as_ref())
            .push_opt("PageSize", filter.page_size);
        let mut url = self.base.url("api", &self.account_path("/Calls.json"));
        if !q.pairs().is_empty() {
            url = format!("{url}?{}", q.encode());
        }
        self.get_page(&url).await
    }

    pub async fn fetch_recording(&self, sid: &str) -> Result<Recording, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Recordings/{}.json", seg(sid))),
        );
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }

    pub async fn list_call_recordings(&self, call_sid: &str) -> Result<Page<Recording>, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Calls/{}/Recordings.json", seg(call_sid))),
        );
        self.get_page(&url).await
    }

    /// The recording's audio (`.wav` or `.mp3`).
    pub async fn recording_audio(
        &self,
        sid: &str,
        ext: &str,
        max_bytes: usize,
    ) -> Result<(Option<String>, bytes::Bytes), Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Recordings/{}.{}", seg(sid), seg(ext))),
        );
        self.download(&url, max_bytes).await
    }

    pub async fn delete_recording(&self, sid: &str) -> Result<(), Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Recordings/{}.json", seg(sid))),
        );
        self.send_empty(self.request(reqwest::Method::DELETE, &url))
            .await
    }

    pub async fn fetch_transcription(&self, sid: &str) -> Result<Transcription, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Transcriptions/{}.json", seg(sid))),
        );
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }
}
