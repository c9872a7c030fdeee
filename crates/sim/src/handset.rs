//! Handsets: a simulated phone texts one of the twin's numbers. The twin does what Twilio does:
//! records the inbound message, applies the default opt-out keywords, posts a signed webhook to
//! the number's SmsUrl (then its fallback), and sends the `<Message>` replies of the TwiML answer.

use crate::error::{SimError, SimResult};
use crate::faults::{self, FaultKind};
use crate::state::{self, MediaItem, Message};
use crate::{lifecycle, phone, webhooks, Sim};
use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use twilio::types::{MessageDirection, MessageStatus};
use twilio::Form;

const MAX_MEDIA_BYTES: usize = 5 * 1024 * 1024;
const MAX_REDIRECTS: usize = 10;

const STOP_REPLY: &str = "You have successfully been unsubscribed. You will not receive any more messages from this number. Reply START to resubscribe.";
const START_REPLY: &str = "You have successfully been resubscribed to messages from this number. Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.";
const HELP_REPLY: &str = "Reply STOP to unsubscribe. Msg&Data Rates May Apply.";

/// `POST /sim/control/sms`.
#[derive(Debug, Clone, Deserialize)]
pub struct HandsetSms {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub body: String,
    /// `http(s)://` URLs the twin downloads, or `data:` URLs.
    #[serde(default)]
    pub media_urls: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookOutcome {
    pub url: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub media_urls: Vec<String>,
    pub status: String,
    pub error_code: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandsetSmsResult {
    pub sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub num_media: usize,
    pub status: &'static str,
    /// `STOP`, `START` or `HELP` when the body was such a keyword.
    pub keyword: Option<&'static str>,
    pub webhooks: Vec<WebhookOutcome>,
    pub replies: Vec<Reply>,
}

/// The keyword family of a body, as Twilio's default handling sees it.
pub fn keyword(body: &str) -> Option<&'static str> {
    twilio::keywords::classify(body).map(|k| k.as_str())
}

async fn fetch_media(sim: &Sim, url: &str) -> SimResult<(String, bytes::Bytes)> {
    let bad = |m: String| SimError::bad_request(21620, m);
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad(format!("malformed data URL {url:.40}")))?;
        let (ct, b64) = match meta.strip_suffix(";base64") {
            Some(ct) => (ct, true),
            None => (meta, false),
        };
        let bytes = if b64 {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| bad(format!("data URL is not base64: {e}")))?
        } else {
            url::form_urlencoded::parse(data.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned().into_bytes())
                .unwrap_or_default()
        };
        let ct = if ct.is_empty() { "text/plain" } else { ct };
        return Ok((ct.to_string(), bytes.into()));
    }
    if !crate::api::messages::is_http_url(url) {
        return Err(bad(format!(
            "media URL {url:?} is neither http(s) nor data:"
        )));
    }
    let resp = sim
        .http()
        .get(url)
        .send()
        .await
        .map_err(|e| bad(format!("could not fetch media {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(bad(format!("media {url} answered HTTP {}", resp.status())));
    }
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| bad(format!("could not read media {url}: {e}")))?;
    if bytes.len() > MAX_MEDIA_BYTES {
        return Err(bad(format!("media {url} is larger than 5 MB")));
    }
    Ok((ct, bytes))
}

