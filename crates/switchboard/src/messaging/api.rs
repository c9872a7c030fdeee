//! `/v1/messages`, `/v1/conversations`, `/v1/media`: sending and history.

use super::store::{self, Filter, NewMessage};
use super::{contacts, cost, templates, Message, MAX_BODY_CHARS, MAX_MEDIA};
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody, PathId, QueryParams};
use crate::ids::{is_id, new_id};
use crate::phone::E164;
use crate::tenants::Tenant;
use crate::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/messages", get(list).post(create))
        .route("/v1/messages/{id}", get(fetch))
        .route("/v1/conversations", get(conversations))
        .route(
            "/v1/conversations/{id}/messages",
            get(conversation_messages),
        )
        .route("/v1/media/{id}", get(media))
        .route("/v1/opt-outs", get(opt_outs))
}

fn reused_key() -> ApiError {
    ApiError::conflict(
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request",
    )
}

/// `POST /v1/messages`.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: String,
    pub body: Option<String>,
    #[serde(default)]
    pub media_urls: Vec<String>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub template: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Seconds the message may wait before it is sent; after that it fails instead of going late.
    pub validity_period: Option<u32>,
}

/// Validates, renders and stores a message to send (status `accepted`). Returns the message
/// and whether it was created now (false: an earlier request with the same idempotency key).
pub async fn send(
    app: &App,
    tenant: &Tenant,
    req: SendRequest,
    idempotency_key: Option<String>,
) -> ApiResult<(Message, bool)> {
    send_for(app, tenant, req, idempotency_key, None).await
}

