//! `/Messages` and `/Messages/{sid}/Media`.

use super::{authenticate, json_file, live_only, FormBody, Paging};
use crate::error::{SimError, SimResult};
use crate::faults::{self, FaultKind};
use crate::state::{self, Account, Message, World};
use crate::{lifecycle, phone, Sim};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use twilio::rest::CreateMessage;
use twilio::types::{MessageDirection, MessageStatus};
use twilio::Form;

/// Twilio's price per segment for a US SMS, as a negative charge.
const PRICE_PER_SEGMENT: f64 = 0.0079;
/// Twilio's limit on a message body.
const MAX_BODY_CHARS: usize = 1600;
const MAX_MEDIA: usize = 10;

pub(crate) fn message_path(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Messages/{sid}")
}

pub(crate) fn view(m: &Message) -> twilio::rest::Message {
    let base = message_path(&m.account_sid, &m.sid);
    let mut sub = BTreeMap::new();
    sub.insert("media".to_string(), format!("{base}/Media.json"));
    sub.insert("feedback".to_string(), format!("{base}/Feedback.json"));
    twilio::rest::Message {
        sid: m.sid.clone(),
        account_sid: m.account_sid.clone(),
        messaging_service_sid: m.messaging_service_sid.clone(),
        from: Some(m.from.clone()),
        to: m.to.clone(),
        body: Some(m.body.clone()),
        status: m.status.clone(),
        direction: m.direction.clone(),
        num_segments: Some(m.num_segments.to_string()),
        num_media: Some(m.media.len().max(m.media_urls.len()).to_string()),
        price: m.price.clone(),
        price_unit: Some("USD".into()),
        error_code: m.error_code,
        error_message: m.error_message.clone(),
        date_created: Some(m.created),
        date_updated: Some(m.updated),
        date_sent: m.sent,
        api_version: Some(twilio::rest::API_VERSION.into()),
        uri: Some(format!("{base}.json")),
        subresource_uris: Some(sub),
    }
}

