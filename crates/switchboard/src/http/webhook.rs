//! Twilio's webhooks, authenticated before anything else is looked up.
//!
//! The body is bounded and shape-checked first (no NUL, every `…Sid` a Twilio id); then the
//! `AccountSid` it names gives the auth tokens to try — the only lookup made for an unsigned
//! request — and the signature must match the configured public URL (never the Host header)
//! with one of them. Only then do handlers look up numbers, messages or calls, and every row
//! they find by an outside id must belong to a tenant using the account that signed.

use crate::error::{ApiError, ApiResult};
use crate::App;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use twilio::webhook::PayloadError;

/// A webhook whose signature was checked.
pub struct Webhook {
    pub form: twilio::Form,
    /// The path and query Twilio called, e.g. `/twilio/messaging/status?mid=msg_…`.
    pub path: String,
    /// The account whose auth token signed the webhook.
    pub account_sid: String,
    /// The tenants that use that account (usually one).
    pub tenants: Vec<String>,
}

impl Webhook {
    /// Whether a row of `tenant_id` may be touched by this webhook.
    pub fn owns(&self, tenant_id: &str) -> bool {
        self.tenants.iter().any(|t| t == tenant_id)
    }

    /// Refuses a row found by an outside id that belongs to a tenant of another account: a
    /// tenant signing webhooks for its own numbers must never reach another's rows.
    pub fn check_owner(&self, tenant_id: &str, what: &str, outside_id: &str) -> ApiResult<()> {
        if self.owns(tenant_id) {
            return Ok(());
        }
        security_event(&self.account_sid, what, outside_id);
        Err(ApiError::forbidden(format!(
            "this {what} does not belong to the account that signed the webhook"
        )))
    }

    /// A parameter of the URL Twilio called (our ids ride there).
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.path.split_once('?')?.1;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Our id of `prefix` in the URL parameter `name`, shape-checked.
    pub fn query_id(&self, name: &str, prefix: &str) -> ApiResult<Option<String>> {
        match self.query(name) {
            None => Ok(None),
            Some(id) if crate::ids::is_id(&id, prefix) => Ok(Some(id)),
            Some(_) => Err(ApiError::bad_request(
                "invalid_webhook",
                format!("{name} is not a {prefix} id"),
            )),
        }
    }
}

/// Logs an attempt to reach another tenant's rows through a Twilio id.
pub fn security_event(account_sid: &str, what: &str, outside_id: &str) {
    tracing::warn!(
        security = true,
        account_sid,
        what,
        outside_id,
        "refused a webhook naming a row of another account"
    );
}

/// The bad request a webhook's parameters make.
pub fn invalid(e: PayloadError) -> ApiError {
    match e {
        PayloadError::TooLarge(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        ),
        e => ApiError::bad_request("invalid_webhook", e.to_string()),
    }
}

impl FromRequest<App> for Webhook {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        let path = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| req.uri().clone())
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let kind = path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_start_matches("/twilio/")
            .to_string();
        if path.contains("%00") {
            return Err(ApiError::bad_request(
                "invalid_webhook",
                "the URL must not contain NUL characters",
            ));
        }
        let signature = req
            .headers()
            .get(twilio::signature::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::Bytes::from_request(req, app)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
        let form = twilio::Form::parse(&bytes);
        twilio::webhook::check_form(&form).map_err(invalid)?;
        let refuse = |why: &str| {
            app.metrics().webhook(&kind, "bad_signature");
            tracing::warn!(path = %path, why, "rejected a webhook that is not Twilio's");
            ApiError::forbidden(
                "X-Twilio-Signature is missing or does not match; check SWITCHBOARD_PUBLIC_URL",
            )
        };
        let Some(signature) = signature else {
            return Err(refuse("no signature"));
        };
        let account_sid = form
            .get("AccountSid")
            .filter(|a| twilio::sid::is_sid(a, "AC"))
            .ok_or_else(|| refuse("no AccountSid"))?
            .to_string();
        let signers = app
            .directory()
            .signers(app.db(), &app.config().master_key, &account_sid)
            .await?;
        let url = format!("{}{}", app.config().public_url, path);
        let mut token = None;
        for s in &signers {
            if token == Some(&s.auth_token) {
                continue;
            }
            if twilio::signature::validate(&s.auth_token, &url, form.pairs(), Some(&signature)) {
                token = Some(&s.auth_token);
                break;
            }
        }
        let Some(token) = token else {
            return Err(refuse("signature does not match"));
        };
        let tenants = signers
            .iter()
            .filter(|s| &s.auth_token == token)
            .map(|s| s.tenant_id.clone())
            .collect();
        Ok(Webhook {
            form,
            path,
            account_sid,
            tenants,
        })
    }
}
