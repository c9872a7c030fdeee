//! Outbound calls: `POST /v1/calls` stores the call (acknowledged means committed), and a
//! dispatcher places it through Twilio like messages are sent: claimed by one worker, paced per
//! number, `submitting` before the call to Twilio, retried only when Twilio surely did not act
//! (429, 5xx, no connection), and reconciled against Twilio's call list after a crash or a
//! timeout before anything is placed again.

use super::render::{render_from, Ctx};
use super::store::{self, advance};
use crate::db::{now_ms, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::webhook::{invalid, Webhook};
use crate::http::{Auth, JsonBody};
use crate::ids::new_id;
use crate::phone::E164;
use crate::queue::{self, Job, Outcome, Worker};
use crate::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use twilio::rest::{CreateCall, ListCalls};

pub fn router() -> Router<App> {
    Router::new().route("/twilio/voice/outbound", post(answered))
}

/// `POST /v1/calls`: what to do when the person answers is one of `flow`, `say` or `twiml_url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    pub to: String,
    pub from: Option<String>,
    pub flow: Option<String>,
    pub say: Option<String>,
    pub twiml_url: Option<String>,
    #[serde(default)]
    pub record: bool,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

pub(crate) async fn create(
    State(app): State<App>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CallRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = crate::http::idempotency::key_of(&headers)?;
    let id = place_call(&app, &auth.tenant, req, key, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&app, &auth.tenant.id, &id).await?),
    ))
}

/// Validates and stores a call to place (status `accepted`), queued for the dispatcher; the
/// domain entry point any capability uses. With `verification_id`, the call reads that
/// verification's code (kept masked in `say`, put in when Twilio asks what to say). Returns
/// the call's id (an earlier one's for a repeated idempotency key).
pub async fn place_call(
    app: &App,
    tenant: &crate::tenants::Tenant,
    req: CallRequest,
    key: Option<String>,
    verification_id: Option<String>,
) -> ApiResult<String> {
    let hash = hex::encode(Sha256::digest(serde_json::to_vec(&req).unwrap_or_default()));
    if let Some(k) = &key {
        if let Some((id, h)) = store::by_idempotency_key(app.db(), &tenant.id, k).await? {
            if h.as_deref() != Some(hash.as_str()) {
                return Err(reused_key());
            }
            return Ok(id);
        }
    }
    let to = E164::parse(&req.to, &tenant.default_region)
        .map_err(|e| ApiError::unprocessable("invalid_phone_number", format!("to: {e}")))?;
    let numbers = crate::numbers::store::list_numbers(app.db(), &tenant.id).await?;
    let number = match &req.from {
        Some(f) => {
            let f = E164::parse(f, &tenant.default_region).map_err(|e| {
                ApiError::unprocessable("invalid_phone_number", format!("from: {e}"))
            })?;
            numbers
                .into_iter()
                .find(|n| n.phone_number == f.as_str())
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_sender",
                        format!("{f} is not one of this tenant's numbers"),
                    )
                })?
        }
        None => numbers.into_iter().next().ok_or_else(|| {
            ApiError::unprocessable("unknown_sender", "this tenant has no numbers to call from")
        })?,
    };
    let mut flow_id = None;
    match (&req.flow, &req.say, &req.twiml_url) {
        (Some(f), None, None) => {
            flow_id = Some(
                super::flows::find(app.db(), &tenant.id, f)
                    .await?
                    .ok_or_else(|| {
                        ApiError::unprocessable("unknown_flow", format!("no flow {f:?}"))
                    })?
                    .id,
            );
        }
        (None, Some(s), None) if !s.trim().is_empty() && s.chars().count() <= 4096 => {}
        (None, Some(_), None) => {
            return Err(ApiError::unprocessable(
                "invalid_say",
                "say has 1 to 4096 characters",
            ))
        }
        (None, None, Some(u)) => {
            let ok = url::Url::parse(u)
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
            if !ok {
                return Err(ApiError::unprocessable(
                    "invalid_twiml_url",
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give exactly one of flow, say or twiml_url",
            ))
        }
    }
    let metadata = Value::Object(req.metadata.clone()).to_string();
    if metadata.len() > 16 * 1024 {
        return Err(ApiError::unprocessable(
            "metadata_too_large",
            "metadata is limited to 16 KiB of JSON",
        ));
    }
    let id = new_id("call");
    let now = now_ms();
    let row = std::sync::Arc::new(store::NewCall {
        id: id.clone(),
        tenant_id: tenant.id.clone(),
        number_id: number.id.clone(),
        from: number.phone_number.clone(),
        to: to.to_string(),
        flow_id,
        request: serde_json::to_string(&req).unwrap_or_default(),
        metadata,
        idempotency_key: key.clone(),
        request_hash: hash.clone(),
        verification_id,
        now,
    });
    let inserted = app
        .db()
        .write(move |tx| {
            let r = row.clone();
            Box::pin(async move {
                store::insert_outbound(tx, &r).await?;
                queue::enqueue(tx, WORKER.kind, &r.id, &r.tenant_id, r.now).await
            })
        })
        .await;
    let id = match inserted {
        Ok(_) => id,
        // Two requests raced with the same key: answer with the one that won.
        Err(e) if e.is_unique_violation() && key.is_some() => {
            let k = key.as_deref().unwrap_or_default();
            let (id, h) = store::by_idempotency_key(app.db(), &tenant.id, k)
                .await?
                .ok_or_else(ApiError::internal)?;
            if h.as_deref() != Some(hash.as_str()) {
                return Err(reused_key());
            }
            id
        }
        Err(e) => return Err(e.into()),
    };
    app.work_queued();
    Ok(id)
}

