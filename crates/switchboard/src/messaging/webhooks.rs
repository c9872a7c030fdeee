//! Twilio's messaging webhooks: inbound messages (`/twilio/messaging`) and status callbacks
//! (`/twilio/messaging/status`). Each is signature-checked with the owning tenant's auth token
//! against the configured public URL; nothing is stored for a bad signature. Repeats and
//! reorderings change nothing twice and never move a status backwards.

use super::store::{self, NewMessage};
use super::{cost, media};
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::http::{query_param, verify_twilio, TwilioForm};
use crate::ids::new_id;
use crate::tenants::store as tenants;
use crate::App;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{Map, Value};
use twilio::keywords::{classify as keyword, Keyword};
use twilio::webhook::{InboundMessage, MessageStatusCallback};

pub fn router() -> Router<App> {
    Router::new()
        .route("/twilio/messaging", post(inbound))
        .route("/twilio/messaging/status", post(status))
}

fn raw(form: &twilio::Form) -> Value {
    let mut m = Map::new();
    for (k, v) in form.pairs() {
        m.entry(k.clone())
            .and_modify(|e| {
                if let Value::Array(a) = e {
                    a.push(Value::String(v.clone()));
                } else {
                    *e = Value::Array(vec![e.clone(), Value::String(v.clone())]);
                }
            })
            .or_insert_with(|| Value::String(v.clone()));
    }
    Value::Object(m)
}

fn twiml(r: twilio::twiml::Response) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        r.to_string(),
    )
        .into_response()
}

