//! The parameters of the webhooks Twilio sends for messaging. Unknown parameters are kept in
//! `extra`: Twilio adds parameters without notice, and they still count for the signature.

use crate::rest::Form;
use crate::types::MessageStatus;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("webhook is missing the {0} parameter")]
    Missing(&'static str),
    #[error("webhook parameter {name} is invalid: {value:?}")]
    Invalid { name: &'static str, value: String },
}

fn required<'a>(f: &'a Form, name: &'static str) -> Result<&'a str, PayloadError> {
    f.non_empty(name).ok_or(PayloadError::Missing(name))
}

fn number<T: std::str::FromStr>(f: &Form, name: &'static str) -> Result<Option<T>, PayloadError> {
    match f.non_empty(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| PayloadError::Invalid {
            name,
            value: v.to_string(),
        }),
    }
}

fn extra(f: &Form, known: &[&str], known_prefixes: &[&str]) -> BTreeMap<String, String> {
    f.pairs()
        .iter()
        .filter(|(k, _)| {
            !known.contains(&k.as_str()) && !known_prefixes.iter().any(|p| k.starts_with(p))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One attachment of an inbound MMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMedia {
    pub url: String,
    pub content_type: Option<String>,
}

/// An incoming message (the number's SmsUrl request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub message_sid: String,
    pub account_sid: String,
    pub messaging_service_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub body: String,
    pub num_segments: Option<u32>,
    pub media: Vec<InboundMedia>,
    /// `STOP`, `START` or `HELP` with Advanced Opt-Out.
    pub opt_out_type: Option<String>,
    pub extra: BTreeMap<String, String>,
}

impl InboundMessage {
    const KNOWN: &'static [&'static str] = &[
        "MessageSid",
        "SmsSid",
        "SmsMessageSid",
        "AccountSid",
        "MessagingServiceSid",
        "From",
        "To",
        "Body",
        "NumSegments",
        "NumMedia",
        "OptOutType",
    ];

    pub fn from_form(f: &Form) -> Result<Self, PayloadError> {
        let message_sid = f
            .non_empty("MessageSid")
            .or_else(|| f.non_empty("SmsMessageSid"))
            .or_else(|| f.non_empty("SmsSid"))
            .ok_or(PayloadError::Missing("MessageSid"))?
            .to_string();
        let num_media: usize = number(f, "NumMedia")?.unwrap_or(0);
        // NumMedia is at most 10 on Twilio; a larger claim is not trusted past what is present.
        let media = (0..num_media.min(64))
            .filter_map(|i| {
                f.non_empty(&format!("MediaUrl{i}"))
                    .map(|url| InboundMedia {
                        url: url.to_string(),
                        content_type: f
                            .non_empty(&format!("MediaContentType{i}"))
                            .map(str::to_string),
                    })
            })
            .collect();
        Ok(InboundMessage {
            message_sid,
            account_sid: required(f, "AccountSid")?.to_string(),
            messaging_service_sid: f.non_empty("MessagingServiceSid").map(str::to_string),
            from: required(f, "From")?.to_string(),
            to: required(f, "To")?.to_string(),
            body: f.get("Body").unwrap_or_default().to_string(),
            num_segments: number(f, "NumSegments")?,
            media,
            opt_out_type: f.non_empty("OptOutType").map(str::to_string),
            extra: extra(f, Self::KNOWN, &["MediaUrl", "MediaContentType"]),
        })
    }
}

/// A message status callback (the message's StatusCallback request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatusCallback {
    pub message_sid: String,
    pub account_sid: String,
    pub messaging_service_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: MessageStatus,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    /// Carrier delivery-report time, `YYMMDDhhmm`.
    pub raw_dlr_done_date: Option<String>,
    pub extra: BTreeMap<String, String>,
}