fn reused_key() -> ApiError {
    ApiError::conflict(
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request",
    )
}

/// The call as `GET /v1/calls/{id}` and the list show it.
async fn view(app: &App, tenant_id: &str, id: &str) -> ApiResult<Value> {
    let c = super::store::find(app.db(), tenant_id, id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok(serde_json::to_value(c).unwrap_or_default())
}

struct Due {
    id: String,
    tenant_id: String,
    number_id: Option<String>,
    from: String,
    to: String,
    request: CallRequest,
    submitted_at: Option<i64>,
}

/// Placing outbound calls with Twilio, paced per number, reconciled after a crash.
pub const WORKER: Worker = Worker {
    kind: "call",
    lease: |c| c.submit_lease(),
    max_attempts: |c| c.workers.max_attempts,
    batch: 16,
    parallel: 8,
    run: |app, job| Box::pin(async move { run(&app, &job).await }),
    give_up: |app, job, error| {
        Box::pin(async move { fail(&app, &job.subject_id, "gave_up", &error).await })
    },
};

async fn due(app: &App, job: &Job) -> DbResult<Option<Due>> {
    let Some(o) = store::outbound(app.db(), &job.tenant_id, &job.subject_id).await? else {
        return Ok(None);
    };
    // Only a call Twilio does not have yet is ours to place: a webhook may have linked it
    // already, while we were waiting for Twilio's answer.
    if !matches!(o.status.as_str(), "accepted" | "submitting") || o.twilio_sid.is_some() {
        return Ok(None);
    }
    let Some(request) = o.request.and_then(|r| serde_json::from_str(&r).ok()) else {
        return Ok(None);
    };
    Ok(Some(Due {
        id: o.id,
        tenant_id: o.tenant_id,
        number_id: o.number_id,
        from: o.from,
        to: o.to,
        request,
        submitted_at: o.submitted_at,
    }))
}

async fn run(app: &App, job: &Job) -> DbResult<Outcome> {
    let Some(d) = due(app, job).await? else {
        return Ok(Outcome::Done);
    };
    if job.submitting {
        return reconcile(app, &d).await;
    }
    let now = now_ms();
    // Pacing: calls per second per number, through the same shared slot as messages.
    if let Some(number_id) = &d.number_id {
        let sps = crate::numbers::store::get_number(app.db(), &d.tenant_id, number_id)
            .await?
            .map_or(app.config().default_segments_per_second, |n| {
                n.segments_per_second
            });
        let cost = (1000.0 / sps.max(0.001)).ceil() as i64;
        if let Err(free_at) =
            crate::numbers::store::reserve_slot(app.db(), number_id, now, cost, 0).await?
        {
            return Ok(Outcome::Later { at: free_at });
        }
    }
    // Marked before the call: if we stop now, whoever takes the job asks Twilio first.
    let (job2, id) = (job.clone(), d.id.clone());
    let held = app
        .db()
        .write(move |tx| {
            let (job, id) = (job2.clone(), id.clone());
            Box::pin(async move {
                if !queue::mark_submitting(tx, &job).await? {
                    return Ok(false);
                }
                store::mark_submitting(tx, &id, job.attempts, now_ms()).await?;
                Ok(true)
            })
        })
        .await?;
    if !held {
        return Ok(Outcome::Done);
    }
    place(app, &d).await
}

async fn place(app: &App, d: &Due) -> DbResult<Outcome> {
    let base = &app.config().public_url;
    let client = match app.twilio(&d.tenant_id).await {
        Ok(c) => c,
        Err(e) => {
            fail(app, &d.id, "twilio_not_configured", &e.message).await?;
            return Ok(Outcome::Failed { error: e.message });
        }
    };
    let req = CreateCall {
        to: d.to.clone(),
        from: d.from.clone(),
        url: Some(
            d.request
                .twiml_url
                .clone()
                .unwrap_or_else(|| format!("{base}/twilio/voice/outbound?call={}", d.id)),
        ),
        status_callback: Some(format!("{base}/twilio/voice/status?call={}", d.id)),
        status_callback_event: ["initiated", "ringing", "answered", "completed"]
            .map(String::from)
            .to_vec(),
        record: d.request.record.then_some(true),
        recording_status_callback: d
            .request
            .record
            .then(|| format!("{base}/twilio/voice/recording?call={}", d.id)),
        ..Default::default()
    };
    match client.create_call(&req).await {
        Ok(call) => {
            placed(app, &d.id, &call.sid, call.status.as_str()).await?;
            Ok(Outcome::Done)
        }
        Err(e) if e.outcome_unknown() => {
            tracing::warn!(call_id = %d.id, error = %e, "no answer from Twilio; will reconcile");
            Ok(Outcome::Unknown)
        }
        Err(e) if e.is_retryable() => Ok(Outcome::Retry {
            error: e.to_string(),
            after: e.retry_after(),
        }),
        Err(e) => {
            let code = e
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "transport".into());
            fail(app, &d.id, &code, &e.to_string()).await?;
            Ok(Outcome::Failed {
                error: e.to_string(),
            })
        }
    }
}

