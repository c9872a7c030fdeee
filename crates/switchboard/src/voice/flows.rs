//! `/v1/flows`: a tenant's call flows, validated when saved, previewable as TwiML.

use super::flow::{validate, Flow, Step};
use super::render::{render_from, Ctx, Effect};
use super::store;
use crate::db::{now_ms, Db, DbError, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody, PathId};
use crate::ids::new_id;
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize)]
pub struct StoredFlow {
    pub id: String,
    #[serde(flatten)]
    pub flow: Flow,
    pub created_at: String,
    pub updated_at: String,
}

/// A flow by id or name.
pub async fn find(db: &Db, tenant_id: &str, id_or_name: &str) -> DbResult<Option<StoredFlow>> {
    store::find_flow(db, tenant_id, id_or_name).await
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/flows", get(list).post(create))
        .route("/v1/flows/{id}", get(fetch).put(replace).delete(remove))
        .route("/v1/flows/{id}/preview", post(preview))
}

/// Validates a flow and checks that the flows it redirects to exist.
async fn check(app: &App, tenant_id: &str, region: &str, flow: &mut Flow) -> ApiResult<()> {
    if let Err(errors) = validate(flow, region) {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(ApiError::unprocessable("invalid_flow", list.join("; ")));
    }
    for (name, step) in &flow.steps {
        match step {
            Step::Redirect { flow: other }
                if other != &flow.name && find(app.db(), tenant_id, other).await?.is_none() =>
            {
                return Err(ApiError::unprocessable(
                    "invalid_flow",
                    format!("step {name:?}: redirects to flow {other:?}, which does not exist"),
                ));
            }
            Step::MissedCallSms(s)
                if crate::messaging::templates::find(app.db(), tenant_id, &s.template)
                    .await?
                    .is_none() =>
            {
                return Err(ApiError::unprocessable(
                    "invalid_flow",
                    format!(
                        "step {name:?}: texts template {:?}, which does not exist (create it with POST /v1/templates)",
                        s.template
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn name_taken(e: DbError) -> ApiError {
    if e.is_unique_violation() {
        ApiError::conflict("flow_exists", "a flow with this name exists")
    } else {
        e.into()
    }
}

/// Loads a flow file for a tenant (id or name): the templates it texts first, from a
/// `NAME.templates.json` beside it (`{"template name": "body", …}`) when there is one, then the
/// flow itself (see [`load`]). Returns the flow's id and the templates loaded.
pub async fn load_file(
    app: &App,
    tenant: &str,
    file: &std::path::Path,
    number: Option<&str>,
) -> Result<(String, Vec<String>), String> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let flow: Flow =
        serde_json::from_str(&read(file)?).map_err(|e| format!("{}: {e}", file.display()))?;
    let t = crate::tenants::store::find_tenant(app.db(), tenant)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("no tenant with the id or name {tenant:?}"))?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let sibling = file.with_file_name(format!("{stem}.templates.json"));
    let mut loaded = Vec::new();
    if sibling.exists() {
        let templates: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&read(&sibling)?)
                .map_err(|e| format!("{}: {e}", sibling.display()))?;
        for (name, body) in templates {
            crate::messaging::templates::put(app, &t.id, &name, &body)
                .await
                .map_err(|e| format!("{}: template {name:?}: {}", sibling.display(), e.message))?;
            loaded.push(name);
        }
    }
    let id = load(app, &t.id, flow, number).await?;
    Ok((id, loaded))
}

/// Creates or replaces (by name) a flow for a tenant, validated as the API does, and attaches
/// it to `number` if given.
pub async fn load(
    app: &App,
    tenant_id: &str,
    mut flow: Flow,
    number: Option<&str>,
) -> Result<String, String> {
    let tenant = crate::tenants::store::get_tenant(app.db(), tenant_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("no tenant {tenant_id}"))?;
    check(app, &tenant.id, &tenant.default_region, &mut flow)
        .await
        .map_err(|e| e.message)?;
    let json = serde_json::to_string(&flow).unwrap_or_default();
    let now = now_ms();
    let id = match find(app.db(), &tenant.id, &flow.name)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(existing) => {
            let name = existing.flow.name.clone();
            store::update_flow(app.db(), &tenant.id, &existing.id, &name, &json, now)
                .await
                .map_err(|e| e.to_string())?;
            existing.id
        }
        None => {
            let id = new_id("flow");
            store::insert_flow(app.db(), &tenant.id, &id, flow.name.trim(), &json, now)
                .await
                .map_err(|e| e.to_string())?;
            id
        }
    };
    if let Some(n) = number {
        let phone =
            crate::phone::E164::parse(n, &tenant.default_region).map_err(|e| e.to_string())?;
        let num =
            crate::numbers::store::tenant_number_by_phone(app.db(), &tenant.id, phone.as_str())
                .await
                .map_err(|e| e.to_string())?
                .ok_or(format!("{phone} is not one of the tenant's numbers"))?;
        let change = crate::numbers::store::NumberChange {
            flow_id: Some(Some(&id)),
            ..Default::default()
        };
        crate::numbers::store::update_number(app.db(), &tenant.id, &num.id, change)
            .await
            .map_err(|e| e.to_string())?;
        app.directory().changed();
    }
    Ok(id)
}

async fn create(
    State(app): State<App>,
    auth: Auth,
    JsonBody(mut flow): JsonBody<Flow>,
) -> ApiResult<(StatusCode, Json<StoredFlow>)> {
    check(
        &app,
        &auth.tenant.id,
        &auth.tenant.default_region,
        &mut flow,
    )
    .await?;
    let id = new_id("flow");
    let now = now_ms();
    let json = serde_json::to_string(&flow).unwrap_or_default();
    store::insert_flow(app.db(), &auth.tenant.id, &id, flow.name.trim(), &json, now)
        .await
        .map_err(name_taken)?;
    let f = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(f)))
}

async fn replace(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(mut flow): JsonBody<Flow>,
) -> ApiResult<Json<StoredFlow>> {
    let current = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("flow"))?;
    check(
        &app,
        &auth.tenant.id,
        &auth.tenant.default_region,
        &mut flow,
    )
    .await?;
    let json = serde_json::to_string(&flow).unwrap_or_default();
    store::update_flow(
        app.db(),
        &auth.tenant.id,
        &current.id,
        flow.name.trim(),
        &json,
        now_ms(),
    )
    .await
    .map_err(name_taken)?;
    find(app.db(), &auth.tenant.id, &current.id)
        .await?
        .map(Json)
        .ok_or_else(ApiError::internal)
}

