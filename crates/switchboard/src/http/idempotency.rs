//! `Idempotency-Key` for the creating requests whose rows keep no key of their own (templates,
//! contacts, flows, numbers; messages and calls keep theirs on the row). The first request
//! reserves the key for its tenant; its successful answer is kept and replayed to every repeat
//! of the same request; the same key with another request is a 409, and so is a repeat that
//! arrives while the first is still being answered. A failed answer frees the key.

use super::MAX_BODY_BYTES;
use crate::db::{now_ms, Db, DbResult, Row};
use crate::error::ApiError;
use crate::App;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The creating routes this layer covers.
const ROUTES: &[&str] = &["/v1/templates", "/v1/contacts", "/v1/flows", "/v1/numbers"];

pub const HEADER: &str = "idempotency-key";

/// Checks the header: 1 to 255 printable ASCII characters.
pub fn key_of(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(HEADER).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(k))
            if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (32..127).contains(&b)) =>
        {
            Ok(Some(k.to_string()))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key has 1 to 255 printable characters",
        )),
    }
}

pub async fn layer(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let Some(route) =
        route.filter(|r| req.method() == Method::POST && ROUTES.contains(&r.as_str()))
    else {
        return next.run(req).await;
    };
    let key = match key_of(req.headers()) {
        Ok(Some(k)) => k,
        Ok(None) => return next.run(req).await,
        Err(e) => return e.into_response(),
    };
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| k.trim().to_string());
    let tenant = match bearer {
        Some(b) if !b.is_empty() && b.len() <= 200 => {
            match app.directory().tenant_for_key(app.db(), &b).await {
                Ok(t) => t,
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
        _ => None,
    };
    // Unauthenticated: the handler answers 401, and nothing is reserved.
    let Some(tenant) = tenant else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
            .into_response()
        }
    };
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(&bytes);
    let hash = hex::encode(h.finalize());
    match store::reserve(app.db(), &tenant.id, &key, &route, &hash).await {
        Ok(true) => {}
        Ok(false) => return replay(&app, &tenant.id, &key, &hash).await,
        Err(e) => return ApiError::from(e).into_response(),
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = resp.status();
    if !status.is_success() {
        if let Err(e) = store::release(app.db(), &tenant.id, &key).await {
            tracing::error!(error = %e, "could not free an idempotency key");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 4 * MAX_BODY_BYTES).await else {
        return ApiError::internal().into_response();
    };
    let text = String::from_utf8_lossy(&body).to_string();
    if let Err(e) = store::complete(app.db(), &tenant.id, &key, status.as_u16(), &text).await {
        return ApiError::from(e).into_response();
    }
    Response::from_parts(parts, Body::from(body))
}

async fn replay(app: &App, tenant_id: &str, key: &str, hash: &str) -> Response {
    let found = match store::get(app.db(), tenant_id, key).await {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match found {
        Some(k) if k.request_hash != hash => ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        Some(Kept {
            status: Some(status),
            response: Some(body),
            ..
        }) => {
            let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
            let mut resp = (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        _ => ApiError::conflict(
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being answered; try again",
        )
        .into_response(),
    }
}

pub struct Kept {
    pub request_hash: String,
    pub status: Option<i64>,
    pub response: Option<String>,
}

mod store {
    use super::*;

    /// Reserves the key; false when it is already taken.
    pub async fn reserve(
        db: &Db,
        tenant_id: &str,
        key: &str,
        route: &str,
        hash: &str,
    ) -> DbResult<bool> {
        let r = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, idempotency_key, route, request_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(key)
        .bind(route)
        .bind(hash)
        .bind(now_ms())
        .execute(db.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn complete(
        db: &Db,
        tenant_id: &str,
        key: &str,
        status: u16,
        response: &str,
    ) -> DbResult<()> {
        sqlx::query("UPDATE idempotency_keys SET status = $1, response = $2 WHERE tenant_id = $3 AND idempotency_key = $4")
            .bind(status as i64)
            .bind(response)
            .bind(tenant_id)
            .bind(key)
            .execute(db.pool())
            .await?;
        Ok(())
    }

    pub async fn release(db: &Db, tenant_id: &str, key: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2 AND status IS NULL")
            .bind(tenant_id)
            .bind(key)
            .execute(db.pool())
            .await?;
        Ok(())
    }

    pub async fn get(db: &Db, tenant_id: &str, key: &str) -> DbResult<Option<Kept>> {
        let r = sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2")
            .bind(tenant_id)
            .bind(key)
            .fetch_optional(db.pool())
            .await?;
        Ok(r.map(|r| Kept {
            request_hash: r.get("request_hash"),
            status: r.try_get::<Option<i64>, _>("status").ok().flatten(),
            response: crate::db::opt_str(&r, "response"),
        }))
    }
}
