//! HTTP plumbing every capability uses: tenant authentication, JSON bodies and query strings
//! with our errors, path ids checked at the edge, Twilio's webhooks (`webhook.rs`), limits,
//! idempotency and serving. The capabilities' routers are put together in `routes.rs`.

use crate::error::ApiError;
use crate::tenants::Tenant;
use crate::App;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

pub mod idempotency;
pub mod limits;
pub mod serve;
pub mod webhook;

/// Largest request body accepted anywhere (media travels by URL, not in bodies).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A read that met a lost database connection is run once more (it changed nothing, and the
/// pool hands out a fresh connection); a second loss is answered 503 with `Retry-After`.
pub(crate) async fn retry_reads(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use crate::telemetry::DatabaseUnavailable;
    if req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let again = {
        let mut r = Request::new(axum::body::Body::empty());
        *r.method_mut() = parts.method.clone();
        *r.uri_mut() = parts.uri.clone();
        *r.headers_mut() = parts.headers.clone();
        *r.extensions_mut() = parts.extensions.clone();
        r
    };
    let first = next.clone().run(Request::from_parts(parts, body)).await;
    if first.extensions().get::<DatabaseUnavailable>().is_none() {
        return first;
    }
    tracing::info!("a read lost its database connection; trying once more");
    next.run(again).await
}

/// 200 once the server is ready for traffic (its tenant and numbers set up), 503 before.
pub(crate) async fn healthz(
    axum::extract::State(app): axum::extract::State<App>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if app.is_ready() {
        "ok".into_response()
    } else {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is still starting",
        )
        .into_response()
    }
}

/// An id (or name) in the request path. NUL, control characters and ids longer than any we
/// make are refused here with a 404, before any lookup, on every route.
pub struct PathId(pub String);

/// Longest id or name a path may carry.
const MAX_PATH_ID: usize = 200;

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found("this resource"))?;
        if id.is_empty() || id.len() > MAX_PATH_ID || id.chars().any(char::is_control) {
            return Err(ApiError::not_found("this resource"));
        }
        Ok(PathId(id))
    }
}

/// Query parameters; a malformed query string is a 400 in our error shape.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        if q.contains("%00") {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query parameters must not contain NUL characters",
            ));
        }
        serde_urlencoded::from_str(q)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
    }
}

/// The dashboard: one page that talks to the API with the key the user gives it.
pub(crate) async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// The OpenAPI document of the REST API (kept in step with the routes by a test).
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub(crate) async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// The tenant an API key acts for (`Authorization: Bearer <key>`).
pub struct Auth {
    pub tenant: Tenant,
}

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .ok_or_else(ApiError::unauthorized)?;
        let tenant = app
            .directory()
            .tenant_for_key(app.db(), key)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Auth { tenant })
    }
}

/// A JSON body; anything malformed, oversized or of the wrong type is a clear 400/413/415.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        e.status(),
                        "body_too_large",
                        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    ApiError::bad_request("invalid_body", e.body_text())
                }
            })?;
        let invalid = |e: serde_json::Error| {
            ApiError::bad_request("invalid_json", format!("the JSON body is not valid: {e}"))
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        // No database keeps a NUL character in text, and no phone shows one: refuse it here
        // rather than lose or alter it later.
        if has_nul(&value) {
            return Err(ApiError::unprocessable(
                "invalid_text",
                "text must not contain NUL (\\u0000) characters",
            ));
        }
        serde_json::from_value(value).map(JsonBody).map_err(invalid)
    }
}

fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}