impl MessageStatusCallback {
    const KNOWN: &'static [&'static str] = &[
        "MessageSid",
        "SmsSid",
        "AccountSid",
        "MessagingServiceSid",
        "From",
        "To",
        "MessageStatus",
        "SmsStatus",
        "ErrorCode",
        "ErrorMessage",
        "RawDlrDoneDate",
    ];

    pub fn from_form(f: &Form) -> Result<Self, PayloadError> {
        let message_sid = f
            .non_empty("MessageSid")
            .or_else(|| f.non_empty("SmsSid"))
            .ok_or(PayloadError::Missing("MessageSid"))?
            .to_string();
        let status = f
            .non_empty("MessageStatus")
            .or_else(|| f.non_empty("SmsStatus"))
            .ok_or(PayloadError::Missing("MessageStatus"))?;
        Ok(MessageStatusCallback {
            message_sid,
            account_sid: required(f, "AccountSid")?.to_string(),
            messaging_service_sid: f.non_empty("MessagingServiceSid").map(str::to_string),
            from: f.non_empty("From").map(str::to_string),
            to: f.non_empty("To").map(str::to_string),
            status: MessageStatus::from(status),
            error_code: number(f, "ErrorCode")?,
            error_message: f.non_empty("ErrorMessage").map(str::to_string),
            raw_dlr_done_date: f.non_empty("RawDlrDoneDate").map(str::to_string),
            extra: extra(f, Self::KNOWN, &[]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inbound_mms_and_keeps_unknown_params() {
        let f: Form = [
            ("ToCountry", "US"),
            ("MediaContentType0", "image/jpeg"),
            ("SmsMessageSid", "MM0123456789abcdef0123456789abcdef"),
            ("NumMedia", "1"),
            ("SmsSid", "MM0123456789abcdef0123456789abcdef"),
            ("SmsStatus", "received"),
            ("Body", "Look 👀 & see"),
            ("To", "+15017122661"),
            ("NumSegments", "1"),
            ("MessageSid", "MM0123456789abcdef0123456789abcdef"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", "+15558675310"),
            (
                "MediaUrl0",
                "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
            ),
            ("ApiVersion", "2010-04-01"),
            ("SomethingNew", "x"),
        ]
        .into_iter()
        .collect();
        let m = InboundMessage::from_form(&f).unwrap();
        assert_eq!(m.message_sid, "MM0123456789abcdef0123456789abcdef");
        assert_eq!(m.body, "Look 👀 & see");
        assert_eq!(m.media.len(), 1);
        assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.num_segments, Some(1));
        assert_eq!(m.extra.get("SomethingNew").map(String::as_str), Some("x"));
        assert_eq!(m.extra.get("ToCountry").map(String::as_str), Some("US"));
        assert!(!m.extra.contains_key("MediaUrl0"));
    }

    #[test]
    fn inbound_requires_core_params() {
        let f: Form = [("Body", "hi")].into_iter().collect();
        assert_eq!(
            InboundMessage::from_form(&f),
            Err(PayloadError::Missing("MessageSid"))
        );
        let f: Form = [("MessageSid", "SM1"), ("AccountSid", "AC1"), ("To", "+1")]
            .into_iter()
            .collect();
        assert_eq!(
            InboundMessage::from_form(&f),
            Err(PayloadError::Missing("From"))
        );
        let f: Form = [
            ("MessageSid", "SM1"),
            ("AccountSid", "AC1"),
            ("To", "+1"),
            ("From", "+2"),
            ("NumMedia", "lots"),
        ]
        .into_iter()
        .collect();
        assert!(matches!(
            InboundMessage::from_form(&f),
            Err(PayloadError::Invalid {
                name: "NumMedia",
                ..
            })
        ));
    }

    #[test]
    fn parses_status_callback() {
        let f: Form = [
            ("ApiVersion", "2010-04-01"),
            ("MessageStatus", "undelivered"),
            ("RawDlrDoneDate", "2508242137"),
            ("SmsSid", "SM1"),
            ("SmsStatus", "undelivered"),
            ("To", "+15558675310"),
            ("From", "+15017122661"),
            ("MessageSid", "SM1"),
            ("AccountSid", "AC1"),
            ("ErrorCode", "30003"),
        ]
        .into_iter()
        .collect();
        let s = MessageStatusCallback::from_form(&f).unwrap();
        assert_eq!(s.status, MessageStatus::Undelivered);
        assert_eq!(s.error_code, Some(30003));
        assert_eq!(s.raw_dlr_done_date.as_deref(), Some("2508242137"));
        assert_eq!(s.extra.len(), 1);
        // Legacy-only status and an unknown status value still parse.
        let f: Form = [
            ("SmsSid", "SM1"),
            ("SmsStatus", "warped"),
            ("AccountSid", "AC1"),
        ]
        .into_iter()
        .collect();
        let s = MessageStatusCallback::from_form(&f).unwrap();
        assert_eq!(s.status, MessageStatus::Other("warped".into()));
    }
}