async fn inbound(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<Response> {
    let mut msg = InboundMessage::from_form(&form)
        .map_err(|e| ApiError::bad_request("invalid_webhook", e.to_string()))?;
    let number = tenants::number_by_phone(app.db(), &msg.to)
        .await?
        .ok_or_else(|| ApiError::not_found("the number this message was sent to"))?;
    verify_twilio(&app, &number.tenant_id, &uri, &headers, &form).await?;

    // A NUL cannot be stored as text; keep the message, marking where it was. The raw event
    // (JSON-escaped) keeps the exact original.
    msg.body = msg.body.replace('\0', "\u{FFFD}");
    let tenant_id = number.tenant_id.clone();
    let now = now_ms();
    let (seg, _) = cost(&msg.body, msg.media.len());
    let kw = keyword(&msg.body);
    // Read before the transaction: a transaction never waits on another pool connection.
    let was_opted_out = store::is_opted_out(app.db(), &tenant_id, &msg.to, &msg.from).await?;
    let mut tx = app.db().begin().await?;
    let contact_id = store::upsert_contact(&mut tx, &tenant_id, &msg.from, now).await?;
    let conversation_id =
        store::upsert_conversation(&mut tx, &tenant_id, &contact_id, &number.id, now).await?;
    let id = new_id("msg");
    let inserted = store::insert_message(
        &mut tx,
        &NewMessage {
            id: id.clone(),
            tenant_id: tenant_id.clone(),
            direction: "inbound",
            number_id: Some(number.id.clone()),
            conversation_id: Some(conversation_id.clone()),
            contact_id: Some(contact_id.clone()),
            from: msg.from.clone(),
            to: msg.to.clone(),
            body: msg.body.clone(),
            media_urls: msg.media.iter().map(|m| m.url.clone()).collect(),
            status: "received",
            twilio_sid: Some(msg.message_sid.clone()),
            encoding: seg.encoding.as_str(),
            segments: msg
                .num_segments
                .map(i64::from)
                .unwrap_or(seg.count.max(1) as i64),
            price_estimate: None,
            template_id: None,
            idempotency_key: None,
            request_hash: None,
            next_attempt_at: None,
            valid_until: None,
            now,
        },
    )
    .await?;
    if !inserted {
        // Twilio repeated the webhook: it was handled the first time.
        drop(tx);
        return Ok(twiml(twilio::twiml::Response::new()));
    }
    store::insert_event(
        &mut tx,
        &tenant_id,
        &id,
        "inbound",
        Some("received"),
        true,
        &raw(&form),
    )
    .await?;
    for (i, m) in msg.media.iter().enumerate() {
        media::insert_pending(
            &mut tx,
            &tenant_id,
            &id,
            i as i64,
            &m.url,
            m.content_type.as_deref(),
        )
        .await?;
    }
    if let Some(k) = kw {
        store::log_keyword(
            &mut tx,
            &tenant_id,
            &msg.to,
            &msg.from,
            k.as_str(),
            &msg.body,
            &id,
        )
        .await?;
    }
    match kw {
        Some(Keyword::Stop) => {
            store::set_opt_out(
                &mut tx, &tenant_id, &msg.to, &msg.from, true, "STOP", "keyword",
            )
            .await?
        }
        Some(Keyword::Start) => {
            store::set_opt_out(
                &mut tx, &tenant_id, &msg.to, &msg.from, false, "START", "keyword",
            )
            .await?
        }
        _ => {}
    }
    // Twilio answers keywords itself; an auto-reply goes out for anything else, through the
    // dispatcher so it is paced, tracked and never lost.
    let opted_out = (was_opted_out && kw != Some(Keyword::Start)) || kw == Some(Keyword::Stop);
    if let (Some(text), None, false) = (number.auto_reply.as_ref(), kw, opted_out) {
        let (seg, price) = cost(text, 0);
        store::insert_message(
            &mut tx,
            &NewMessage {
                id: new_id("msg"),
                tenant_id: tenant_id.clone(),
                direction: "outbound",
                number_id: Some(number.id.clone()),
                conversation_id: Some(conversation_id),
                contact_id: Some(contact_id),
                from: msg.to.clone(),
                to: msg.from.clone(),
                body: text.clone(),
                media_urls: vec![],
                status: "accepted",
                twilio_sid: None,
                encoding: seg.encoding.as_str(),
                segments: seg.count.max(1) as i64,
                price_estimate: Some(price),
                template_id: None,
                idempotency_key: Some(format!("auto-reply:{}", msg.message_sid)),
                request_hash: None,
                next_attempt_at: Some(now),
                valid_until: Some(now + app.config().workers.default_validity.as_millis() as i64),
                now,
            },
        )
        .await?;
    }
    tx.commit().await?;
    app.work_queued();
    Ok(twiml(twilio::twiml::Response::new()))
}

async fn status(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<StatusCode> {
    let cb = MessageStatusCallback::from_form(&form)
        .map_err(|e| ApiError::bad_request("invalid_webhook", e.to_string()))?;
    // Our id rides in the callback URL; Twilio's SID finds messages sent before it did.
    let mid = query_param(&uri, "mid");
    let m = match mid {
        Some(id) => store::get_any(app.db(), &id).await?,
        None => store::get_by_sid(app.db(), &cb.message_sid).await?,
    }
    .ok_or_else(|| ApiError::not_found("message"))?;
    if m.view
        .twilio_sid
        .as_deref()
        .is_some_and(|s| s != cb.message_sid)
    {
        return Err(ApiError::bad_request(
            "invalid_webhook",
            "MessageSid does not belong to this message",
        ));
    }
    verify_twilio(&app, &m.tenant_id, &uri, &headers, &form).await?;

    let status = cb.status.as_str().to_string();
    let code = cb.error_code.map(|c| c.to_string());
    let message = cb
        .error_message
        .clone()
        .or_else(|| code.as_ref().map(|c| format!("Twilio error {c}")));
    let error = code.as_deref().zip(message.as_deref());
    let mut tx = app.db().begin().await?;
    let applied = store::advance_status(
        &mut tx,
        &m.view.id,
        &status,
        error,
        Some(&cb.message_sid),
        Some(now_ms() + app.config().workers.status_poll_after.as_millis() as i64),
    )
    .await?;
    store::insert_event(
        &mut tx,
        &m.tenant_id,
        &m.view.id,
        "status_callback",
        Some(&status),
        applied,
        &raw(&form),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