/// [`send`], for a text carrying a verification's code: its body holds the code masked, and
/// the code is put in when the text is handed to Twilio.
pub async fn send_for(
    app: &App,
    tenant: &Tenant,
    req: SendRequest,
    idempotency_key: Option<String>,
    verification_id: Option<String>,
) -> ApiResult<(Message, bool)> {
    let request_hash = hex::encode(Sha256::digest(serde_json::to_vec(&req).unwrap_or_default()));
    if let Some(key) = &idempotency_key {
        if let Some((id, hash)) = store::by_idempotency_key(app.db(), &tenant.id, key).await? {
            if hash.as_deref() != Some(request_hash.as_str()) {
                return Err(reused_key());
            }
            let m = store::get(app.db(), &tenant.id, &id)
                .await?
                .ok_or_else(ApiError::internal)?;
            return Ok((m, false));
        }
    }
    let to = E164::parse(&req.to, &tenant.default_region)
        .map_err(|e| ApiError::unprocessable("invalid_phone_number", format!("to: {e}")))?;

    // The sender: the given number, else the one last used with this person, else the first.
    let number = match &req.from {
        Some(from) => {
            let from = E164::parse(from, &tenant.default_region).map_err(|e| {
                ApiError::unprocessable("invalid_phone_number", format!("from: {e}"))
            })?;
            crate::numbers::store::tenant_number_by_phone(app.db(), &tenant.id, from.as_str())
                .await?
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_sender",
                        format!("{from} is not one of this tenant's numbers"),
                    )
                })?
        }
        None => {
            let numbers = crate::numbers::store::list_numbers(app.db(), &tenant.id).await?;
            let sticky = store::last_number_for(app.db(), &tenant.id, to.as_str()).await?;
            sticky
                .and_then(|id| numbers.iter().find(|n| n.id == id).cloned())
                .or_else(|| numbers.first().cloned())
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_sender",
                        "this tenant has no numbers to send from",
                    )
                })?
        }
    };

    let contact = contacts::by_phone(app.db(), &tenant.id, to.as_str()).await?;
    let (body, template_id) = match (&req.template, &req.body) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give either body or template, not both",
            ))
        }
        (Some(name), None) => {
            let t = templates::find(app.db(), &tenant.id, name)
                .await?
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_template",
                        format!("no template named {name:?}"),
                    )
                })?;
            let mut vars = contact
                .as_ref()
                .map(contacts::variables)
                .unwrap_or_default();
            vars.extend(req.variables.clone());
            let body = templates::render(&t.body, &vars)
                .map_err(|e| ApiError::unprocessable("missing_variable", e.to_string()))?;
            (body, Some(t.id))
        }
        (None, body) => (body.clone().unwrap_or_default(), None),
    };
    if body.trim().is_empty() && req.media_urls.is_empty() {
        return Err(ApiError::unprocessable(
            "empty_message",
            "a message needs a body, a template or media",
        ));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::unprocessable(
            "body_too_long",
            format!("a body has at most {MAX_BODY_CHARS} characters"),
        ));
    }
    if req.media_urls.len() > MAX_MEDIA {
        return Err(ApiError::unprocessable(
            "too_many_media",
            format!("at most {MAX_MEDIA} media URLs"),
        ));
    }
    for u in &req.media_urls {
        let ok = url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
        if !ok {
            return Err(ApiError::unprocessable(
                "invalid_media_url",
                format!("{u:?} is not an http(s) URL"),
            ));
        }
    }
    if store::is_opted_out(
        app.db().pool(),
        &tenant.id,
        &number.phone_number,
        to.as_str(),
    )
    .await?
    {
        return Err(ApiError::unprocessable(
            "recipient_opted_out",
            format!(
                "{to} opted out of messages from {} (replied STOP)",
                number.phone_number
            ),
        ));
    }
    let validity = match req.validity_period {
        Some(v) if v == 0 || v > 36_000 * 24 => {
            return Err(ApiError::unprocessable(
                "invalid_validity_period",
                "validity_period is 1 to 864000 seconds",
            ));
        }
        Some(v) => std::time::Duration::from_secs(v as u64),
        None => app.config().workers.default_validity,
    };

    let now = now_ms();
    let (seg, price) = cost(&body, req.media_urls.len());
    let msg = NewMessage {
        id: new_id("msg"),
        tenant_id: tenant.id.clone(),
        direction: crate::status::Direction::Outbound,
        number_id: Some(number.id.clone()),
        // Filled in by `store::accept`, in the transaction.
        conversation_id: None,
        contact_id: None,
        from: number.phone_number.clone(),
        to: to.to_string(),
        body,
        media_urls: req.media_urls.clone(),
        status: crate::status::MessageStatus::Accepted,
        twilio_sid: None,
        encoding: seg.encoding.as_str(),
        segments: seg.count.max(1) as i64,
        price_estimate: Some(price),
        template_id,
        idempotency_key: idempotency_key.clone(),
        request_hash: Some(request_hash.clone()),
        next_attempt_at: Some(now),
        valid_until: Some(now + validity.as_millis() as i64),
        now,
        verification_id: verification_id.clone(),
    };
    // Through the group-commit writer: committed with others, and never left half-done by a
    // client that hangs up.
    let msg = std::sync::Arc::new(msg);
    let accepted = {
        let msg = msg.clone();
        app.db()
            .write(move |tx| {
                let m = msg.clone();
                Box::pin(async move { store::accept(tx, &m).await })
            })
            .await
    };
    match accepted {
        Ok(()) => {}
        // Two requests raced with the same key: the other one won; answer with its message.
        Err(e) if e.is_unique_violation() && idempotency_key.is_some() => {
            let (id, hash) = store::by_idempotency_key(
                app.db(),
                &tenant.id,
                idempotency_key.as_deref().unwrap_or_default(),
            )
            .await?
            .ok_or_else(ApiError::internal)?;
            if hash.as_deref() != Some(request_hash.as_str()) {
                return Err(reused_key());
            }
            let m = store::get(app.db(), &tenant.id, &id)
                .await?
                .ok_or_else(ApiError::internal)?;
            return Ok((m, false));
        }
        Err(e) => return Err(e.into()),
    }
    app.work_queued();
    let m = store::get(app.db(), &tenant.id, &msg.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((m, true))
}