pub(crate) fn price_for(segments: u32) -> String {
    format!("-{:.5}", PRICE_PER_SEGMENT * segments.max(1) as f64)
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The checks Twilio makes on a create, in its order, with its codes. Test credentials get
/// the documented magic-number behaviour instead of the ownership checks.
fn validate(w: &World, account: &Account, req: &CreateMessage) -> SimResult<()> {
    if account.test {
        if req.messaging_service_sid.is_some() {
            return Err(SimError::new(
                403,
                20008,
                "MessagingServiceSid is not supported with Test Account Credentials",
            ));
        }
        match req.to.as_str() {
            "+15005550001" => return Err(bad(21211, format!("The 'To' number {} is not a valid phone number.", req.to))),
            "+15005550002" => return Err(bad(21612, format!("The 'To' phone number: {}, is not currently reachable using the 'From' phone number via SMS.", req.to))),
            "+15005550003" => return Err(bad(21408, format!("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {}.", req.to))),
            "+15005550004" => return Err(bad(21610, "Attempt to send to unsubscribed recipient")),
            "+15005550009" => return Err(bad(21614, format!("'To' number {} is not a valid mobile number", req.to))),
            _ => {}
        }
        let from = req.from.as_deref().unwrap_or_default();
        return match from {
            "+15005550001" => Err(bad(21212, format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."))),
            "+15005550008" => Err(bad(21611, "This 'From' number has exceeded the maximum number of queued messages")),
            "+15005550006" => check_to_and_content(req),
            _ => Err(bad(21606, format!("The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account."))),
        };
    }
    check_to_and_content(req)?;
    let from = match (&req.from, &req.messaging_service_sid) {
        (Some(f), _) if !f.is_empty() => f.as_str(),
        (_, Some(ms)) if !ms.is_empty() => {
            return Err(bad(
                21701,
                format!("The Messaging Service Sid {ms} is invalid."),
            ));
        }
        _ => return Err(bad(21603, "A 'From' phone number is required.")),
    };
    if !phone::is_valid(from) {
        return Err(bad(21212, format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID.")));
    }
    match w.number_by_phone(from) {
        None => {
            return Err(bad(
                21659,
                format!(
                    "'From' {from} is not a Twilio phone number or Short Code country mismatch"
                ),
            ));
        }
        Some(n) if n.account_sid != account.sid => {
            return Err(bad(21606, format!("The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account.")));
        }
        Some(_) => {}
    }
    if req.to == from {
        return Err(bad(21266, "'To' and 'From' number cannot be the same"));
    }
    if w.opt_outs.contains(&(req.to.clone(), from.to_string())) {
        return Err(bad(21610, "Attempt to send to unsubscribed recipient"));
    }
    Ok(())
}

fn check_to_and_content(req: &CreateMessage) -> SimResult<()> {
    if req.to.is_empty() {
        return Err(bad(21604, "A 'To' phone number is required."));
    }
    if !phone::is_valid(&req.to) {
        return Err(bad(
            21211,
            format!("The 'To' number {} is not a valid phone number.", req.to),
        ));
    }
    let body = req.body.as_deref().unwrap_or_default();
    if body.is_empty() && req.media_url.is_empty() && req.content_sid.is_none() {
        return Err(bad(21602, "Message body is required."));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(bad(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if req.media_url.len() > MAX_MEDIA {
        return Err(bad(
            21623,
            "The number of media files exceeds the allowed limit of 10.",
        ));
    }
    if req.media_url.iter().any(|u| !is_http_url(u)) {
        return Err(bad(21620, "Invalid media URL(s)."));
    }
    if let Some(cb) = req.status_callback.as_deref().filter(|c| !c.is_empty()) {
        if !is_http_url(cb) {
            return Err(bad(
                21609,
                format!("The StatusCallback URL {cb} is not a valid URL."),
            ));
        }
    }
    if let Some(v) = req.validity_period {
        if !(1..=36000).contains(&v) {
            return Err(bad(
                21624,
                "ValidityPeriod must be between 1 and 36000 seconds.",
            ));
        }
    }
    Ok(())
}

fn bad(code: i64, message: impl Into<String>) -> SimError {
    SimError::bad_request(code, message)
}

pub(crate) fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

/// API-level faults for a request touching these numbers: 429, 500, or a slow answer.
pub(crate) fn api_faults(sim: &Sim, numbers: &[&str]) -> SimResult<Option<Duration>> {
    let mut w = sim.world();
    let refusal = faults::take(&mut w.faults, numbers, |k| match k {
        FaultKind::RateLimit { retry_after_secs } => {
            let mut e = SimError::new(429, 20429, "Too Many Requests");
            e.0.retry_after = Some(Duration::from_secs(*retry_after_secs));
            Some(e)
        }
        FaultKind::ServerError => Some(SimError::new(
            500,
            20500,
            "An internal server error has occurred",
        )),
        _ => None,
    });
    if let Some(e) = refusal {
        return Err(e);
    }
    Ok(faults::take(&mut w.faults, numbers, |k| match k {
        FaultKind::Slow { ms } => Some(Duration::from_millis(*ms)),
        _ => None,
    }))
}

pub async fn create(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<(StatusCode, Json<Value>)> {
    let acct = authenticate(&sim, &headers, &account)?;
    let req =
        CreateMessage::from_form(&form).map_err(|e| SimError::bad_request(20001, e.to_string()))?;
    let from_for_faults = req.from.clone().unwrap_or_default();
    let slow = api_faults(&sim, &[req.to.as_str(), from_for_faults.as_str()])?;
    let message = {
        let mut w = sim.world();
        validate(&w, &acct, &req)?;
        let now = Utc::now();
        let body = req.body.clone().unwrap_or_default();
        let seq = w.seq();
        let m = Message {
            seq,
            sid: state::new_sid(if req.media_url.is_empty() { "SM" } else { "MM" }),
            account_sid: acct.sid.clone(),
            messaging_service_sid: None,
            from: req.from.clone().unwrap_or_default(),
            to: req.to.clone(),
            num_segments: twilio::segments::count(&body).count.max(1),
            body,
            status: MessageStatus::Queued,
            direction: MessageDirection::OutboundApi,
            media: Vec::new(),
            media_urls: req.media_url.clone(),
            status_callback: req.status_callback.clone().filter(|s| !s.is_empty()),
            error_code: None,
            error_message: None,
            price: None,
            created: now,
            updated: now,
            sent: None,
        };
        w.messages.insert(m.sid.clone(), m.clone());
        m
    };
    // Test credentials create nothing that moves: no delivery, no callbacks.
    if !acct.test {
        lifecycle::spawn_outbound(sim.clone(), message.sid.clone());
    }
    if let Some(d) = slow {
        tokio::time::sleep(d).await;
    }
    Ok((StatusCode::CREATED, Json(to_value(view(&message)))))
}

fn owned_message(w: &World, account: &str, sid: &str) -> SimResult<Message> {
    w.messages
        .get(sid)
        .filter(|m| m.account_sid == account)
        .cloned()
        .ok_or_else(|| SimError::not_found(&format!("{}.json", message_path(account, sid))))
}

pub async fn fetch(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let m = owned_message(&sim.world(), &account, sid)?;
    Ok(Json(to_value(view(&m))))
}

/// Parses a `DateSent` filter: `YYYY-MM-DD` (a whole UTC day) or an ISO-8601 date-time.
fn parse_date(name: &str, v: &str) -> SimResult<(DateTime<Utc>, bool)> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok((d.and_hms_opt(0, 0, 0).expect("midnight").and_utc(), true));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| (t.with_timezone(&Utc), false))
        .map_err(|_| {
            SimError::bad_request(
                20001,
                format!("{name} {v:?} is not a date (YYYY-MM-DD) or date-time"),
            )
        })
}

pub async fn list(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let q = Form::parse(query.unwrap_or_default().as_bytes());
    let paging = Paging::from_query(&q)?;
    let mut filters = Form::new();
    for k in ["To", "From", "DateSent", "DateSent<", "DateSent>"] {
        if let Some(v) = q.non_empty(k) {
            filters.push(k, v);
        }
    }
    let day = chrono::Duration::days(1);
    let on = q
        .non_empty("DateSent")
        .map(|v| parse_date("DateSent", v))
        .transpose()?;
    let before = q
        .non_empty("DateSent<")
        .map(|v| parse_date("DateSent<", v))
        .transpose()?;
    let after = q
        .non_empty("DateSent>")
        .map(|v| parse_date("DateSent>", v))
        .transpose()?;
    let mut items: Vec<Message> = sim
        .world()
        .messages
        .values()
        .filter(|m| m.account_sid == account)
        .filter(|m| q.non_empty("To").is_none_or(|t| m.to == t))
        .filter(|m| q.non_empty("From").is_none_or(|f| m.from == f))
        .filter(|m| {
            let Some(sent) = m.sent else {
                return on.is_none() && before.is_none() && after.is_none();
            };
            let day_of = |t: DateTime<Utc>| t.date_naive();
            on.is_none_or(|(t, _)| day_of(sent) == day_of(t))
                && before
                    .is_none_or(|(t, whole_day)| if whole_day { sent < t + day } else { sent <= t })
                && after.is_none_or(|(t, _)| sent >= t)
        })
        .cloned()
        .collect();
    items.sort_by_key(|m| std::cmp::Reverse(m.seq));
    let path = format!("/2010-04-01/Accounts/{account}/Messages.json");
    paging.respond(
        &path,
        "messages",
        items,
        |m| m.sid.clone(),
        |m| to_value(view(m)),
        &filters,
    )
}

pub async fn update(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let mut w = sim.world();
    let m = owned_message(&w, &account, sid)?;
    if let Some(status) = form.non_empty("Status") {
        if status != "canceled" {
            return Err(SimError::bad_request(
                20001,
                format!("Status {status:?} is not valid: only canceled may be set"),
            ));
        }
        if m.status != MessageStatus::Scheduled {
            return Err(SimError::bad_request(
                30409,
                "Message is not scheduled and cannot be canceled",
            ));
        }
    }
    if let Some(b) = form.get("Body") {
        if !b.is_empty() {
            return Err(SimError::bad_request(
                20001,
                "Body may only be set to an empty string, to redact the message",
            ));
        }
        if !m.status.is_final() {
            return Err(SimError::bad_request(
                20009,
                "Cannot redact a message that is still in progress",
            ));
        }
    }
    let stored = w.messages.get_mut(sid).expect("checked above");
    if form.get("Body").is_some() {
        stored.body.clear();
    }
    stored.updated = Utc::now();
    Ok(Json(to_value(view(stored))))
}

pub async fn delete(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<StatusCode> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let mut w = sim.world();
    let m = owned_message(&w, &account, sid)?;
    if !m.status.is_final() {
        return Err(SimError::bad_request(
            20009,
            "Cannot delete a message that is still in progress",
        ));
    }
    w.messages.remove(sid);
    Ok(StatusCode::NO_CONTENT)
}

fn media_view(m: &Message, media: &state::MediaItem) -> Value {
    let created = Some(media.created);
    to_value(twilio::rest::Media {
        sid: media.sid.clone(),
        account_sid: m.account_sid.clone(),
        parent_sid: m.sid.clone(),
        content_type: media.content_type.clone(),
        date_created: created,
        date_updated: created,
        uri: Some(format!(
            "{}/Media/{}.json",
            message_path(&m.account_sid, &m.sid),
            media.sid
        )),
    })
}

pub async fn list_media(
    State(sim): State<Sim>,
    Path((account, message)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let q = Form::parse(query.unwrap_or_default().as_bytes());
    let paging = Paging::from_query(&q)?;
    let m = owned_message(&sim.world(), &account, &message)?;
    let path = format!("{}/Media.json", message_path(&account, &message));
    paging.respond(
        &path,
        "media_list",
        m.media.clone(),
        |x| x.sid.clone(),
        |x| media_view(&m, x),
        &Form::new(),
    )
}

/// `…/Media/{sid}.json` is the metadata; `…/Media/{sid}` without an extension is the file.
pub async fn fetch_media(
    State(sim): State<Sim>,
    Path((account, message, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> SimResult<Response> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let (sid, metadata) = match file.strip_suffix(".json") {
        Some(s) => (s.to_string(), true),
        None => (file.clone(), false),
    };
    let mut w = sim.world();
    let m = owned_message(&w, &account, &message)?;
    let not_found = || {
        SimError::not_found(&format!(
            "{}/Media/{file}",
            message_path(&account, &message)
        ))
    };
    let media = m
        .media
        .iter()
        .find(|x| x.sid == sid)
        .ok_or_else(not_found)?;
    if metadata {
        return Ok(Json(media_view(&m, media)).into_response());
    }
    if media.not_ready_for > 0 {
        let stored = w.messages.get_mut(&message).expect("exists");
        if let Some(x) = stored.media.iter_mut().find(|x| x.sid == sid) {
            x.not_ready_for -= 1;
        }
        return Err(not_found());
    }
    Ok((
        [(header::CONTENT_TYPE, media.content_type.clone())],
        media.content.clone(),
    )
        .into_response())
}

pub async fn delete_media(
    State(sim): State<Sim>,
    Path((account, message, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> SimResult<StatusCode> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let mut w = sim.world();
    owned_message(&w, &account, &message)?;
    let stored = w.messages.get_mut(&message).expect("exists");
    let before = stored.media.len();
    stored.media.retain(|x| x.sid != sid);
    if stored.media.len() == before {
        return Err(SimError::not_found(&format!(
            "{}/Media/{file}",
            message_path(&account, &message)
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