/// Links Twilio's SID to the call (the first one given sticks).
async fn set_sid(app: &App, id: &str, sid: &str) -> DbResult<()> {
    store::set_sid(app.db().pool(), id, sid).await
}

/// Twilio has the call: its SID and first status, in one transaction.
async fn placed(app: &App, id: &str, sid: &str, status: &str) -> DbResult<()> {
    let (id, sid, status) = (id.to_string(), sid.to_string(), status.to_string());
    app.db()
        .write(move |tx| {
            let (id, sid, status) = (id.clone(), sid.clone(), status.clone());
            Box::pin(async move {
                store::set_sid(&mut **tx, &id, &sid).await?;
                advance(&mut **tx, &id, &status, None, Some(&sid)).await?;
                Ok(())
            })
        })
        .await
}

async fn fail(app: &App, id: &str, code: &str, message: &str) -> DbResult<()> {
    store::fail(app.db(), id, code, message, now_ms()).await
}

/// Did Twilio get the call before we lost track? Look for it; link it, or place it again.
async fn reconcile(app: &App, d: &Due) -> DbResult<Outcome> {
    let client = match app.twilio(&d.tenant_id).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Retry {
                error: e.message,
                after: None,
            })
        }
    };
    let filter = ListCalls {
        to: Some(d.to.clone()),
        from: Some(d.from.clone()),
        page_size: Some(50),
        ..Default::default()
    };
    let page = match client.list_calls(&filter).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(call_id = %d.id, error = %e, "cannot reconcile the call yet");
            return Ok(Outcome::Unknown);
        }
    };
    let since = d.submitted_at.unwrap_or(0) - 120_000;
    for c in page.items {
        let created = c.date_created.map(|t| t.timestamp_millis()).unwrap_or(0);
        let taken = store::get_by_sid(app.db(), std::slice::from_ref(&d.tenant_id), &c.sid)
            .await?
            .is_some();
        if created >= since && !taken {
            tracing::info!(call_id = %d.id, sid = %c.sid, "reconciled: Twilio had the call");
            placed(app, &d.id, &c.sid, c.status.as_str()).await?;
            return Ok(Outcome::Done);
        }
    }
    tracing::info!(call_id = %d.id, "reconciled: Twilio never got the call; placing it again");
    Ok(Outcome::Later { at: now_ms() })
}

