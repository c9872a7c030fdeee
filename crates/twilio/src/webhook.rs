//! The parameters of the webhooks Twilio sends. Unknown parameters are kept in `extra`:
//! Twilio adds parameters without notice, and they still count for the signature. What
//! Twilio always sends must be there and have its shape: the signature joins names and
//! values without separators, so a parameter moved into another's value keeps a valid
//! signature, and only the shape of the ids gives it away.

use crate::rest::Form;
use crate::sid::{is_any_sid, is_sid};
use crate::types::MessageStatus;
use std::collections::BTreeMap;

/// Most parameters a webhook may carry (an MMS with ten attachments has about 40).
pub const MAX_PARAMS: usize = 200;
/// Longest parameter name.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest parameter value (a 1,600-character body in 4-byte characters is 6,400 bytes).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("webhook is missing the {0} parameter")]
    Missing(&'static str),
    #[error("webhook parameter {name} is invalid: {value:?}")]
    Invalid { name: &'static str, value: String },
    #[error("webhook parameter {0:?} is not a Twilio id")]
    NotASid(String),
    #[error("webhook is too large: {0}")]
    TooLarge(&'static str),
    #[error("webhook parameters must not contain NUL characters")]
    Nul,
}

/// Bounds every webhook: how many parameters, how long, no NUL anywhere, and every `…Sid`
/// parameter a Twilio id. Runs before anything is looked up.
pub fn check_form(f: &Form) -> Result<(), PayloadError> {
    if f.pairs().len() > MAX_PARAMS {
        return Err(PayloadError::TooLarge("too many parameters"));
    }
    for (k, v) in f.pairs() {
        if k.len() > MAX_NAME_BYTES {
            return Err(PayloadError::TooLarge("parameter name too long"));
        }
        if v.len() > MAX_VALUE_BYTES {
            return Err(PayloadError::TooLarge("parameter value too long"));
        }
        if k.contains('\0') || v.contains('\0') {
            return Err(PayloadError::Nul);
        }
        if k.ends_with("Sid") && !v.is_empty() && !is_any_sid(v) {
            return Err(PayloadError::NotASid(k.clone()));
        }
    }
    Ok(())
}

/// A required id with one of `prefixes`.
fn sid(f: &Form, name: &'static str, prefixes: &[&str]) -> Result<String, PayloadError> {
    let v = required(f, name)?;
    if prefixes.iter().any(|p| is_sid(v, p)) {
        Ok(v.to_string())
    } else {
        Err(PayloadError::Invalid {
            name,
            value: v.chars().take(40).collect(),
        })
    }
}

/// The legacy aliases of an id, when sent, must repeat it.
fn same_as(f: &Form, aliases: &[&'static str], value: &str) -> Result<(), PayloadError> {
    for &name in aliases {
        if let Some(v) = f.non_empty(name) {
            if v != value {
                return Err(PayloadError::Invalid {
                    name,
                    value: v.chars().take(40).collect(),
                });
            }
        }
    }
    Ok(())
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
        check_form(f)?;
        let message_sid = sid(f, "MessageSid", &["SM", "MM"])?;
        same_as(f, &["SmsMessageSid", "SmsSid"], &message_sid)?;
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
            account_sid: sid(f, "AccountSid", &["AC"])?,
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
        check_form(f)?;
        // Older callbacks carry only the legacy SmsSid.
        let name = if f.non_empty("MessageSid").is_some() {
            "MessageSid"
        } else {
            "SmsSid"
        };
        let message_sid = sid(f, name, &["SM", "MM"])?;
        same_as(f, &["SmsSid"], &message_sid)?;
        let status = f
            .non_empty("MessageStatus")
            .or_else(|| f.non_empty("SmsStatus"))
            .ok_or(PayloadError::Missing("MessageStatus"))?;
        Ok(MessageStatusCallback {
            message_sid,
            account_sid: sid(f, "AccountSid", &["AC"])?,
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

/// What every voice webhook carries: the call and the account. Call requests (incoming,
/// gathered digits, dial and record actions, status callbacks) also carry the parties;
/// recording and transcription callbacks need not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceWebhook {
    pub call_sid: String,
    pub account_sid: String,
    pub parent_call_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_status: Option<String>,
    pub recording_sid: Option<String>,
}

impl VoiceWebhook {
    pub fn from_form(f: &Form, call_request: bool) -> Result<Self, PayloadError> {
        check_form(f)?;
        let call_sid = sid(f, "CallSid", &["CA"])?;
        let account_sid = sid(f, "AccountSid", &["AC"])?;
        let opt_sid = |name: &'static str, prefix: &str| match f.non_empty(name) {
            None => Ok(None),
            Some(_) => sid(f, name, &[prefix]).map(Some),
        };
        let parent_call_sid = opt_sid("ParentCallSid", "CA")?;
        let recording_sid = opt_sid("RecordingSid", "RE")?;
        let (from, to) = if call_request {
            (
                Some(required(f, "From")?.to_string()),
                Some(required(f, "To")?.to_string()),
            )
        } else {
            (
                f.non_empty("From").map(str::to_string),
                f.non_empty("To").map(str::to_string),
            )
        };
        let call_status = if call_request {
            Some(required(f, "CallStatus")?.to_string())
        } else {
            f.non_empty("CallStatus").map(str::to_string)
        };
        Ok(VoiceWebhook {
            call_sid,
            account_sid,
            parent_call_sid,
            from,
            to,
            call_status,
            recording_sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SM: &str = "SM0123456789abcdef0123456789abcdef";
    const AC: &str = "AC0123456789abcdef0123456789abcdef";

    fn inbound() -> Vec<(String, String)> {
        [
            ("AccountSid", AC),
            ("Body", "hi"),
            ("From", "+15558675310"),
            ("MessageSid", SM),
            ("NumMedia", "0"),
            ("SmsSid", SM),
            ("To", "+15017122661"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_parameter_moved_into_the_message_sid_is_refused() {
        // Same signature (names and values joined without separators), new "MessageSid".
        let mut p = inbound();
        p.retain(|(k, _)| k != "NumMedia");
        let moved: Vec<(String, String)> = p
            .into_iter()
            .map(|(k, v)| {
                if k == "MessageSid" {
                    (k, format!("{v}NumMedia0"))
                } else {
                    (k, v)
                }
            })
            .collect();
        assert!(matches!(
            InboundMessage::from_form(&Form(moved)),
            Err(PayloadError::NotASid(_))
        ));
        // A legacy alias that disagrees is refused too.
        let mut p = inbound();
        p.iter_mut().find(|(k, _)| k == "SmsSid").unwrap().1 =
            "SM0123456789abcdef0123456789abcdee".into();
        assert!(InboundMessage::from_form(&Form(p)).is_err());
        assert!(InboundMessage::from_form(&Form(inbound())).is_ok());
    }

    #[test]
    fn webhooks_are_bounded_and_free_of_nul() {
        let mut p = inbound();
        p.push(("Extra".into(), "x".repeat(MAX_VALUE_BYTES + 1)));
        assert!(matches!(
            InboundMessage::from_form(&Form(p)),
            Err(PayloadError::TooLarge(_))
        ));
        let mut p = inbound();
        p.iter_mut().find(|(k, _)| k == "Body").unwrap().1 = "a\0b".into();
        assert_eq!(InboundMessage::from_form(&Form(p)), Err(PayloadError::Nul));
        let mut p = inbound();
        p.extend((0..MAX_PARAMS).map(|i| (format!("P{i}"), "v".to_string())));
        assert!(InboundMessage::from_form(&Form(p)).is_err());
    }

    #[test]
    fn voice_webhooks_need_their_call_and_account() {
        let f: Form = [
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("AccountSid", AC),
            ("From", "+15558675310"),
            ("To", "+15017122661"),
            ("CallStatus", "ringing"),
        ]
        .into_iter()
        .collect();
        assert!(VoiceWebhook::from_form(&f, true).is_ok());
        let f: Form = [("CallSid", "CA1"), ("AccountSid", AC)]
            .into_iter()
            .collect();
        assert!(VoiceWebhook::from_form(&f, false).is_err());
        let f: Form = [
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("AccountSid", AC),
            ("RecordingSid", "SM0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .collect();
        assert!(VoiceWebhook::from_form(&f, false).is_err());
    }

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
        let f: Form = [("MessageSid", SM), ("AccountSid", AC), ("To", "+1")]
            .into_iter()
            .collect();
        assert_eq!(
            InboundMessage::from_form(&f),
            Err(PayloadError::Missing("From"))
        );
        let f: Form = [
            ("MessageSid", SM),
            ("AccountSid", AC),
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
            ("SmsSid", SM),
            ("SmsStatus", "undelivered"),
            ("To", "+15558675310"),
            ("From", "+15017122661"),
            ("MessageSid", SM),
            ("AccountSid", AC),
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
        let f: Form = [("SmsSid", SM), ("SmsStatus", "warped"), ("AccountSid", AC)]
            .into_iter()
            .collect();
        let s = MessageStatusCallback::from_form(&f).unwrap();
        assert_eq!(s.status, MessageStatus::Other("warped".into()));
    }
}
