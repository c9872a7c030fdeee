//! The server's routes, put together in one place: every capability's router, the probes and
//! pages, and the layers every request goes through (outermost last: tracking, rate limits,
//! read retries, idempotency, body timeout and size).

use crate::error::ApiError;
use crate::http;
use crate::App;
use axum::routing::get;
use axum::Router;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(http::healthz))
        .route("/", get(http::dashboard))
        .route("/openapi.json", get(http::openapi))
        .route("/metrics", get(crate::telemetry::metrics))
        .merge(crate::tenants::api::router())
        .merge(crate::numbers::api::router())
        .merge(crate::messaging::api::router())
        .merge(crate::messaging::contacts::router())
        .merge(crate::messaging::templates::router())
        .merge(crate::messaging::webhooks::router())
        .merge(crate::voice::flows::router())
        .merge(crate::voice::calls::router())
        .merge(crate::voice::webhooks::router())
        .merge(crate::voice::recordings::router())
        .merge(crate::voice::outbound::router())
        .merge(crate::verify::api::router())
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(http::MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            app.config().limits.body_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            http::idempotency::layer,
        ))
        .layer(axum::middleware::from_fn(http::retry_reads))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            http::limits::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::telemetry::track,
        ))
        .with_state(app)
}
