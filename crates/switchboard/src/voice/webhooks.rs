//! The voice webhooks: a call coming in runs its number's flow (`/twilio/voice`), and each
//! waiting step reports back (`/twilio/voice/step`, `/flow`, `/ask`); call status,
//! recording and transcription callbacks follow. Every request is signature-checked first
//! (`http::webhook`), every call found is within the account that signed, and a replay is
//! answered as before without storing anything twice: flow requests carry their turn,
//! callbacks a key kept once.

use super::calls::{call_rank, Call};
use super::flow::Flow;
use super::render::{continue_from, render_from, Ctx, Effect, Rendered, StepResult};
use super::store;
use crate::db::{now_ms, Db, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::webhook::{invalid, security_event, Webhook};
use crate::App;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use twilio::webhook::VoiceWebhook;
use twilio::Form;

pub fn router() -> Router<App> {
    Router::new()
        .route("/twilio/voice", post(incoming))
        .route("/twilio/voice/step", post(step))
        .route("/twilio/voice/flow", post(other_flow))
        .route("/twilio/voice/ask", post(ask_app))
        .route("/twilio/voice/status", post(status))
        .route("/twilio/voice/recording", post(recording_event))
        .route("/twilio/voice/transcription", post(transcription_event))
}

pub(crate) fn twiml_response(r: &Rendered) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        r.twiml.to_string(),
    )
        .into_response()
}

async fn load_flow(
    db: &Db,
    tenant_id: &str,
    flow_id: Option<&str>,
) -> DbResult<Option<(String, Flow)>> {
    let Some(id) = flow_id else { return Ok(None) };
    Ok(super::flows::find(db, tenant_id, id)
        .await?
        .map(|f| (f.id, f.flow)))
}

/// The flow a call runs: its own, with any steps an app added.
async fn call_flow(db: &Db, c: &Call) -> DbResult<Option<Flow>> {
    if let Some(f) = c
        .flow_override
        .as_deref()
        .and_then(|j| serde_json::from_str::<Flow>(j).ok())
    {
        return Ok(Some(f));
    }
    Ok(load_flow(db, &c.tenant_id, c.flow_id.as_deref())
        .await?
        .map(|(_, f)| f))
}

/// What the app may answer: a step of the flow to go to, or steps to add and where to start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppAnswer {
    next: Option<String>,
    start: Option<String>,
    #[serde(default)]
    steps: std::collections::BTreeMap<String, super::flow::Step>,
}

/// An `ask_app` step: POSTs the call to the tenant's app (signed), which answers with the next
/// steps. A timeout, an error or an answer that does not validate goes to the fallback step.
/// A replayed request is answered from what the app said the first time, without asking again.
async fn ask_app(State(app): State<App>, hook: Webhook) -> ApiResult<Response> {
    let (c, _) = call_of(&app, &hook, true).await?;
    let (turn, first) = take_turn(&app, &hook, &c).await?;
    let name = hook.query("step").unwrap_or_default();
    let Some(flow) = call_flow(app.db(), &c).await? else {
        return finish(&app, &c, unconfigured()).await;
    };
    let Some(super::flow::Step::AskApp(ask)) = flow.steps.get(&name).cloned() else {
        return finish(&app, &c, unconfigured()).await;
    };
    if !first {
        let start = store::last_event_status(app.db(), &c, &["ask_app", "ask_app_failed"])
            .await?
            .unwrap_or_else(|| ask.fallback.clone());
        return Ok(twiml_response(&render_from(
            &flow,
            &start,
            &ctx(&app, &c, turn),
        )));
    }
    let outcome = ask_the_app(&app, &c, &name, &ask, &flow).await;
    let r = match outcome {
        Ok((merged, start)) => {
            if merged != flow {
                let json = serde_json::to_string(&merged).unwrap_or_default();
                store::set_flow_override(app.db(), &c.id, &json).await?;
            }
            let (kind, form) = ("ask_app", Form::new());
            store::insert_event(app.db().pool(), &c, kind, Some(&start), true, &form, None).await?;
            render_from(&merged, &start, &ctx(&app, &c, turn))
        }
        Err(reason) => {
            tracing::warn!(call_id = %c.id, %reason, "ask_app fell back");
            let form = Form(vec![("reason".into(), reason)]);
            let fallback = Some(ask.fallback.as_str());
            store::insert_event(
                app.db().pool(),
                &c,
                "ask_app_failed",
                fallback,
                true,
                &form,
                None,
            )
            .await?;
            render_from(&flow, &ask.fallback, &ctx(&app, &c, turn))
        }
    };
    finish(&app, &c, r).await
}

