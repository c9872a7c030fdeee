//! Twilio's messaging webhooks: inbound messages (`/twilio/messaging`) and status callbacks
//! (`/twilio/messaging/status`). Each is signature-checked with the owning tenant's auth token
//! against the configured public URL; nothing is stored for a bad signature. Repeats and
//! reorderings change nothing twice and never move a status backwards.

use super::inbound::{Receipt, Received};
use super::store;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::http::webhook::{invalid, security_event, Webhook};
use crate::App;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{Map, Value};
use std::sync::Arc;
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

async fn inbound(State(app): State<App>, hook: Webhook) -> ApiResult<Response> {
    let form = &hook.form;
    let msg = InboundMessage::from_form(form).map_err(invalid)?;
    let number = app
        .directory()
        .number_by_phone(app.db(), &msg.to)
        .await?
        .ok_or_else(|| ApiError::not_found("the number this message was sent to"))?;
    hook.check_owner(&number.tenant_id, "number", &msg.to)?;
    let msg_sid = msg.message_sid.clone();
    let received = std::sync::Arc::new(Received {
        tenant_id: number.tenant_id.clone(),
        account_tenants: hook.tenants.clone(),
        number,
        msg,
        raw: raw(form),
        now: now_ms(),
        reply_validity_ms: app.config().workers.default_validity.as_millis() as i64,
    });
    match app.inbound_writer().write(received).await? {
        Receipt::Stored => {
            app.work_queued();
            app.metrics().webhook("messaging", "accepted");
        }
        Receipt::Repeat => app.metrics().webhook("messaging", "duplicate"),
        Receipt::Refused => {
            security_event(&hook.account_sid, "message", &msg_sid);
            app.metrics().webhook("messaging", "refused");
            return Err(ApiError::forbidden(
                "this MessageSid belongs to another account",
            ));
        }
    }
    Ok(twiml(twilio::twiml::Response::new()))
}

async fn status(State(app): State<App>, hook: Webhook) -> ApiResult<StatusCode> {
    let form = &hook.form;
    let cb = MessageStatusCallback::from_form(form).map_err(invalid)?;
    // Our id rides in the callback URL; Twilio's SID finds messages sent before it did.
    let m = match hook.query_id("mid", "msg")? {
        Some(id) => store::get_any(app.db(), &id).await?,
        None => store::get_by_sid(app.db(), &hook.tenants, &cb.message_sid).await?,
    }
    .ok_or_else(|| ApiError::not_found("message"))?;
    hook.check_owner(&m.tenant_id, "message", &cb.message_sid)?;
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
    let code = cb.error_code.map(|c| c.to_string());
    let message = cb
        .error_message
        .clone()
        .or_else(|| code.as_ref().map(|c| format!("Twilio error {c}")));
    let update = Arc::new(store::StatusUpdate {
        tenant_id: m.tenant_id,
        message_id: m.view.id,
        status: cb.status.as_str().to_string(),
        error: code.zip(message),
        message_sid: cb.message_sid,
        raw: raw(form),
    });
    let applied = app
        .db()
        .write(move |tx| {
            let u = update.clone();
            Box::pin(async move { store::record_status(tx, &u).await })
        })
        .await?;
    let outcome = if applied { "accepted" } else { "duplicate" };
    app.metrics().webhook("messaging/status", outcome);
    Ok(StatusCode::NO_CONTENT)
}