async fn fetch(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
) -> ApiResult<Json<StoredFlow>> {
    find(app.db(), &auth.tenant.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("flow"))
}

/// Every flow of the tenant, by name.
pub async fn list_all(db: &Db, tenant_id: &str) -> DbResult<Vec<StoredFlow>> {
    store::flows(db, tenant_id).await
}

async fn list(State(app): State<App>, auth: Auth) -> ApiResult<Json<Value>> {
    let data = list_all(app.db(), &auth.tenant.id).await?;
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

async fn remove(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<StatusCode> {
    let f = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("flow"))?;
    if let Some(n) = store::number_answered_by(app.db(), &auth.tenant.id, &f.id).await? {
        return Err(ApiError::conflict(
            "flow_in_use",
            format!("{n} answers calls with this flow; attach another flow first"),
        ));
    }
    store::delete_flow(app.db(), &auth.tenant.id, &f.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// The step to start from (default: the flow's start).
    step: Option<String>,
    /// The caller (default +15005550006).
    caller: Option<String>,
    /// The moment of the call, RFC 3339 (default: now), for business hours.
    at: Option<String>,
}

/// The TwiML a step produces for a given caller and time, without a call.
async fn preview(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(req): JsonBody<PreviewRequest>,
) -> ApiResult<Json<Value>> {
    let f = find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("flow"))?;
    let step = req.step.unwrap_or_else(|| f.flow.start.clone());
    if !f.flow.steps.contains_key(&step) {
        return Err(ApiError::unprocessable(
            "unknown_step",
            format!("the flow has no step {step:?}"),
        ));
    }
    let now = match req.at.as_deref() {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| ApiError::bad_request("invalid_time", "`at` is an RFC 3339 time"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let caller = req.caller.unwrap_or_else(|| "+15005550006".into());
    let numbers = crate::numbers::store::list_numbers(app.db(), &auth.tenant.id).await?;
    let number = numbers
        .first()
        .map(|n| n.phone_number.clone())
        .unwrap_or_default();
    let ctx = Ctx {
        base: &app.config().public_url,
        call_id: "call_preview",
        turn: 0,
        now,
        caller: &caller,
        number: &number,
        twilio_transcribe: app.config().stt.is_none(),
    };
    let r = render_from(&f.flow, &step, &ctx);
    let effects: Vec<Value> = r
        .effects
        .iter()
        .map(|e| match e {
            Effect::SendTemplate { template, window_minutes, known_contacts_only } => {
                json!({"send_template": template, "window_minutes": window_minutes, "known_contacts_only": known_contacts_only})
            }
        })
        .collect();
    Ok(Json(
        json!({ "twiml": r.twiml.to_string(), "path": r.path, "effects": effects }),
    ))
}