pub async fn send(sim: &Sim, req: HandsetSms) -> SimResult<HandsetSmsResult> {
    if !phone::is_valid(&req.from) {
        return Err(SimError::bad_request(
            21211,
            format!(
                "The handset number {:?} is not a valid E.164 phone number.",
                req.from
            ),
        ));
    }
    if req.body.is_empty() && req.media_urls.is_empty() {
        return Err(SimError::bad_request(21602, "Message body is required."));
    }
    if req.body.chars().count() > 1600 {
        return Err(SimError::bad_request(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if req.media_urls.len() > 10 {
        return Err(SimError::bad_request(
            21623,
            "The number of media files exceeds the allowed limit of 10.",
        ));
    }
    if sim.world().number_by_phone(&req.to).is_none() {
        return Err(SimError::new(
            404,
            20404,
            format!("{} is not a number of this twin", req.to),
        ));
    }
    let mut media = Vec::new();
    for url in &req.media_urls {
        media.push(fetch_media(sim, url).await?);
    }
    let kw = keyword(&req.body);
    let (message, number, token, auto_reply) = {
        let mut w = sim.world();
        let number = w
            .number_by_phone(&req.to)
            .cloned()
            .ok_or_else(|| SimError::not_found(&req.to))?;
        let token = w.accounts[&number.account_sid].auth_token.clone();
        let not_ready =
            faults::take(
                &mut w.faults,
                &[req.to.as_str(), req.from.as_str()],
                |k| match k {
                    FaultKind::MediaNotReady { count } => Some(*count),
                    _ => None,
                },
            )
            .unwrap_or(0);
        let now = Utc::now();
        let seq = w.seq();
        let m = Message {
            seq,
            sid: state::new_sid(if media.is_empty() { "SM" } else { "MM" }),
            account_sid: number.account_sid.clone(),
            messaging_service_sid: None,
            from: req.from.clone(),
            to: req.to.clone(),
            num_segments: twilio::segments::count(&req.body).count.max(1),
            body: req.body.clone(),
            status: MessageStatus::Received,
            direction: MessageDirection::Inbound,
            media: media
                .into_iter()
                .map(|(content_type, content)| MediaItem {
                    sid: state::new_sid("ME"),
                    content_type,
                    content,
                    created: now,
                    not_ready_for: not_ready,
                })
                .collect(),
            media_urls: Vec::new(),
            status_callback: None,
            error_code: None,
            error_message: None,
            price: Some("-0.00790".into()),
            created: now,
            updated: now,
            sent: Some(now),
        };
        w.messages.insert(m.sid.clone(), m.clone());
        let pair = (req.from.clone(), req.to.clone());
        let auto_reply = match kw {
            Some("STOP") => {
                w.opt_outs.insert(pair);
                Some(STOP_REPLY)
            }
            Some("START") => {
                w.opt_outs.remove(&pair);
                Some(START_REPLY)
            }
            Some("HELP") => Some(HELP_REPLY),
            _ => None,
        };
        (m, number, token, auto_reply)
    };
    let mut replies = Vec::new();
    if let Some(text) = auto_reply {
        // Twilio's own keyword replies go out even to a number that just opted out.
        replies.push(queue_reply(
            sim,
            &message,
            &number.phone_number,
            &req.from,
            text,
            &[],
            None,
            true,
        ));
    }
    let mut outcomes = Vec::new();
    if let Some(url) = number.sms_url.clone() {
        let params = webhook_params(sim, &message);
        let mut answer = post(
            sim,
            &url,
            &number.sms_method,
            &params,
            &token,
            &mut outcomes,
        )
        .await;
        if answer.is_none() {
            if let Some(fallback) = number.sms_fallback_url.clone() {
                answer = post(
                    sim,
                    &fallback,
                    &number.sms_fallback_method,
                    &params,
                    &token,
                    &mut outcomes,
                )
                .await;
            }
        }
        let mut hops = 0;
        while let Some((doc_url, body)) = answer.take() {
            let Ok(doc) = twilio::twiml::parse(&body) else {
                break;
            };
            let mut redirect = None;
            for verb in &doc.children {
                match verb.name.as_str() {
                    "Message" => replies.push(reply_from_twiml(
                        sim,
                        &message,
                        &number.phone_number,
                        &doc_url,
                        verb,
                    )),
                    "Redirect" => {
                        redirect = Some((
                            resolve(&doc_url, verb.text.trim()),
                            verb.attr("method").unwrap_or("POST").to_string(),
                        ));
                        break;
                    }
                    _ => {}
                }
            }
            match redirect {
                Some((Some(next), method)) if hops < MAX_REDIRECTS => {
                    hops += 1;
                    answer = post(sim, &next, &method, &params, &token, &mut outcomes).await;
                }
                _ => {}
            }
        }
    }
    Ok(HandsetSmsResult {
        sid: message.sid.clone(),
        account_sid: message.account_sid.clone(),
        from: message.from.clone(),
        to: message.to.clone(),
        body: message.body.clone(),
        num_media: message.media.len(),
        status: "received",
        keyword: kw,
        webhooks: outcomes,
        replies,
    })
}

/// The inbound-message webhook parameters (TWILIO_FACTS D.2).
fn webhook_params(sim: &Sim, m: &Message) -> Form {
    let mut p = Form::new();
    for (k, n) in [("To", &m.to), ("From", &m.from)] {
        if let Some(c) = phone::country(n) {
            p.push(format!("{k}Country"), c);
        }
    }
    let base = sim.base_url();
    for (i, media) in m.media.iter().enumerate() {
        p.push(format!("MediaContentType{i}"), &media.content_type);
        p.push(
            format!("MediaUrl{i}"),
            format!(
                "{base}/api{}/Media/{}",
                crate::api::messages::message_path(&m.account_sid, &m.sid),
                media.sid
            ),
        );
    }
    p.push("SmsMessageSid", &m.sid)
        .push("NumMedia", m.media.len().to_string())
        .push("SmsSid", &m.sid)
        .push("SmsStatus", "received")
        .push("Body", &m.body)
        .push("To", &m.to)
        .push("NumSegments", m.num_segments.to_string())
        .push("MessageSid", &m.sid)
        .push("AccountSid", &m.account_sid)
        .push("From", &m.from)
        .push("ApiVersion", twilio::rest::API_VERSION);
    p
}

/// Posts the webhook; returns the URL and body of a successful answer.
async fn post(
    sim: &Sim,
    url: &str,
    method: &str,
    params: &Form,
    token: &str,
    outcomes: &mut Vec<WebhookOutcome>,
) -> Option<(String, String)> {
    let result = webhooks::send(sim, "incoming-message", url, method, params, token).await;
    let (status, error, ok_body) = match result {
        Ok(a) if (200..300).contains(&a.status) => (Some(a.status), None, Some(a.body)),
        // Twilio logs 11200 for an answer that is not a success.
        Ok(a) => (
            Some(a.status),
            Some(format!("11200: HTTP {} from the webhook", a.status)),
            None,
        ),
        Err(e) => (None, Some(format!("11205: {e}")), None),
    };
    outcomes.push(WebhookOutcome {
        url: url.to_string(),
        status,
        error,
    });
    ok_body.map(|b| (url.to_string(), b))
}

fn resolve(base: &str, target: &str) -> Option<String> {
    if target.is_empty() {
        return None;
    }
    url::Url::parse(base)
        .ok()?
        .join(target)
        .ok()
        .map(String::from)
}

fn reply_from_twiml(
    sim: &Sim,
    inbound: &Message,
    number: &str,
    doc_url: &str,
    verb: &twilio::twiml::Element,
) -> Reply {
    let body_nodes: Vec<&str> = verb
        .children_named("Body")
        .map(|b| b.text.as_str())
        .collect();
    let body = if body_nodes.is_empty() {
        verb.text.clone()
    } else {
        body_nodes.concat()
    };
    let media: Vec<String> = verb
        .children_named("Media")
        .map(|m| m.text.trim().to_string())
        .collect();
    let to = verb
        .attr("to")
        .filter(|t| !t.is_empty())
        .unwrap_or(&inbound.from)
        .to_string();
    let from = verb
        .attr("from")
        .filter(|t| !t.is_empty())
        .unwrap_or(number)
        .to_string();
    let callback = verb
        .attr("statusCallback")
        .or_else(|| verb.attr("action"))
        .and_then(|u| resolve(doc_url, u));
    queue_reply(sim, inbound, &from, &to, &body, &media, callback, false)
}

/// Creates an `outbound-reply` message and starts its life, or records why it was refused.
#[allow(clippy::too_many_arguments)]
fn queue_reply(
    sim: &Sim,
    inbound: &Message,
    from: &str,
    to: &str,
    body: &str,
    media_urls: &[String],
    status_callback: Option<String>,
    keyword_reply: bool,
) -> Reply {
    let sid = create_message(
        sim,
        &inbound.account_sid,
        from,
        to,
        body,
        media_urls,
        status_callback,
        MessageDirection::OutboundReply,
        keyword_reply,
    );
    let m = sim
        .world()
        .messages
        .get(&sid)
        .cloned()
        .expect("just created");
    Reply {
        sid: m.sid,
        from: m.from,
        to: m.to,
        body: m.body,
        media_urls: m.media_urls,
        status: m.status.as_str().to_string(),
        error_code: m.error_code,
    }
}

/// A message sent by TwiML during a call (`<Message>` in voice TwiML). Returns its SID.
pub(crate) fn send_message(
    sim: &Sim,
    account_sid: &str,
    from: &str,
    to: &str,
    body: &str,
    status_callback: Option<String>,
    direction: MessageDirection,
) -> String {
    create_message(
        sim,
        account_sid,
        from,
        to,
        body,
        &[],
        status_callback,
        direction,
        false,
    )
}

/// Creates an outbound message from TwiML and starts its life, or stores it failed with the
/// code Twilio would give.
#[allow(clippy::too_many_arguments)]
fn create_message(
    sim: &Sim,
    account_sid: &str,
    from: &str,
    to: &str,
    body: &str,
    media_urls: &[String],
    status_callback: Option<String>,
    direction: MessageDirection,
    keyword_reply: bool,
) -> String {
    let mut w = sim.world();
    let now = Utc::now();
    let refused = if !keyword_reply && w.opt_outs.contains(&(to.to_string(), from.to_string())) {
        Some((21610, "Attempt to send to unsubscribed recipient"))
    } else if !phone::is_valid(to) {
        Some((21211, "Invalid 'To' Phone Number"))
    } else if w.account_number(account_sid, from).is_none() {
        Some((21606, "The From phone number is not a valid, SMS-capable inbound phone number or short code for your account."))
    } else if body.is_empty() && media_urls.is_empty() {
        Some((21602, "Message body is required."))
    } else {
        None
    };
    let seq = w.seq();
    let m = Message {
        seq,
        sid: state::new_sid(if media_urls.is_empty() { "SM" } else { "MM" }),
        account_sid: account_sid.to_string(),
        messaging_service_sid: None,
        from: from.to_string(),
        to: to.to_string(),
        num_segments: twilio::segments::count(body).count.max(1),
        body: body.to_string(),
        status: if refused.is_some() {
            MessageStatus::Failed
        } else {
            MessageStatus::Queued
        },
        direction,
        media: Vec::new(),
        media_urls: media_urls.to_vec(),
        status_callback,
        error_code: refused.map(|r| r.0),
        error_message: refused.map(|r| r.1.to_string()),
        price: None,
        created: now,
        updated: now,
        sent: None,
    };
    let sid = m.sid.clone();
    w.messages.insert(sid.clone(), m);
    drop(w);
    if refused.is_none() {
        lifecycle::spawn_outbound(sim.clone(), sid.clone());
    }
    sid
}
