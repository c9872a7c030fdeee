//! `/v1/numbers`: the tenant's numbers, attaching one (its webhooks pointed here), and its
//! settings (pacing, auto-reply, call flow).

use super::{store, Number};
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody, PathId};
use crate::phone::E164;
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/numbers", get(list).post(add))
        .route("/v1/numbers/{id}", get(fetch).patch(update))
}

async fn list(State(app): State<App>, auth: Auth) -> ApiResult<Json<Value>> {
    let data = store::list_numbers(app.db(), &auth.tenant.id).await?;
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

async fn fetch(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Json<Number>> {
    store::get_number(app.db(), &auth.tenant.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("number"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNumber {
    phone_number: String,
    segments_per_second: Option<f64>,
}

fn check_rate(r: Option<f64>) -> ApiResult<()> {
    match r {
        Some(r) if !(0.01..=1000.0).contains(&r) || r.is_nan() => Err(ApiError::unprocessable(
            "invalid_rate",
            "segments_per_second is between 0.01 and 1000",
        )),
        _ => Ok(()),
    }
}

/// Adds one of the tenant's Twilio numbers: checks the account owns it, and points its
/// messaging and voice webhooks at this server.
async fn add(
    State(app): State<App>,
    auth: Auth,
    JsonBody(req): JsonBody<AddNumber>,
) -> ApiResult<(StatusCode, Json<Number>)> {
    let phone = E164::parse(&req.phone_number, &auth.tenant.default_region)
        .map_err(|e| ApiError::unprocessable("invalid_phone_number", e.to_string()))?;
    check_rate(req.segments_per_second)?;
    let unavailable = |e: String| {
        ApiError::unprocessable(
            "twilio_number_unavailable",
            format!("cannot configure {phone} at Twilio: {e}"),
        )
    };
    // Ownership first: whether someone attached a number is only told to a tenant whose own
    // Twilio account has it.
    let client = app.twilio(&auth.tenant.id).await?;
    let sid = super::setup::find(&client, phone.as_str())
        .await
        .map_err(unavailable)?;
    if store::number_by_phone(app.db(), phone.as_str())
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "number_exists",
            format!("{phone} is already attached"),
        ));
    }
    super::setup::point(&app, &client, &sid)
        .await
        .map_err(unavailable)?;
    let rate = req
        .segments_per_second
        .unwrap_or(app.config().default_segments_per_second);
    let n = store::add_number(app.db(), &auth.tenant.id, phone.as_str(), rate, Some(&sid))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ApiError::conflict("number_exists", format!("{phone} is already attached"))
            } else {
                e.into()
            }
        })?;
    app.directory().changed();
    Ok((StatusCode::CREATED, Json(n)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchNumber {
    segments_per_second: Option<f64>,
    /// A text sent back to anyone who texts this number; null turns it off.
    #[serde(default, deserialize_with = "double_option")]
    auto_reply: Option<Option<String>>,
    /// The call flow (id or name) that answers calls; null detaches it.
    #[serde(default, deserialize_with = "double_option")]
    flow: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn update(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(req): JsonBody<PatchNumber>,
) -> ApiResult<Json<Number>> {
    check_rate(req.segments_per_second)?;
    if let Some(Some(text)) = &req.auto_reply {
        if text.trim().is_empty() || text.chars().count() > crate::messaging::MAX_BODY_CHARS {
            return Err(ApiError::unprocessable(
                "invalid_auto_reply",
                "auto_reply has 1 to 1600 characters",
            ));
        }
    }
    let auto = req.auto_reply.as_ref().map(|o| o.as_deref());
    let flow_id = match &req.flow {
        Some(Some(f)) => Some(Some(
            crate::voice::flows::find(app.db(), &auth.tenant.id, f)
                .await?
                .ok_or_else(|| ApiError::unprocessable("unknown_flow", format!("no flow {f:?}")))?
                .id,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let change = store::NumberChange {
        segments_per_second: req.segments_per_second,
        auto_reply: auto,
        flow_id: flow_id.as_ref().map(|o| o.as_deref()),
        twilio_sid: None,
    };
    let n = store::update_number(app.db(), &auth.tenant.id, &id, change).await?;
    app.directory().changed();
    n.map(Json).ok_or_else(|| ApiError::not_found("number"))
}