/// Signs `t.body` with the tenant's app signing secret: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub fn app_signature(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn ask_the_app(
    app: &App,
    c: &Call,
    step: &str,
    ask: &super::flow::AskApp,
    flow: &Flow,
) -> Result<(Flow, String), String> {
    let body = json!({
        "call_id": c.id, "call_sid": c.twilio_sid, "from": c.from, "to": c.to, "step": step, "path": c.path,
    })
    .to_string();
    let url = crate::egress::check_url(&ask.url, app.config().allow_private_urls)?;
    let secret = crate::tenants::api::app_signing_secret(app, &c.tenant_id);
    let sig = app_signature(&secret, chrono::Utc::now().timestamp(), &body);
    let resp = app
        .tenant_http()
        .post(url)
        .timeout(std::time::Duration::from_millis(ask.timeout_ms as u64))
        .header("Content-Type", "application/json")
        .header("X-Switchboard-Signature", sig)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} ms", ask.timeout_ms)
            } else {
                e.to_string()
            }
        })?;
    if !resp.status().is_success() {
        return Err(format!("the app answered HTTP {}", resp.status()));
    }
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > 256 * 1024 {
        return Err("the app's answer is larger than 256 KiB".into());
    }
    let answer: AppAnswer = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the app's answer is not valid: {e}"))?;
    let mut merged = flow.clone();
    let start = match (answer.next, answer.start) {
        (Some(next), None) if answer.steps.is_empty() => next,
        (None, Some(start)) => start,
        _ => {
            return Err("answer with {\"next\": step} or {\"start\": step, \"steps\": {…}}".into())
        }
    };
    merged.steps.extend(answer.steps);
    let original_start = merged.start.clone();
    merged.start = start.clone();
    let tenant = crate::tenants::store::get_tenant(app.db(), &c.tenant_id)
        .await
        .map_err(|e| e.to_string())?;
    let region = tenant
        .map(|t| t.default_region)
        .unwrap_or_else(|| "US".into());
    super::flow::validate_extension(&mut merged, &region).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    merged.start = original_start;
    Ok((merged, start))
}

fn unconfigured() -> Rendered {
    Rendered {
        twiml: twilio::twiml::Response::new()
            .say(twilio::twiml::Say::new(
                "This number cannot take calls right now. Goodbye.",
            ))
            .hangup(),
        path: vec![],
        effects: vec![],
    }
}

