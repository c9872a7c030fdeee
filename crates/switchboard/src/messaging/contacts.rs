//! Contacts: a tenant's people, by phone number, with free-form attributes that templates can use.

use super::store;
use crate::db::{now_ms, Db, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody, PathId, QueryParams};
use crate::phone::E164;
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub id: String,
    pub phone: String,
    pub name: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub created_ms: i64,
}

/// Template variables a contact provides: its attributes (strings, numbers and booleans as
/// text), plus `name` and `phone`.
pub fn variables(c: &Contact) -> std::collections::BTreeMap<String, String> {
    let mut vars: std::collections::BTreeMap<String, String> = c
        .attributes
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect();
    if let Some(n) = &c.name {
        vars.entry("name".into()).or_insert_with(|| n.clone());
    }
    vars.entry("phone".into())
        .or_insert_with(|| c.phone.clone());
    vars
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertContact {
    phone: String,
    name: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchContact {
    name: Option<String>,
    /// Merged into the existing attributes; a null value removes the attribute.
    attributes: Option<Map<String, Value>>,
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/contacts", get(list).post(upsert))
        .route("/v1/contacts/{id}", get(fetch).patch(patch))
}

const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

fn check_attrs(a: &Map<String, Value>) -> ApiResult<String> {
    let s = serde_json::to_string(a).unwrap_or_else(|_| "{}".into());
    if s.len() > MAX_ATTRIBUTES_BYTES {
        return Err(ApiError::unprocessable(
            "attributes_too_large",
            "contact attributes are limited to 16 KiB of JSON",
        ));
    }
    Ok(s)
}

/// The tenant's contact with this phone number, if any.
pub async fn by_phone(db: &Db, tenant_id: &str, phone: &str) -> DbResult<Option<Contact>> {
    store::contact_by_phone(db, tenant_id, phone).await
}

/// Creates the contact, or updates the one with this phone number.
async fn upsert(
    State(app): State<App>,
    auth: Auth,
    JsonBody(req): JsonBody<UpsertContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let phone = E164::parse(&req.phone, &auth.tenant.default_region)
        .map_err(|e| ApiError::unprocessable("invalid_phone_number", e.to_string()))?;
    let attrs = check_attrs(&req.attributes)?;
    store::save_contact(
        app.db(),
        &auth.tenant.id,
        phone.as_str(),
        req.name.as_deref(),
        &attrs,
        now_ms(),
    )
    .await?;
    let c = store::contact_by_phone(app.db(), &auth.tenant.id, phone.as_str())
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(c)))
}

async fn fetch(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Json<Contact>> {
    store::contact_by_id(app.db(), &auth.tenant.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("contact"))
}

async fn patch(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(req): JsonBody<PatchContact>,
) -> ApiResult<Json<Contact>> {
    let mut c = store::contact_by_id(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    if let Some(attrs) = req.attributes {
        for (k, v) in attrs {
            if v.is_null() {
                c.attributes.remove(&k);
            } else {
                c.attributes.insert(k, v);
            }
        }
    }
    let name = req.name.or(c.name);
    let attrs = check_attrs(&c.attributes)?;
    store::update_contact(
        app.db(),
        &auth.tenant.id,
        &id,
        name.as_deref(),
        &attrs,
        now_ms(),
    )
    .await?;
    store::contact_by_id(app.db(), &auth.tenant.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("contact"))
}

/// `GET /v1/contacts`: pages by cursor, with no cap on how many there are.
async fn list(
    State(app): State<App>,
    auth: Auth,
    QueryParams(q): QueryParams<super::api::PageQuery>,
) -> ApiResult<Json<Value>> {
    let want = super::api::limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(super::api::decode_cursor)
        .transpose()?;
    let mut data = store::contacts_page(app.db(), &auth.tenant.id, before, want + 1).await?;
    let more = data.len() as i64 > want;
    data.truncate(want as usize);
    let next = more
        .then(|| {
            data.last()
                .map(|c| super::api::encode_cursor(c.created_ms, &c.id))
        })
        .flatten();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next }),
    ))
}
