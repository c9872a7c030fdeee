//! Messages and their Media.

use super::{Client, Error, Form, Listed, Page};
use crate::types::{rfc2822_opt, MessageDirection, MessageStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `api.v2010.account.message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub sid: String,
    pub account_sid: String,
    pub messaging_service_sid: Option<String>,
    pub from: Option<String>,
    pub to: String,
    pub body: Option<String>,
    pub status: MessageStatus,
    pub direction: MessageDirection,
    pub num_segments: Option<String>,
    pub num_media: Option<String>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_updated: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_sent: Option<DateTime<Utc>>,
    pub api_version: Option<String>,
    pub uri: Option<String>,
    pub subresource_uris: Option<BTreeMap<String, String>>,
}

impl Listed for Message {
    const LIST_KEY: &'static str = "messages";
}

/// `api.v2010.account.message.media`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub sid: String,
    pub account_sid: String,
    pub parent_sid: String,
    pub content_type: String,
    #[serde(with = "rfc2822_opt", default)]
    pub date_created: Option<DateTime<Utc>>,
    #[serde(with = "rfc2822_opt", default)]
    pub date_updated: Option<DateTime<Utc>>,
    pub uri: Option<String>,
}

impl Listed for Media {
    const LIST_KEY: &'static str = "media_list";
}

/// Parameters of `POST /Messages.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateMessage {
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: Option<String>,
    pub media_url: Vec<String>,
    pub status_callback: Option<String>,
    /// Seconds the message may wait in Twilio's queue before it fails (1–36000).
    pub validity_period: Option<u32>,
    pub smart_encoded: Option<bool>,
    pub max_price: Option<String>,
    pub shorten_urls: Option<bool>,
    pub content_sid: Option<String>,
    pub content_variables: Option<String>,
    pub send_at: Option<String>,
    pub schedule_type: Option<String>,
}

impl CreateMessage {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.push("To", &self.to)
            .push_opt("From", self.from.as_ref())
            .push_opt("MessagingServiceSid", self.messaging_service_sid.as_ref())
            .push_opt("Body", self.body.as_ref());
        for m in &self.media_url {
            f.push("MediaUrl", m);
        }
        f.push_opt("StatusCallback", self.status_callback.as_ref())
            .push_opt("ValidityPeriod", self.validity_period)
            .push_opt("SmartEncoded", self.smart_encoded)
            .push_opt("MaxPrice", self.max_price.as_ref())
            .push_opt("ShortenUrls", self.shorten_urls)
            .push_opt("ContentSid", self.content_sid.as_ref())
            .push_opt("ContentVariables", self.content_variables.as_ref())
            .push_opt("SendAt", self.send_at.as_ref())
            .push_opt("ScheduleType", self.schedule_type.as_ref());
        f
    }

    /// Reads the parameters back from a form, naming the parameter that is malformed.
    pub fn from_form(f: &Form) -> Result<Self, Error> {
        let owned = |k: &str| f.get(k).map(str::to_string);
        Ok(CreateMessage {
            to: f.get("To").unwrap_or_default().to_string(),
            from: owned("From"),
            messaging_service_sid: owned("MessagingServiceSid"),
            body: owned("Body"),
            media_url: f.all("MediaUrl").map(str::to_string).collect(),
            status_callback: owned("StatusCallback"),
            validity_period: parse_opt(f, "ValidityPeriod")?,
            smart_encoded: parse_bool(f, "SmartEncoded")?,
            max_price: owned("MaxPrice"),
            shorten_urls: parse_bool(f, "ShortenUrls")?,
            content_sid: owned("ContentSid"),
            content_variables: owned("ContentVariables"),
            send_at: owned("SendAt"),
            schedule_type: owned("ScheduleType"),
        })
    }
}

pub(crate) fn parse_opt<T: std::str::FromStr>(f: &Form, k: &str) -> Result<Option<T>, Error> {
    match f.non_empty(k) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("{k} {v:?} is not valid"))),
    }
}

pub(crate) fn parse_bool(f: &Form, k: &str) -> Result<Option<bool>, Error> {
    match f.non_empty(k).map(|v| v.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "true" => Ok(Some(true)),
        Some(v) if v == "false" => Ok(Some(false)),
        Some(v) => Err(Error::Invalid(format!("{k} {v:?} is not true or false"))),
    }
}