/// Twilio asks what to do now that the person answered: the call's flow, or its `say`.
async fn answered(State(app): State<App>, hook: Webhook) -> ApiResult<Response> {
    let v = twilio::webhook::VoiceWebhook::from_form(&hook.form, true).map_err(invalid)?;
    let id = hook
        .query_id("call", "call")?
        .ok_or_else(|| ApiError::bad_request("invalid_webhook", "call is missing"))?;
    let r = store::outbound_any(app.db(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    let tenant_id = r.tenant_id.clone();
    hook.check_owner(&tenant_id, "call", &v.call_sid)?;
    let sid = v.call_sid.as_str();
    if r.twilio_sid.as_deref().is_some_and(|s| s != sid) {
        crate::http::webhook::security_event(&hook.account_sid, "call", sid);
        return Err(ApiError::bad_request(
            "invalid_webhook",
            "CallSid does not belong to this call",
        ));
    }
    set_sid(&app, &id, sid).await?;
    let mut request: Option<CallRequest> = r
        .request
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    // A verification's code is put in only now; a call for a verification that ended says
    // nothing and hangs up.
    if let Some(vid) = &r.verification_id {
        let text = crate::verify::code_text(&app, &tenant_id, vid, "call").await?;
        if let Some(q) = request.as_mut() {
            q.say = text;
        }
    }
    let (from, to) = (r.from.clone(), r.to.clone());
    let twiml = match (r.flow_id.clone(), request.and_then(|q| q.say)) {
        (Some(flow_id), _) => match super::flows::find(app.db(), &tenant_id, &flow_id).await? {
            Some(f) => {
                // For an outbound call the person called is the "caller" of the flow.
                let ctx = Ctx {
                    base: &app.config().public_url,
                    call_id: &id,
                    turn: 0,
                    now: chrono::Utc::now(),
                    caller: &to,
                    number: &from,
                    twilio_transcribe: app.config().stt.is_none(),
                };
                let rendered = render_from(&f.flow, &f.flow.start, &ctx);
                let mut path: Vec<String> = Vec::new();
                path.extend(rendered.path.iter().cloned());
                store::set_path(app.db(), &id, &path).await?;
                rendered.twiml
            }
            None => twilio::twiml::Response::new().hangup(),
        },
        (None, Some(text)) => twilio::twiml::Response::new()
            .say(twilio::twiml::Say::new(text))
            .hangup(),
        (None, None) => twilio::twiml::Response::new().hangup(),
    };
    Ok((
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        twiml.to_string(),
    )
        .into_response())
}
