//! Errors answered in Twilio's own shape: `{"code","message","more_info","status"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use twilio::ApiError;

#[derive(Debug, Clone)]
pub struct SimError(pub ApiError);

impl SimError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        SimError(ApiError::new(status, code, message))
    }

    pub fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    pub fn authenticate() -> Self {
        Self::new(401, 20003, "Authenticate")
    }
}

impl From<axum::extract::rejection::BytesRejection> for SimError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        let status = if e.status().as_u16() == 413 { 413 } else { 400 };
        SimError::new(status, 20001, e.body_text())
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let retry_after = self.0.retry_after;
        let mut resp = (status, axum::Json(&self.0)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        if let Some(d) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub type SimResult<T> = Result<T, SimError>;