/// Filters of `GET /Messages.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListMessages {
    pub to: Option<String>,
    pub from: Option<String>,
    /// Sent on this (UTC) day.
    pub date_sent: Option<DateTime<Utc>>,
    /// Sent on or before.
    pub date_sent_before: Option<DateTime<Utc>>,
    /// Sent on or after.
    pub date_sent_after: Option<DateTime<Utc>>,
    pub page_size: Option<u32>,
}

impl ListMessages {
    pub fn to_query(&self) -> Form {
        let iso = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut f = Form::new();
        f.push_opt("To", self.to.as_ref())
            .push_opt("From", self.from.as_ref())
            .push_opt("DateSent", self.date_sent.as_ref().map(iso))
            .push_opt("DateSent<", self.date_sent_before.as_ref().map(iso))
            .push_opt("DateSent>", self.date_sent_after.as_ref().map(iso))
            .push_opt("PageSize", self.page_size);
        f
    }
}

/// Parameters of `POST /Messages/{Sid}.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateMessage {
    /// An empty body redacts the message's text.
    pub body: Option<String>,
    /// `canceled`, for scheduled messages.
    pub status: Option<String>,
}

impl UpdateMessage {
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.push_opt("Body", self.body.as_ref())
            .push_opt("Status", self.status.as_ref());
        f
    }
}

fn with_query(url: String, q: &Form) -> String {
    if q.pairs().is_empty() {
        url
    } else {
        format!("{url}?{}", q.encode())
    }
}

impl Client {
    /// Creates (sends) a message. Never retried here: see [`super::Error::outcome_unknown`].
    pub async fn create_message(&self, req: &CreateMessage) -> Result<Message, Error> {
        if req.to.is_empty() {
            return Err(Error::Invalid("To is required".into()));
        }
        let url = self.base.url("api", &self.account_path("/Messages.json"));
        let rb = self
            .request(reqwest::Method::POST, &url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(req.to_form().encode());
        self.send_json(rb).await
    }

    pub async fn fetch_message(&self, sid: &str) -> Result<Message, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Messages/{}.json", seg(sid))),
        );
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }

    /// The first page of messages matching `filter`, newest first; follow with [`Client::next_page`].
    pub async fn list_messages(&self, filter: &ListMessages) -> Result<Page<Message>, Error> {
        let url = self.base.url("api", &self.account_path("/Messages.json"));
        self.get_page(&with_query(url, &filter.to_query())).await
    }

    /// Every message matching `filter`, following `next_page_uri` up to `limit` items.
    pub async fn list_all_messages(
        &self,
        filter: &ListMessages,
        limit: usize,
    ) -> Result<Vec<Message>, Error> {
        let mut page = self.list_messages(filter).await?;
        let mut out = Vec::new();
        loop {
            out.append(&mut page.items);
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            match self.next_page(&page, "api").await? {
                Some(next) => page = next,
                None => return Ok(out),
            }
        }
    }

    pub async fn update_message(&self, sid: &str, req: &UpdateMessage) -> Result<Message, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Messages/{}.json", seg(sid))),
        );
        let rb = self
            .request(reqwest::Method::POST, &url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(req.to_form().encode());
        self.send_json(rb).await
    }

    /// Removes the message's text at Twilio (the record stays).
    pub async fn redact_message(&self, sid: &str) -> Result<Message, Error> {
        self.update_message(
            sid,
            &UpdateMessage {
                body: Some(String::new()),
                status: None,
            },
        )
        .await
    }

    pub async fn delete_message(&self, sid: &str) -> Result<(), Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Messages/{}.json", seg(sid))),
        );
        self.send_empty(self.request(reqwest::Method::DELETE, &url))
            .await
    }

    pub async fn list_media(&self, message_sid: &str) -> Result<Page<Media>, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!("/Messages/{}/Media.json", seg(message_sid))),
        );
        self.get_page(&url).await
    }

    pub async fn fetch_media(&self, message_sid: &str, sid: &str) -> Result<Media, Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!(
                "/Messages/{}/Media/{}.json",
                seg(message_sid),
                seg(sid)
            )),
        );
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }

    /// The media file itself: content type and bytes.
    pub async fn media_content(
        &self,
        message_sid: &str,
        sid: &str,
        max_bytes: usize,
    ) -> Result<(Option<String>, bytes::Bytes), Error> {
        let url = self.base.url(
            "api",
            &self.account_path(&format!(
                "/Messages/{}/Media/{}",
                seg(message_sid),
                seg(sid)
            )),
        );
        self.download(&url, max_bytes).await
    }
}

/// A path segment with anything that could change the path escaped.
pub(crate) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