async fn create(
    State(app): State<App>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SendRequest>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let key = crate::http::idempotency::key_of(&headers)?;
    let (m, _) = send(&app, &auth.tenant, req, key).await?;
    Ok((StatusCode::ACCEPTED, Json(m)))
}

async fn fetch(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Json<Message>> {
    let mut m = store::get(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    m.events = Some(store::events(app.db(), &auth.tenant.id, &id).await?);
    m.media = Some(super::media::for_message(app.db(), &auth.tenant.id, &id).await?);
    Ok(Json(m))
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

fn parse_time(name: &str, v: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("{name} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"),
            )
        })
}

pub(crate) fn encode_cursor(t: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{t}:{id}"))
}

pub(crate) fn decode_cursor(c: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API returned");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (t, id) = s.split_once(':').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.to_string()))
}

pub(crate) fn limit(l: Option<i64>) -> ApiResult<i64> {
    match l {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request("invalid_query", "limit is 1 to 500")),
    }
}

async fn page(app: &App, tenant: &Tenant, mut f: Filter) -> ApiResult<Json<Value>> {
    let want = f.limit;
    f.limit = want + 1;
    let mut rows = store::list(app.db(), &tenant.id, &f).await?;
    let more = rows.len() as i64 > want;
    rows.truncate(want as usize);
    let next = if more {
        rows.last().map(|m| {
            let t = chrono::DateTime::parse_from_rfc3339(&m.created_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or(0);
            encode_cursor(t, &m.id)
        })
    } else {
        None
    };
    Ok(Json(json!({ "data": rows, "next_cursor": next })))
}

async fn list(
    State(app): State<App>,
    auth: Auth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let phone = q
        .phone
        .as_deref()
        .map(|p| {
            E164::parse(p, &auth.tenant.default_region)
                .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))
        })
        .transpose()?;
    if let Some(d) = &q.direction {
        if d != "inbound" && d != "outbound" {
            return Err(ApiError::bad_request(
                "invalid_query",
                "direction is inbound or outbound",
            ));
        }
    }
    if let Some(s) = &q.status {
        if super::status_rank(s).is_none() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown status {s:?}"),
            ));
        }
    }
    let f = Filter {
        phone: phone.map(|p| p.to_string()),
        direction: q.direction,
        status: q.status,
        since_ms: q
            .since
            .as_deref()
            .map(|v| parse_time("since", v))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|v| parse_time("until", v))
            .transpose()?,
        conversation_id: None,
        before: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: limit(q.limit)?,
    };
    page(&app, &auth.tenant, f).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

async fn conversations(
    State(app): State<App>,
    auth: Auth,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Value>> {
    let want = limit(q.limit)?;
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows = store::conversations(app.db(), &auth.tenant.id, before, want + 1).await?;
    let more = rows.len() as i64 > want;
    rows.truncate(want as usize);
    let next = if more {
        rows.last().map(|c| encode_cursor(c.last_ms, &c.id))
    } else {
        None
    };
    Ok(Json(json!({ "data": rows, "next_cursor": next })))
}

async fn conversation_messages(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Value>> {
    if !store::conversation_exists(app.db(), &auth.tenant.id, &id).await? {
        return Err(ApiError::not_found("conversation"));
    }
    let f = Filter {
        conversation_id: Some(id),
        before: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: limit(q.limit)?,
        ..Default::default()
    };
    page(&app, &auth.tenant, f).await
}

async fn media(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Response> {
    if !is_id(&id, "med") {
        return Err(ApiError::not_found("media"));
    }
    let (content_type, bytes) = super::media::content(&app, &auth.tenant.id, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// The opt-out ledger and every STOP/START/HELP received, for audits.
async fn opt_outs(State(app): State<App>, auth: Auth) -> ApiResult<Json<Value>> {
    let (ledger, log) = store::compliance(app.db(), &auth.tenant.id, 1000).await?;
    Ok(Json(
        json!({ "data": ledger, "keywords": log, "next_cursor": null }),
    ))
}