/// Records what a document did and carries out its effects.
async fn finish(app: &App, c: &Call, r: Rendered) -> ApiResult<Response> {
    // Twilio answers an inbound call when it starts on TwiML other than <Reject>; a number's
    // status callback only reports the end, so the answer time is taken here.
    let rejected = r
        .twiml
        .verbs()
        .first()
        .is_some_and(|v| v.name() == "Reject");
    let answered = c.direction == "inbound" && !rejected && c.answered_at.is_none();
    store::record_steps(app.db(), c, &r.path, answered).await?;
    for e in &r.effects {
        match e {
            Effect::SendTemplate {
                template,
                window_minutes,
                known_contacts_only,
            } => {
                if let Err(err) =
                    missed_call_text(app, c, template, *window_minutes, *known_contacts_only).await
                {
                    // The call itself must still be answered; the failure is logged and kept.
                    tracing::warn!(call_id = %c.id, error = %err.message, "missed-call text not sent");
                    store::insert_event(
                        app.db().pool(),
                        c,
                        "missed_call_text_failed",
                        None,
                        false,
                        &Form(vec![("error".into(), err.message)]),
                        None,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(twiml_response(&r))
}

/// Texts the caller once per window (per number and caller), through the normal send path.
async fn missed_call_text(
    app: &App,
    c: &Call,
    template: &str,
    window_minutes: u32,
    known_only: bool,
) -> ApiResult<()> {
    let tenant = crate::tenants::store::get_tenant(app.db(), &c.tenant_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let caller = crate::phone::E164::parse(&c.from, &tenant.default_region).map_err(|e| {
        ApiError::unprocessable(
            "invalid_phone_number",
            format!("the caller cannot be texted: {e}"),
        )
    })?;
    if known_only
        && crate::messaging::contacts::by_phone(app.db(), &tenant.id, caller.as_str())
            .await?
            .is_none()
    {
        return Ok(());
    }
    let t = crate::messaging::templates::find(app.db(), &tenant.id, template)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable("unknown_template", format!("no template {template:?}"))
        })?;
    let window_ms = window_minutes as i64 * 60_000;
    let since = now_ms() - window_ms;
    if store::texted_since(app.db(), &tenant.id, &c.to, caller.as_str(), &t.id, since).await? {
        return Ok(());
    }
    // Calls racing within one window share an idempotency key, so only one text goes out.
    let key = format!(
        "missed-call:{}:{}:{}:{}",
        c.to,
        caller,
        t.id,
        now_ms() / window_ms.max(1)
    );
    let req = crate::messaging::api::SendRequest {
        to: caller.to_string(),
        body: None,
        media_urls: vec![],
        from: Some(c.to.clone()),
        messaging_service_sid: None,
        template: Some(t.id.clone()),
        variables: Default::default(),
        validity_period: None,
    };
    let (m, _) = crate::messaging::api::send(app, &tenant, req, Some(key)).await?;
    let form = Form(vec![("message_id".into(), m.id)]);
    store::insert_event(
        app.db().pool(),
        c,
        "missed_call_text",
        Some(m.status.as_str()),
        true,
        &form,
        None,
    )
    .await?;
    Ok(())
}

fn ctx<'a>(app: &'a App, c: &'a Call, turn: i64) -> Ctx<'a> {
    Ctx {
        base: &app.config().public_url,
        call_id: &c.id,
        turn,
        now: chrono::Utc::now(),
        caller: &c.from,
        number: &c.to,
        twilio_transcribe: app.config().stt.is_none(),
    }
}

/// A call comes in: record it, and answer with the number's flow.
async fn incoming(State(app): State<App>, hook: Webhook) -> ApiResult<Response> {
    let v = VoiceWebhook::from_form(&hook.form, true).map_err(invalid)?;
    let (from, to) = (v.from.unwrap_or_default(), v.to.unwrap_or_default());
    let number = app
        .directory()
        .number_by_phone(app.db(), &to)
        .await?
        .ok_or_else(|| ApiError::not_found("the number called"))?;
    hook.check_owner(&number.tenant_id, "number", &to)?;
    let status = v
        .call_status
        .filter(|s| call_rank(s).is_some())
        .unwrap_or_else(|| "ringing".into());
    // The call (once per CallSid within the tenant; refused when another account has it) and
    // the request that reported it, in one transaction.
    let sid = v.call_sid;
    let incoming = Arc::new(store::Incoming {
        number,
        account_tenants: hook.tenants.clone(),
        sid: sid.clone(),
        from,
        to,
        status,
        form: hook.form.clone(),
    });
    let (c, first) = app
        .db()
        .write(move |tx| {
            let incoming = incoming.clone();
            Box::pin(async move { store::record_incoming(tx, &incoming).await })
        })
        .await?
        .ok_or_else(|| {
            security_event(&hook.account_sid, "call", &sid);
            ApiError::forbidden("this CallSid belongs to another account")
        })?;
    let r = match load_flow(app.db(), &c.tenant_id, c.flow_id.as_deref()).await? {
        Some((_, flow)) => render_from(&flow, &flow.start, &ctx(&app, &c, 0)),
        None => unconfigured(),
    };
    if !first {
        return Ok(twiml_response(&r));
    }
    finish(&app, &c, r).await
}

/// The call a webhook is about, from our id in the URL (or Twilio's CallSid), within the
/// account that signed it, and checked against the CallSid it names.
async fn call_of(app: &App, hook: &Webhook, call_request: bool) -> ApiResult<(Call, VoiceWebhook)> {
    let v = VoiceWebhook::from_form(&hook.form, call_request).map_err(invalid)?;
    let c = match hook.query_id("call", "call")? {
        Some(id) => store::get_any(app.db(), &id).await?,
        None => store::get_by_sid(app.db(), &hook.tenants, &v.call_sid).await?,
    }
    .ok_or_else(|| ApiError::not_found("call"))?;
    hook.check_owner(&c.tenant_id, "call", &v.call_sid)?;
    // A child leg (a forwarded call) reports its parent's id; accept either.
    if let Some(own) = c.twilio_sid.as_deref() {
        if v.call_sid != own && v.parent_call_sid.as_deref() != Some(own) {
            security_event(&hook.account_sid, "call", &v.call_sid);
            return Err(ApiError::bad_request(
                "invalid_webhook",
                "CallSid does not belong to this call",
            ));
        }
    }
    Ok((c, v))
}

/// The turn of the flow a request answers (named in its URL), and whether this is the first
/// time it is asked: a replay is answered as before and stores nothing.
async fn take_turn(app: &App, hook: &Webhook, c: &Call) -> ApiResult<(i64, bool)> {
    let Some(t) = hook.query("turn") else {
        return Ok((c.turns, true));
    };
    let t: i64 = t
        .parse()
        .ok()
        .filter(|t| *t >= 0)
        .ok_or_else(|| ApiError::bad_request("invalid_webhook", "turn is not a number"))?;
    let first = store::claim_turn(app.db(), &c.id, t).await?;
    Ok((t + 1, first))
}

/// The result of a waiting step (a menu choice, a forward's outcome, a voicemail).
async fn step(State(app): State<App>, hook: Webhook) -> ApiResult<Response> {
    let (c, _) = call_of(&app, &hook, true).await?;
    // A voicemail's recording is checked before the turn is taken or anything kept.
    super::recordings::check_reported(&app, &hook, &c).await?;
    let (turn, first) = take_turn(&app, &hook, &c).await?;
    let form = &hook.form;
    let name = hook
        .query("step")
        .ok_or_else(|| ApiError::bad_request("invalid_webhook", "step is missing"))?;
    if first {
        store::insert_event(
            app.db().pool(),
            &c,
            "step_result",
            Some(&name),
            true,
            form,
            None,
        )
        .await?;
    }
    let Some(flow) = call_flow(app.db(), &c).await? else {
        return finish(&app, &c, unconfigured()).await;
    };
    let result = if form.get("DialCallStatus").is_some() {
        StepResult::Forward {
            dial_status: form.get("DialCallStatus").unwrap_or_default().to_string(),
            index: hook
                .query("index")
                .and_then(|i| i.parse().ok())
                .unwrap_or(0),
        }
    } else if form.get("RecordingSid").is_some() || form.get("RecordingUrl").is_some() {
        StepResult::Voicemail
    } else {
        StepResult::Menu {
            digits: form.get("Digits").unwrap_or_default().to_string(),
            speech: form.get("SpeechResult").unwrap_or_default().to_string(),
            attempt: hook
                .query("attempt")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
        }
    };
    let r = continue_from(&flow, &name, &result, &ctx(&app, &c, turn));
    if !first {
        return Ok(twiml_response(&r));
    }
    if result == StepResult::Voicemail {
        let transcribe =
            matches!(flow.steps.get(&name), Some(super::flow::Step::Voicemail(v)) if v.transcribe);
        super::recordings::voicemail_recorded(&app, &hook, &c, transcribe).await?;
    }
    finish(&app, &c, r).await
}

/// A `redirect` step: the call continues with another of the tenant's flows.
async fn other_flow(State(app): State<App>, hook: Webhook) -> ApiResult<Response> {
    let (c, _) = call_of(&app, &hook, true).await?;
    let (turn, first) = take_turn(&app, &hook, &c).await?;
    let name = hook.query("flow").unwrap_or_default();
    let Some((id, flow)) = load_flow(app.db(), &c.tenant_id, Some(&name)).await? else {
        return finish(&app, &c, unconfigured()).await;
    };
    let r = render_from(&flow, &flow.start, &ctx(&app, &c, turn));
    if !first {
        return Ok(twiml_response(&r));
    }
    store::set_flow(app.db(), &c.id, &id).await?;
    finish(&app, &c, r).await
}

/// A call status callback: the status only moves forward, and it commits with the callback
/// that moved it. A replayed callback changes nothing and is not kept again.
async fn status(State(app): State<App>, hook: Webhook) -> ApiResult<StatusCode> {
    let (c, v) = call_of(&app, &hook, false).await?;
    let status = v.call_status.unwrap_or_default();
    let duration = hook
        .form
        .get("CallDuration")
        .and_then(|d| d.parse::<i64>().ok());
    let once = format!("status:{}:{status}", v.call_sid);
    let (c, form, sid) = (Arc::new(c), Arc::new(hook.form.clone()), v.call_sid);
    let kept = app
        .db()
        .write(move |tx| {
            let (c, form, status, sid, once) = (
                c.clone(),
                form.clone(),
                status.clone(),
                sid.clone(),
                once.clone(),
            );
            Box::pin(async move {
                let applied =
                    store::advance(&mut **tx, &c.id, &status, duration, Some(&sid)).await?;
                let event = (Some(status.as_str()), applied, &*form, Some(once.as_str()));
                store::insert_event(
                    &mut **tx,
                    &c,
                    "status_callback",
                    event.0,
                    event.1,
                    event.2,
                    event.3,
                )
                .await
            })
        })
        .await?;
    app.metrics()
        .webhook("voice/status", if kept { "accepted" } else { "duplicate" });
    Ok(StatusCode::NO_CONTENT)
}

/// Recording and transcription callbacks are kept with the call (once each), then applied.
async fn recording_event(State(app): State<App>, hook: Webhook) -> ApiResult<StatusCode> {
    if let Some(c) = media_callback(&app, &hook, "recording", "RecordingStatus").await? {
        super::recordings::recording_reported(&app, &hook, &c).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn transcription_event(State(app): State<App>, hook: Webhook) -> ApiResult<StatusCode> {
    if let Some(c) = media_callback(&app, &hook, "transcription", "TranscriptionStatus").await? {
        super::recordings::transcription_reported(&app, &hook, &c).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The call of a recording or transcription callback, or None for a replay.
async fn media_callback(
    app: &App,
    hook: &Webhook,
    kind: &'static str,
    status_param: &str,
) -> ApiResult<Option<Call>> {
    let (c, v) = call_of(app, hook, false).await?;
    super::recordings::check_reported(app, hook, &c).await?;
    let form = &hook.form;
    let status = form.get(status_param);
    let once = format!(
        "{kind}:{}:{}:{}",
        v.recording_sid.as_deref().unwrap_or_default(),
        form.get("TranscriptionSid").unwrap_or_default(),
        status.unwrap_or_default()
    );
    let kept =
        store::insert_event(app.db().pool(), &c, kind, status, true, form, Some(&once)).await?;
    let outcome = if kept { "accepted" } else { "duplicate" };
    app.metrics().webhook(&format!("voice/{kind}"), outcome);
    Ok(kept.then_some(c))
}
