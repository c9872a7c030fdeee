//! `/v1/tenant`, `/v1/twilio` (attach credentials) and `/v1/numbers`.

use super::store;
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody};
use crate::App;
use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/tenant", get(whoami))
        .route("/v1/twilio", put(set_twilio))
}

async fn whoami(State(app): State<App>, auth: Auth) -> Json<Value> {
    Json(json!({
        "id": auth.tenant.id,
        "name": auth.tenant.name,
        "twilio_account_sid": auth.tenant.account_sid,
        "default_region": auth.tenant.default_region,
        // Verifies X-Switchboard-Signature on requests this server makes to the tenant's app.
        "app_signing_secret": app_signing_secret(&app, &auth.tenant.id),
    }))
}

/// The secret that signs requests to the tenant's own app (ask_app steps).
pub fn app_signing_secret(app: &App, tenant_id: &str) -> String {
    app.config()
        .master_key
        .derive(&format!("app-signing:{tenant_id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TwilioCreds {
    account_sid: String,
    auth_token: String,
}

/// Attaches the tenant's Twilio credentials. The token is sealed at rest and never returned.
async fn set_twilio(
    State(app): State<App>,
    auth: Auth,
    JsonBody(req): JsonBody<TwilioCreds>,
) -> ApiResult<Json<Value>> {
    if !twilio::sid::is_sid(&req.account_sid, "AC") {
        return Err(ApiError::unprocessable(
            "invalid_account_sid",
            "account_sid is AC followed by 32 hex digits",
        ));
    }
    if req.auth_token.trim().is_empty() || req.auth_token.len() > 256 {
        return Err(ApiError::unprocessable(
            "invalid_auth_token",
            "auth_token is required",
        ));
    }
    store::set_twilio(
        app.db(),
        &app.config().master_key,
        &auth.tenant.id,
        &req.account_sid,
        req.auth_token.trim(),
    )
    .await?;
    app.directory().changed();
    Ok(Json(json!({ "twilio_account_sid": req.account_sid })))
}
