//! Calls: the voice webhooks that run a number's flow (`/twilio/voice`, `/twilio/voice/step`,
//! `/twilio/voice/flow`), call status callbacks (never backwards, repeats change nothing), and
//! the call history API.

use super::flow::Flow;
use super::render::{continue_from, render_from, Ctx, Effect, Rendered, StepResult};
use crate::db::{now_ms, opt_str, Db, DbError, DbResult, Row};
use crate::error::{ApiError, ApiResult};
use crate::http::{query_param, verify_twilio, Auth, QueryParams, TwilioForm};
use crate::ids::new_id;
use crate::messaging::iso;
use crate::App;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use std::sync::Arc;
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
        .route("/v1/calls", get(list).post(super::outbound::create))
        .route("/v1/calls/{id}", get(fetch))
}

/// Order of call statuses; the last five are final.
pub fn call_rank(status: &str) -> Option<i64> {
    Some(match status {
        // Ours, before Twilio has the call.
        "accepted" | "submitting" => 0,
        "queued" => 1,
        "initiated" => 2,
        "ringing" => 3,
        "in-progress" => 4,
        "completed" | "busy" | "failed" | "no-answer" | "canceled" => 5,
        _ => return None,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub id: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub twilio_sid: Option<String>,
    pub number_id: Option<String>,
    pub flow_id: Option<String>,
    pub path: Vec<String>,
    pub ringing_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration: Option<i64>,
    /// What the app attached when it placed the call (`{}` otherwise).
    pub metadata: Value,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// What `error_code` means.
    pub error_description: Option<&'static str>,
    /// Tries at placing an outbound call with Twilio.
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(skip)]
    pub created_ms: i64,
    /// The flow with the steps an app added during the call.
    #[serde(skip)]
    pub flow_override: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Value>>,
}

const CALL_COLS: &str = "id, tenant_id, number_id, direction, from_number, to_number, status, twilio_sid, flow_id, path, \
    ringing_at, answered_at, ended_at, duration, created_at, updated_at, flow_override, metadata, \
    error_code, error_message, attempts";

fn call(r: &AnyRow) -> Call {
    let t = |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten();
    Call {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
        number_id: opt_str(r, "number_id"),
        // One vocabulary with messages: `inbound` or `outbound` (Twilio's `outbound-api` and
        // `outbound-dial` are both ours to place).
        direction: match r.get::<String, _>("direction").as_str() {
            "inbound" => "inbound".into(),
            _ => "outbound".into(),
        },
        from: r.get("from_number"),
        to: r.get("to_number"),
        status: r.get("status"),
        twilio_sid: opt_str(r, "twilio_sid"),
        flow_id: opt_str(r, "flow_id"),
        path: serde_json::from_str(&r.get::<String, _>("path")).unwrap_or_default(),
        ringing_at: t("ringing_at").map(iso),
        answered_at: t("answered_at").map(iso),
        ended_at: t("ended_at").map(iso),
        duration: t("duration"),
        metadata: opt_str(r, "metadata")
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_else(|| Value::Object(Default::default())),
        error_description: opt_str(r, "error_code")
            .as_deref()
            .and_then(crate::messaging::describe_error),
        error_code: opt_str(r, "error_code"),
        error_message: opt_str(r, "error_message"),
        attempts: r.get("attempts"),
        created_ms: r.get("created_at"),
        flow_override: opt_str(r, "flow_override"),
        created_at: iso(r.get("created_at")),
        updated_at: iso(r.get("updated_at")),
        events: None,
    }
}

async fn get_any(db: &Db, id: &str) -> DbResult<Option<Call>> {
    let r = sqlx::query(&format!("SELECT {CALL_COLS} FROM calls WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(call))
}

/// One of the tenant's calls, as every endpoint shows it.
pub(crate) async fn find(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Call>> {
    Ok(get_any(db, id).await?.filter(|c| c.tenant_id == tenant_id))
}

async fn get_by_sid(db: &Db, sid: &str) -> DbResult<Option<Call>> {
    let r = sqlx::query(&format!(
        "SELECT {CALL_COLS} FROM calls WHERE twilio_sid = $1"
    ))
    .bind(sid)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(call))
}

async fn insert_event<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    c: &Call,
    kind: &str,
    status: Option<&str>,
    applied: bool,
    form: &Form,
) -> DbResult<()> {
    let payload: serde_json::Map<String, Value> = form
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    sqlx::query("INSERT INTO call_events (id, tenant_id, call_id, kind, status, applied, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(new_id("evt"))
        .bind(&c.tenant_id)
        .bind(&c.id)
        .bind(kind)
        .bind(status)
        .bind(applied as i64)
        .bind(Value::Object(payload).to_string())
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Adds the steps a document ran to the call's path and, when the call was answered now, its
/// answer time: one statement, through the group-commit writer.
async fn record_steps(db: &Db, c: &Call, steps: &[String], answered: bool) -> DbResult<()> {
    if steps.is_empty() && !answered {
        return Ok(());
    }
    let mut path = c.path.clone();
    path.extend(steps.iter().cloned());
    let path = serde_json::to_string(&path).unwrap_or_else(|_| "[]".into());
    let id = c.id.clone();
    db.write(move |tx| {
        let (path, id) = (path.clone(), id.clone());
        Box::pin(async move {
            let now = now_ms();
            sqlx::query(
                "UPDATE calls SET path = $1, updated_at = $2, \
                 answered_at = CASE WHEN $3 = 1 THEN COALESCE(answered_at, $2) ELSE answered_at END WHERE id = $4",
            )
            .bind(path)
            .bind(now)
            .bind(answered as i64)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Ok(())
        })
    })
    .await
}

/// Moves a call's status forward only; final statuses stick. Returns whether it moved.
pub(crate) async fn advance<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
    status: &str,
    duration: Option<i64>,
    sid: Option<&str>,
) -> DbResult<bool> {
    let Some(rank) = call_rank(status) else {
        return Ok(false);
    };
    let now = now_ms();
    let res = sqlx::query(
        "UPDATE calls SET status = $1, status_rank = $2, updated_at = $3, \
         ringing_at = CASE WHEN $2 >= 3 THEN COALESCE(ringing_at, $3) ELSE ringing_at END, \
         answered_at = CASE WHEN $1 = 'in-progress' THEN COALESCE(answered_at, $3) ELSE answered_at END, \
         ended_at = CASE WHEN $2 = 5 THEN COALESCE(ended_at, $3) ELSE ended_at END, \
         duration = COALESCE($4, duration), twilio_sid = COALESCE(twilio_sid, $6), lease_until = NULL \
         WHERE id = $5 AND status_rank < $2",
    )
    .bind(status)
    .bind(rank)
    .bind(now)
    .bind(duration)
    .bind(id)
    .bind(sid)
    .execute(db)
    .await?;
    Ok(res.rows_affected() == 1)
}

fn twiml_response(r: &Rendered) -> Response {
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
async fn ask_app(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<Response> {
    let c = call_of(&app, &uri, &headers, &form).await?;
    let name = query_param(&uri, "step").unwrap_or_default();
    let Some(flow) = call_flow(app.db(), &c).await? else {
        return finish(&app, &c, unconfigured()).await;
    };
    let Some(super::flow::Step::AskApp(ask)) = flow.steps.get(&name).cloned() else {
        return finish(&app, &c, unconfigured()).await;
    };
    let outcome = ask_the_app(&app, &c, &name, &ask, &flow).await;
    let r = match outcome {
        Ok((merged, start)) => {
            if merged != flow {
                sqlx::query("UPDATE calls SET flow_override = $1 WHERE id = $2")
                    .bind(serde_json::to_string(&merged).unwrap_or_default())
                    .bind(&c.id)
                    .execute(app.db().pool())
                    .await
                    .map_err(DbError::from)?;
            }
            insert_event(
                app.db().pool(),
                &c,
                "ask_app",
                Some(&start),
                true,
                &Form::new(),
            )
            .await?;
            render_from(&merged, &start, &ctx(&app, &c))
        }
        Err(reason) => {
            tracing::warn!(call_id = %c.id, %reason, "ask_app fell back");
            insert_event(
                app.db().pool(),
                &c,
                "ask_app_failed",
                Some(&ask.fallback),
                true,
                &Form(vec![("reason".into(), reason)]),
            )
            .await?;
            render_from(&flow, &ask.fallback, &ctx(&app, &c))
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
    let secret = crate::tenants::api::app_signing_secret(app, &c.tenant_id);
    let sig = app_signature(&secret, chrono::Utc::now().timestamp(), &body);
    let resp = app
        .http()
        .post(&ask.url)
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
    record_steps(app.db(), c, &r.path, answered).await?;
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
                    insert_event(
                        app.db().pool(),
                        c,
                        "missed_call_text_failed",
                        None,
                        false,
                        &Form(vec![("error".into(), err.message)]),
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
    let recent = sqlx::query(
        "SELECT id FROM messages WHERE tenant_id = $1 AND from_number = $2 AND to_number = $3 AND template_id = $4 AND created_at >= $5 LIMIT 1",
    )
    .bind(&tenant.id)
    .bind(&c.to)
    .bind(caller.as_str())
    .bind(&t.id)
    .bind(now_ms() - window_ms)
    .fetch_optional(app.db().pool())
    .await
    .map_err(DbError::from)?;
    if recent.is_some() {
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
    insert_event(
        app.db().pool(),
        c,
        "missed_call_text",
        Some(&m.status),
        true,
        &Form(vec![("message_id".into(), m.id)]),
    )
    .await?;
    Ok(())
}

fn ctx<'a>(app: &'a App, c: &'a Call) -> Ctx<'a> {
    Ctx {
        base: &app.config().public_url,
        call_id: &c.id,
        now: chrono::Utc::now(),
        caller: &c.from,
        number: &c.to,
        twilio_transcribe: app.config().stt.is_none(),
    }
}

/// A call comes in: record it, and answer with the number's flow.
async fn incoming(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<Response> {
    let sid = form
        .non_empty("CallSid")
        .ok_or_else(|| ApiError::bad_request("invalid_webhook", "CallSid is missing"))?
        .to_string();
    let (from, to) = (
        form.get("From").unwrap_or_default().to_string(),
        form.get("To").unwrap_or_default().to_string(),
    );
    let number = app
        .directory()
        .number_by_phone(app.db(), &to)
        .await?
        .ok_or_else(|| ApiError::not_found("the number called"))?;
    verify_twilio(&app, &number.tenant_id, &uri, &headers, &form).await?;
    let status = form
        .get("CallStatus")
        .filter(|s| call_rank(s).is_some())
        .unwrap_or("ringing");
    // The call (once per CallSid, within the number's tenant) and the request that reported
    // it, in one transaction.
    let (number, form2, sid2) = (Arc::new(number), Arc::new(form.clone()), sid.clone());
    let (status, from2, to2) = (status.to_string(), from.clone(), to.clone());
    let (c, first) = app
        .db()
        .write(move |tx| {
            let (number, form, sid) = (number.clone(), form2.clone(), sid2.clone());
            let (status, from, to) = (status.clone(), from2.clone(), to2.clone());
            Box::pin(async move {
                let now = now_ms();
                let inserted = sqlx::query(
                    "INSERT INTO calls (id, tenant_id, number_id, direction, from_number, to_number, status, status_rank, twilio_sid, flow_id, \
                     ringing_at, created_at, updated_at) VALUES ($1, $2, $3, 'inbound', $4, $5, $6, $7, $8, $9, $10, $10, $10) \
                     ON CONFLICT (twilio_sid) DO NOTHING",
                )
                .bind(new_id("call"))
                .bind(&number.tenant_id)
                .bind(&number.id)
                .bind(&from)
                .bind(&to)
                .bind(&status)
                .bind(call_rank(&status).unwrap_or(2))
                .bind(&sid)
                .bind(&number.flow_id)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                let r = sqlx::query(&format!(
                    "SELECT {CALL_COLS} FROM calls WHERE twilio_sid = $1 AND tenant_id = $2"
                ))
                .bind(&sid)
                .bind(&number.tenant_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(c) = r.as_ref().map(call) else {
                    return Ok(None);
                };
                // A repeat of the webhook (Twilio retrying, or a replay) is answered as before
                // and stores nothing.
                if inserted {
                    insert_event(&mut **tx, &c, "voice_request", Some(&status), true, &form)
                        .await?;
                }
                Ok(Some((c, inserted)))
            })
        })
        .await?
        .ok_or_else(|| {
            tracing::warn!(call_sid = %sid, "a CallSid of another tenant was reported for this number; refused");
            ApiError::forbidden("this CallSid belongs to another account")
        })?;
    let r = match load_flow(app.db(), &c.tenant_id, c.flow_id.as_deref()).await? {
        Some((_, flow)) => render_from(&flow, &flow.start, &ctx(&app, &c)),
        None => unconfigured(),
    };
    if !first {
        return Ok(twiml_response(&r));
    }
    finish(&app, &c, r).await
}

/// The call this webhook is about, from our id in the URL, checked against Twilio's CallSid.
async fn call_of(
    app: &App,
    uri: &OriginalUri,
    headers: &HeaderMap,
    form: &Form,
) -> ApiResult<Call> {
    let c = match query_param(uri, "call") {
        Some(id) => get_any(app.db(), &id).await?,
        None => match form.non_empty("CallSid") {
            Some(sid) => get_by_sid(app.db(), sid).await?,
            None => None,
        },
    }
    .ok_or_else(|| ApiError::not_found("call"))?;
    verify_twilio(app, &c.tenant_id, uri, headers, form).await?;
    // A child leg (a forwarded call) reports its parent's id; accept either.
    let sid = form.get("CallSid");
    let parent = form.get("ParentCallSid");
    if c.twilio_sid.is_some() && sid != c.twilio_sid.as_deref() && parent != c.twilio_sid.as_deref()
    {
        return Err(ApiError::bad_request(
            "invalid_webhook",
            "CallSid does not belong to this call",
        ));
    }
    Ok(c)
}

/// The result of a waiting step (a menu choice, a forward's outcome, a voicemail).
async fn step(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<Response> {
    let c = call_of(&app, &uri, &headers, &form).await?;
    let name = query_param(&uri, "step")
        .ok_or_else(|| ApiError::bad_request("invalid_webhook", "step is missing"))?;
    insert_event(app.db().pool(), &c, "step_result", Some(&name), true, &form).await?;
    let Some(flow) = call_flow(app.db(), &c).await? else {
        return finish(&app, &c, unconfigured()).await;
    };
    let result = if form.get("DialCallStatus").is_some() {
        StepResult::Forward {
            dial_status: form.get("DialCallStatus").unwrap_or_default().to_string(),
            index: query_param(&uri, "index")
                .and_then(|i| i.parse().ok())
                .unwrap_or(0),
        }
    } else if form.get("RecordingSid").is_some() || form.get("RecordingUrl").is_some() {
        StepResult::Voicemail
    } else {
        StepResult::Menu {
            digits: form.get("Digits").unwrap_or_default().to_string(),
            speech: form.get("SpeechResult").unwrap_or_default().to_string(),
            attempt: query_param(&uri, "attempt")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
        }
    };
    if result == StepResult::Voicemail {
        let transcribe =
            matches!(flow.steps.get(&name), Some(super::flow::Step::Voicemail(v)) if v.transcribe);
        super::recordings::voicemail_recorded(&app, &c, &form, transcribe).await?;
    }
    let r = continue_from(&flow, &name, &result, &ctx(&app, &c));
    finish(&app, &c, r).await
}

/// A `redirect` step: the call continues with another of the tenant's flows.
async fn other_flow(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<Response> {
    let c = call_of(&app, &uri, &headers, &form).await?;
    let name = query_param(&uri, "flow").unwrap_or_default();
    let Some((id, flow)) = load_flow(app.db(), &c.tenant_id, Some(&name)).await? else {
        return finish(&app, &c, unconfigured()).await;
    };
    sqlx::query("UPDATE calls SET flow_id = $1 WHERE id = $2")
        .bind(&id)
        .bind(&c.id)
        .execute(app.db().pool())
        .await
        .map_err(DbError::from)?;
    let r = render_from(&flow, &flow.start, &ctx(&app, &c));
    finish(&app, &c, r).await
}

async fn status(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<StatusCode> {
    let c = call_of(&app, &uri, &headers, &form).await?;
    let status = form.get("CallStatus").unwrap_or_default().to_string();
    let duration = form.get("CallDuration").and_then(|d| d.parse::<i64>().ok());
    // The status and the callback that moved it commit together: a client never sees one
    // without the other.
    let (c, form) = (std::sync::Arc::new(c), std::sync::Arc::new(form));
    app.db()
        .write(move |tx| {
            let (c, form, status) = (c.clone(), form.clone(), status.clone());
            Box::pin(async move {
                let sid = form.get("CallSid");
                let applied = advance(&mut **tx, &c.id, &status, duration, sid).await?;
                insert_event(
                    &mut **tx,
                    &c,
                    "status_callback",
                    Some(&status),
                    applied,
                    &form,
                )
                .await
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Recording and transcription callbacks are kept with the call, then applied.
async fn recording_event(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<StatusCode> {
    let c = media_callback(&app, &uri, &headers, &form, "recording", "RecordingStatus").await?;
    super::recordings::recording_reported(&app, &c, &form).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn transcription_event(
    State(app): State<App>,
    uri: OriginalUri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm,
) -> ApiResult<StatusCode> {
    let c = media_callback(
        &app,
        &uri,
        &headers,
        &form,
        "transcription",
        "TranscriptionStatus",
    )
    .await?;
    super::recordings::transcription_reported(&app, &c, &form).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn media_callback(
    app: &App,
    uri: &OriginalUri,
    headers: &HeaderMap,
    form: &Form,
    kind: &str,
    status_param: &str,
) -> ApiResult<Call> {
    let c = call_of(app, uri, headers, form).await?;
    insert_event(
        app.db().pool(),
        &c,
        kind,
        form.get(status_param),
        true,
        form,
    )
    .await?;
    Ok(c)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    phone: Option<String>,
    direction: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(app): State<App>,
    auth: Auth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => return Err(ApiError::bad_request("invalid_query", "limit is 1 to 500")),
    };
    let phone = q
        .phone
        .as_deref()
        .map(|p| {
            crate::phone::E164::parse(p, &auth.tenant.default_region)
                .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))
        })
        .transpose()?;
    if let Some(d) = &q.direction {
        if !["inbound", "outbound-api", "outbound-dial", "outbound"].contains(&d.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "direction is inbound or outbound",
            ));
        }
    }
    if let Some(s) = &q.status {
        if call_rank(s).is_none() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown status {s:?}"),
            ));
        }
    }
    let time = |name: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("{name} is an RFC 3339 time"),
                        )
                    })
            })
            .transpose()
    };
    let (since, until) = (time("since", &q.since)?, time("until", &q.until)?);
    let before = q
        .cursor
        .as_deref()
        .map(crate::messaging::api::decode_cursor)
        .transpose()?;
    // One statement with optional filters: a NULL parameter switches its filter off.
    let direction = q
        .direction
        .as_deref()
        .map(|d| if d == "outbound" { "outbound%" } else { d });
    let rows = sqlx::query(&format!(
        "SELECT {CALL_COLS} FROM calls WHERE tenant_id = $1 \
         AND ($2 IS NULL OR from_number = $2 OR to_number = $2) \
         AND ($3 IS NULL OR direction LIKE $3) AND ($4 IS NULL OR status = $4) \
         AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
         AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
         ORDER BY created_at DESC, id DESC LIMIT $9"
    ))
    .bind(&auth.tenant.id)
    .bind(phone.as_ref().map(|p| p.to_string()))
    .bind(direction)
    .bind(&q.status)
    .bind(since)
    .bind(until)
    .bind(before.as_ref().map(|b| b.0))
    .bind(before.as_ref().map(|b| b.1.clone()))
    .bind(limit + 1)
    .fetch_all(app.db().pool())
    .await
    .map_err(DbError::from)?;
    let mut data: Vec<Call> = rows.iter().map(call).collect();
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next = if more {
        data.last()
            .map(|c| crate::messaging::api::encode_cursor(c.created_ms, &c.id))
    } else {
        None
    };
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}

async fn fetch(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut c = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    let rows = sqlx::query("SELECT id, kind, status, applied, payload, created_at FROM call_events WHERE call_id = $1 AND tenant_id = $2 ORDER BY created_at, id")
        .bind(&c.id)
        .bind(&auth.tenant.id)
        .fetch_all(app.db().pool())
        .await
        .map_err(DbError::from)?;
    c.events = Some(
        rows.iter()
            .map(|r| {
                json!({
                    "id": r.get::<String, _>("id"),
                    "kind": r.get::<String, _>("kind"),
                    "status": opt_str(r, "status"),
                    "applied": r.get::<i64, _>("applied") != 0,
                    "payload": serde_json::from_str::<Value>(&r.get::<String, _>("payload")).unwrap_or_default(),
                    "created_at": iso(r.get("created_at")),
                })
            })
            .collect(),
    );
    let (recordings, voicemail) =
        super::recordings::for_call(app.db(), &auth.tenant.id, &c.id).await?;
    let mut v = serde_json::to_value(&c).unwrap_or_default();
    v["recordings"] = json!(recordings);
    v["voicemail"] = json!(voicemail);
    Ok(Json(v))
}
