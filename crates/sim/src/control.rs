//! The control API (`/sim/control/…`): the rest of the world around Twilio — handsets,
//! carriers and faults — for tests and for people trying things out.

use crate::error::{SimError, SimResult};
use crate::faults::Fault;
use crate::handset::{HandsetSms, HandsetSmsResult};
use crate::state::{Delays, Delivery, SentWebhook};
use crate::Sim;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/sms", post(sms))
        .route("/messages", get(messages))
        .route("/webhooks", get(webhooks))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
        .route("/config", get(get_config).post(set_config))
        .route("/accounts", post(create_account))
        .route("/opt-outs", get(opt_outs))
        .route("/calls", post(calls))
        .route("/calls/{sid}", get(call_report))
        .route("/phones/{number}", axum::routing::put(set_phone))
        .route("/clock", post(advance_clock))
        .route("/lines/{number}", axum::routing::put(set_line))
        .fallback(|uri: axum::http::Uri| async move { SimError::not_found(uri.path()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            SimError::new(405, 20004, format!("Method {method} not allowed"))
        })
}

/// JSON bodies that fail to parse get Twilio's error shape too.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = SimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, SimError> {
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| SimError::bad_request(20001, format!("invalid JSON body: {e}")))
    }
}

async fn sms(
    State(sim): State<Sim>,
    JsonBody(req): JsonBody<HandsetSms>,
) -> SimResult<(StatusCode, Json<HandsetSmsResult>)> {
    let r = sim.handset_sms(req).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[derive(Deserialize)]
struct DeliveryFilter {
    to: Option<String>,
    from: Option<String>,
}

async fn messages(State(sim): State<Sim>, Query(f): Query<DeliveryFilter>) -> Json<Value> {
    let items: Vec<Delivery> = sim
        .deliveries()
        .into_iter()
        .filter(|d| f.to.as_ref().is_none_or(|t| &d.to == t))
        .filter(|d| f.from.as_ref().is_none_or(|x| &d.from == x))
        .collect();
    Json(json!({ "messages": items }))
}

#[derive(Deserialize)]
struct WebhookFilter {
    kind: Option<String>,
}

async fn webhooks(State(sim): State<Sim>, Query(f): Query<WebhookFilter>) -> Json<Value> {
    let items: Vec<SentWebhook> = sim
        .webhooks()
        .into_iter()
        .filter(|w| f.kind.as_ref().is_none_or(|k| w.kind == k))
        .collect();
    Json(json!({ "webhooks": items }))
}

async fn list_faults(State(sim): State<Sim>) -> Json<Value> {
    Json(json!({ "faults": sim.world().faults.clone() }))
}

async fn add_fault(
    State(sim): State<Sim>,
    JsonBody(mut f): JsonBody<Fault>,
) -> SimResult<(StatusCode, Json<Fault>)> {
    if let Some(n) = &f.number {
        if !crate::phone::is_valid(n) {
            return Err(SimError::bad_request(
                21211,
                format!("fault number {n:?} is not E.164"),
            ));
        }
    }
    let mut w = sim.world();
    w.next_fault += 1;
    f.id = format!("fault_{}", w.next_fault);
    w.faults.push(f.clone());
    Ok((StatusCode::CREATED, Json(f)))
}

async fn clear_faults(State(sim): State<Sim>) -> StatusCode {
    sim.world().faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(sim): State<Sim>, Path(id): Path<String>) -> SimResult<StatusCode> {
    let mut w = sim.world();
    let before = w.faults.len();
    w.faults.retain(|f| f.id != id);
    if w.faults.len() == before {
        return Err(SimError::not_found(&format!("/sim/control/faults/{id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, serde::Serialize)]
struct Config {
    delays: Delays,
}

async fn get_config(State(sim): State<Sim>) -> Json<Config> {
    Json(Config {
        delays: sim.world().delays,
    })
}

async fn set_config(
    State(sim): State<Sim>,
    JsonBody(c): JsonBody<Config>,
) -> SimResult<Json<Config>> {
    if [c.delays.sending_ms, c.delays.sent_ms, c.delays.delivered_ms]
        .iter()
        .any(|d| *d > 600_000)
    {
        return Err(SimError::bad_request(20001, "delays are at most 600000 ms"));
    }
    sim.set_delays(c.delays);
    Ok(Json(c))
}

#[derive(Deserialize)]
struct NewAccount {
    sid: Option<String>,
    auth_token: Option<String>,
    #[serde(default)]
    test: bool,
}

async fn create_account(
    State(sim): State<Sim>,
    JsonBody(a): JsonBody<NewAccount>,
) -> SimResult<(StatusCode, Json<Value>)> {
    let (sid, token) = if a.test {
        sim.create_test_account(a.sid, a.auth_token)?
    } else {
        sim.create_account(a.sid, a.auth_token)?
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "sid": sid, "auth_token": token, "test": a.test })),
    ))
}

async fn opt_outs(State(sim): State<Sim>) -> Json<Value> {
    let mut pairs: Vec<Value> = sim
        .world()
        .opt_outs
        .iter()
        .map(|(handset, number)| json!({ "handset": handset, "number": number }))
        .collect();
    pairs.sort_by_key(|v| v.to_string());
    Json(json!({ "opt_outs": pairs }))
}

/// A phone calls one of the twin's numbers with a script; answers when the call has ended,
/// with everything that happened on it.
async fn calls(
    State(sim): State<Sim>,
    JsonBody(req): JsonBody<crate::voice::PhoneCall>,
) -> SimResult<(StatusCode, Json<crate::voice::CallReport>)> {
    Ok((StatusCode::CREATED, Json(sim.phone_call(req).await?)))
}

async fn call_report(
    State(sim): State<Sim>,
    Path(sid): Path<String>,
) -> SimResult<Json<crate::voice::CallReport>> {
    sim.call_report(&sid)
        .map(Json)
        .ok_or_else(|| SimError::not_found(&format!("/sim/control/calls/{sid}")))
}

/// How a phone behaves when a call is placed to it.
async fn set_phone(
    State(sim): State<Sim>,
    Path(number): Path<String>,
    JsonBody(script): JsonBody<crate::state::CallScript>,
) -> SimResult<StatusCode> {
    if !crate::phone::is_valid(&number) {
        return Err(SimError::bad_request(
            21211,
            format!("{number:?} is not an E.164 number"),
        ));
    }
    sim.set_phone(&number, script);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    advance_secs: u64,
}

/// Moves the twin's clock forward (Verify's codes expire by it).
async fn advance_clock(State(sim): State<Sim>, JsonBody(c): JsonBody<ClockChange>) -> Json<Value> {
    sim.advance_clock(std::time::Duration::from_secs(c.advance_secs));
    Json(json!({ "now": sim.now().to_rfc3339() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    /// What Lookup's line_type_intelligence says: `mobile`, `landline`, `fixedVoip`, ….
    r#type: String,
}

/// Sets the line type Lookup reports for a number.
async fn set_line(
    State(sim): State<Sim>,
    axum::extract::Path(number): axum::extract::Path<String>,
    JsonBody(l): JsonBody<Line>,
) -> Json<Value> {
    sim.world()
        .line_types
        .insert(number.clone(), l.r#type.clone());
    Json(json!({ "number": number, "type": l.r#type }))
}
