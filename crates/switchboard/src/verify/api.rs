//! `/v1/verifications`: start (or re-send), check, fetch and cancel a verification, and the
//! tenant's settings. The built-in engine and Twilio Verify answer with the same statuses and
//! error codes.

use super::store::{self, Verification};
use super::{guard, Engine, Settings, MAX_CHECKS, MAX_SENDS};
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, JsonBody, PathId};
use crate::ids::new_id;
use crate::phone::E164;
use crate::tenants::Tenant;
use crate::App;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/verifications", post(start))
        .route("/v1/verifications/check", post(check))
        .route(
            "/v1/verifications/settings",
            get(get_settings).put(put_settings),
        )
        .route("/v1/verifications/{id}", get(fetch))
        .route("/v1/verifications/{id}/cancel", post(cancel))
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "verification_not_found",
        "no pending verification: it was approved, canceled or has expired",
    )
}

fn max_checks() -> ApiError {
    ApiError::too_many_requests(
        "max_check_attempts",
        format!("{MAX_CHECKS} wrong codes were given; start a new verification"),
        60,
    )
}

/// The verification as the API shows it: a pending one past its time is `expired`.
fn view(v: &Verification, now: i64) -> Value {
    let mut out = serde_json::to_value(v).unwrap_or_default();
    if v.status == "pending" && v.expires_at <= now {
        out["status"] = json!("expired");
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    to: String,
    #[serde(default = "sms")]
    channel: String,
    locale: Option<String>,
    app_name: Option<String>,
}

fn sms() -> String {
    "sms".into()
}

/// The end user's address: the peer, or who a trusted proxy says it forwards for.
fn client_ip(app: &App, headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>) -> String {
    let Some(ConnectInfo(peer)) = peer else {
        return "unknown".into();
    };
    crate::http::limits::client_ip(headers, peer.ip(), &app.config().limits.trusted_proxies)
        .to_string()
}

/// Estimated cost of sending one code, in millionths of a dollar.
fn cost_micros(channel: &str, text: &str) -> i64 {
    if channel == "call" {
        return 14_000; // about a minute of an outbound call
    }
    let (_, price) = crate::messaging::cost(text, 0);
    (price.parse::<f64>().unwrap_or(0.0) * 1_000_000.0).round() as i64
}

async fn start(
    State(app): State<App>,
    auth: Auth,
    headers: HeaderMap,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(req): JsonBody<StartRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = &auth.tenant;
    let to = E164::parse(&req.to, &tenant.default_region)
        .map_err(|e| ApiError::unprocessable("invalid_phone_number", format!("to: {e}")))?;
    if !matches!(req.channel.as_str(), "sms" | "call") {
        return Err(ApiError::unprocessable(
            "invalid_channel",
            "channel is sms or call",
        ));
    }
    let locale = req.locale.clone().unwrap_or_else(|| "en".into());
    let locale_ok = !locale.is_empty()
        && locale.len() <= 10
        && locale
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !locale_ok {
        return Err(ApiError::unprocessable(
            "invalid_locale",
            "locale is a language tag such as es or pt-BR",
        ));
    }
    let settings = store::settings(app.db(), &tenant.id).await?;
    let app_name = req
        .app_name
        .clone()
        .or_else(|| settings.app_name.clone())
        .unwrap_or_else(|| tenant.name.clone());
    if app_name.trim().is_empty() || app_name.chars().count() > 30 {
        return Err(ApiError::unprocessable(
            "invalid_app_name",
            "app_name has 1 to 30 characters",
        ));
    }
    if settings.lookup && req.channel == "sms" {
        refuse_landlines(&app, tenant, to.as_str()).await?;
    }
    let ip = client_ip(&app, &headers, peer.as_ref().map(|e| &e.0));
    let ask = Ask {
        tenant,
        to: to.to_string(),
        channel: req.channel.clone(),
        locale: locale.to_lowercase(),
        app_name,
        client_ip: ip,
    };
    let v = match settings.engine {
        Engine::Builtin => builtin_start(&app, &settings, &ask).await?,
        Engine::Twilio => twilio_start(&app, &settings, &ask).await?,
    };
    Ok((StatusCode::CREATED, Json(view(&v, app.clock().now_ms()))))
}

/// Asks Lookup what line the number is: a text cannot reach a landline or a fixed VoIP line.
async fn refuse_landlines(app: &App, tenant: &Tenant, to: &str) -> ApiResult<()> {
    let client = app.twilio(&tenant.id).await?;
    match client.line_type(to).await {
        Ok(Some(kind)) if matches!(kind.as_str(), "landline" | "fixedVoip") => {
            app.metrics().verification("lookup", "landline");
            Err(ApiError::unprocessable(
                "landline_not_supported",
                format!("{to} is a {kind} line and cannot receive text messages; use channel call"),
            ))
        }
        Ok(_) => Ok(()),
        // Lookup failing is no reason to refuse a code.
        Err(e) => {
            tracing::warn!(error = %e, "Lookup failed; sending without it");
            Ok(())
        }
    }
}

/// A request for a code, validated.
struct Ask<'a> {
    tenant: &'a Tenant,
    to: String,
    channel: String,
    locale: String,
    app_name: String,
    client_ip: String,
}

/// The pending verification of the number, after marking one past its time as expired.
async fn pending(app: &App, tenant_id: &str, to: &str) -> ApiResult<Option<Verification>> {
    let now = app.clock().now_ms();
    let (t, n) = (tenant_id.to_string(), to.to_string());
    app.db()
        .write(move |tx| {
            let (t, n) = (t.clone(), n.clone());
            Box::pin(async move { store::expire(tx, &t, &n, now).await })
        })
        .await?;
    Ok(store::pending_for(app.db().pool(), tenant_id, to).await?)
}

/// Refuses a send past the verification's allowance, then asks the guard; returns the
/// admitted attempt.
async fn admit(
    app: &App,
    s: &Settings,
    ask: &Ask<'_>,
    current: Option<&Verification>,
) -> ApiResult<String> {
    if let Some(p) = current.filter(|p| p.send_attempts >= MAX_SENDS) {
        let wait = ((p.expires_at - app.clock().now_ms()) / 1000).max(1) as u64;
        app.metrics().verification(&p.engine, "max_send_attempts");
        return Err(ApiError::too_many_requests(
            "max_send_attempts",
            format!(
                "the code was sent {MAX_SENDS} times; check it, cancel, or wait for it to expire"
            ),
            wait,
        ));
    }
    let masked = super::sms_text(s, &ask.locale, &ask.app_name, &super::masked(s.code_length));
    let target = guard::Target {
        tenant_id: ask.tenant.id.clone(),
        to: ask.to.clone(),
        channel: ask.channel.clone(),
        client_ip: ask.client_ip.clone(),
        cost_micros: cost_micros(&ask.channel, &masked),
    };
    match guard::admit(app, s, &target, &ask.tenant.default_region).await? {
        Ok(attempt) => Ok(attempt),
        Err(b) => Err(b.error),
    }
}

async fn builtin_start(app: &App, s: &Settings, ask: &Ask<'_>) -> ApiResult<Verification> {
    let tenant = ask.tenant;
    let current = pending(app, &tenant.id, &ask.to).await?;
    let attempt = admit(app, s, ask, current.as_ref()).await?;
    let now = app.clock().now_ms();
    let (v, resent) = match current {
        Some(p) => (p, true),
        None => {
            let id = new_id("ver");
            let salt = super::new_salt();
            let len = s.code_length;
            let code = super::code(app, &tenant.id, &id, &salt, len);
            let v = Verification {
                id: id.clone(),
                tenant_id: tenant.id.clone(),
                to: ask.to.clone(),
                channel: ask.channel.clone(),
                locale: ask.locale.clone(),
                app_name: ask.app_name.clone(),
                engine: Engine::Builtin.as_str().into(),
                status: "pending".into(),
                code_length: len as i64,
                code_hash: Some(super::code_hash(app, &tenant.id, &id, &code)),
                salt: Some(salt),
                twilio_sid: None,
                service_sid: None,
                send_attempts: 0,
                check_attempts: 0,
                message_id: None,
                call_id: None,
                expires_at: now + s.expiry_minutes as i64 * 60_000,
                created_at: now,
                updated_at: now,
            };
            let row = std::sync::Arc::new(v.clone());
            let made = app
                .db()
                .write(move |tx| {
                    let row = row.clone();
                    Box::pin(async move { store::insert(tx, &row).await })
                })
                .await;
            match made {
                Ok(()) => (v, false),
                // Another request for the number made one at the same moment: send its code.
                Err(e) if e.is_unique_violation() => (
                    store::pending_for(app.db().pool(), &tenant.id, &ask.to)
                        .await?
                        .ok_or_else(not_found)?,
                    true,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let (id, channel) = (v.id.clone(), ask.channel.clone());
    app.db()
        .write(move |tx| {
            let (id, channel) = (id.clone(), channel.clone());
            Box::pin(async move { store::count_send(tx, &id, &channel, None, now).await })
        })
        .await?;
    let n = v.send_attempts + 1;
    if let Err(e) = deliver(app, s, tenant, &v, &ask.channel, n).await {
        guard::refused(app, &attempt, e.code).await?;
        if !resent {
            store::set_status(app.db(), &v.id, "failed", now).await?;
        }
        app.metrics().verification("builtin", "failed");
        return Err(e);
    }
    app.metrics()
        .verification("builtin", if resent { "resent" } else { "sent" });
    store::get(app.db(), &tenant.id, &v.id)
        .await?
        .ok_or_else(not_found)
}

/// Sends a built-in verification's code through the durable send path: a text (paced,
/// tracked, in history, opt-outs applied) or a call that reads it. Both keep the code masked;
/// it is put in when Twilio is asked to send it.
async fn deliver(
    app: &App,
    s: &Settings,
    tenant: &Tenant,
    v: &Verification,
    channel: &str,
    attempt: i64,
) -> ApiResult<()> {
    let masked = super::masked(v.code_length as u32);
    let key = Some(format!("verification:{}:{attempt}", v.id));
    if channel == "call" {
        let req = crate::voice::outbound::CallRequest {
            to: v.to.clone(),
            from: None,
            flow: None,
            say: Some(super::call_text(&v.app_name, &masked)),
            twiml_url: None,
            record: false,
            metadata: [("verification_id".to_string(), json!(v.id))]
                .into_iter()
                .collect(),
        };
        let call =
            crate::voice::outbound::place_call(app, tenant, req, key, Some(v.id.clone())).await?;
        store::set_carrier(app.db(), &v.id, None, Some(&call)).await?;
    } else {
        let req = crate::messaging::api::SendRequest {
            to: v.to.clone(),
            body: Some(super::sms_text(s, &v.locale, &v.app_name, &masked)),
            media_urls: vec![],
            from: None,
            messaging_service_sid: None,
            template: None,
            variables: Default::default(),
            validity_period: Some(s.expiry_minutes * 60),
        };
        let (m, _) =
            crate::messaging::api::send_for(app, tenant, req, key, Some(v.id.clone())).await?;
        store::set_carrier(app.db(), &v.id, Some(&m.id), None).await?;
    }
    Ok(())
}

/// Twilio Verify's answer, in our error codes.
fn twilio_error(e: twilio::Error) -> ApiError {
    match e.code() {
        Some(60200) => ApiError::unprocessable("invalid_phone_number", e.to_string()),
        Some(60202) => max_checks(),
        Some(60203) => ApiError::too_many_requests(
            "max_send_attempts",
            format!(
                "the code was sent {MAX_SENDS} times; check it, cancel, or wait for it to expire"
            ),
            600,
        ),
        Some(60205) => ApiError::unprocessable(
            "landline_not_supported",
            "this number cannot receive text messages; use channel call",
        ),
        Some(60212) | Some(20429) => ApiError::too_many_requests(
            "too_many_requests",
            "too many verification codes to this number; try again later",
            60,
        ),
        Some(60410) => ApiError::too_many_requests(
            "too_many_requests",
            "codes to numbers like this one are blocked for now (Twilio Fraud Guard)",
            12 * 3600,
        ),
        Some(20404) => not_found(),
        _ => {
            tracing::warn!(error = %e, "Twilio Verify failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "twilio_error",
                format!("Twilio Verify answered: {e}"),
            )
        }
    }
}

fn service_of(s: &Settings) -> ApiResult<String> {
    s.twilio_service_sid.clone().ok_or_else(|| {
        ApiError::unprocessable(
            "verify_not_configured",
            "the twilio engine needs twilio_service_sid in the verification settings",
        )
    })
}

async fn twilio_start(app: &App, s: &Settings, ask: &Ask<'_>) -> ApiResult<Verification> {
    let tenant = ask.tenant;
    let service = service_of(s)?;
    let current = pending(app, &tenant.id, &ask.to).await?;
    let attempt = admit(app, s, ask, current.as_ref()).await?;
    let client = app.twilio(&tenant.id).await?;
    let req = twilio::rest::CreateVerification {
        to: ask.to.clone(),
        channel: ask.channel.clone(),
        locale: Some(ask.locale.clone()),
        custom_friendly_name: Some(ask.app_name.clone()),
    };
    let made = match client.create_verification(&service, &req).await {
        Ok(made) => made,
        Err(e) => {
            app.metrics().verification("twilio", "refused");
            let reason = e
                .code()
                .map_or_else(|| "twilio_error".to_string(), |c| format!("twilio_{c}"));
            guard::refused(app, &attempt, &reason).await?;
            return Err(twilio_error(e));
        }
    };
    let now = app.clock().now_ms();
    let (resent, id) = match current.filter(|c| c.twilio_sid.as_deref() == Some(made.sid.as_str()))
    {
        Some(c) => (true, c.id),
        None => {
            // Twilio started a new one: whatever we had pending for the number is over.
            let v = Verification {
                id: new_id("ver"),
                tenant_id: tenant.id.clone(),
                to: ask.to.clone(),
                channel: ask.channel.clone(),
                locale: ask.locale.clone(),
                app_name: ask.app_name.clone(),
                engine: Engine::Twilio.as_str().into(),
                status: "pending".into(),
                code_length: s.code_length as i64,
                salt: None,
                code_hash: None,
                twilio_sid: Some(made.sid.clone()),
                service_sid: Some(service.clone()),
                send_attempts: 0,
                check_attempts: 0,
                message_id: None,
                call_id: None,
                // Twilio's codes live 10 minutes.
                expires_at: now + 10 * 60_000,
                created_at: now,
                updated_at: now,
            };
            let row = std::sync::Arc::new(v.clone());
            app.db()
                .write(move |tx| {
                    let row = row.clone();
                    Box::pin(async move {
                        store::end_pending(tx, &row.tenant_id, &row.to, row.created_at).await?;
                        store::insert(tx, &row).await
                    })
                })
                .await?;
            (false, v.id)
        }
    };
    let (vid, channel, sid) = (id.clone(), ask.channel.clone(), made.sid.clone());
    app.db()
        .write(move |tx| {
            let (vid, channel, sid) = (vid.clone(), channel.clone(), sid.clone());
            Box::pin(async move { store::count_send(tx, &vid, &channel, Some(&sid), now).await })
        })
        .await?;
    app.metrics()
        .verification("twilio", if resent { "resent" } else { "sent" });
    store::get(app.db(), &tenant.id, &id)
        .await?
        .ok_or_else(not_found)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    to: Option<String>,
    id: Option<String>,
    code: String,
}

async fn check(
    State(app): State<App>,
    auth: Auth,
    JsonBody(req): JsonBody<CheckRequest>,
) -> ApiResult<Json<Value>> {
    let tenant = &auth.tenant;
    let code = req.code.trim().to_string();
    if code.is_empty() || code.chars().count() > 10 {
        return Err(ApiError::unprocessable(
            "invalid_code",
            "a code has 1 to 10 characters",
        ));
    }
    let v = match (&req.id, &req.to) {
        (Some(id), None) => store::get(app.db(), &tenant.id, id).await?,
        (None, Some(to)) => {
            let to = E164::parse(to, &tenant.default_region)
                .map_err(|e| ApiError::unprocessable("invalid_phone_number", format!("to: {e}")))?;
            store::latest_for(app.db(), &tenant.id, to.as_str()).await?
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give either to or id",
            ))
        }
    }
    .ok_or_else(not_found)?;
    let now = app.clock().now_ms();
    if v.status == "max_attempts_reached" {
        return Err(max_checks());
    }
    if v.status != "pending" {
        return Err(not_found());
    }
    if v.expires_at <= now {
        store::set_status(app.db(), &v.id, "expired", now).await?;
        return Err(not_found());
    }
    let (status, valid) = if v.engine == Engine::Twilio.as_str() {
        twilio_check(&app, tenant, &v, &code).await?
    } else {
        let valid = v
            .code_hash
            .as_deref()
            .is_some_and(|h| super::code_matches(&app, &tenant.id, &v.id, &code, h));
        let status = if valid {
            "approved"
        } else if v.check_attempts + 1 >= MAX_CHECKS {
            "max_attempts_reached"
        } else {
            "pending"
        };
        // Only the check that read the verification as it is counts: two racing checks
        // cannot both use one attempt.
        if !store::record_check(app.db(), &v.id, v.check_attempts, status, now).await? {
            return Err(ApiError::conflict(
                "check_in_progress",
                "another check of this verification was made at the same moment; try again",
            ));
        }
        (status.to_string(), valid)
    };
    app.metrics()
        .verification(&v.engine, if valid { "approved" } else { "wrong_code" });
    let v = store::get(app.db(), &tenant.id, &v.id)
        .await?
        .ok_or_else(not_found)?;
    let mut out = view(&v, now);
    out["status"] = json!(status);
    out["valid"] = json!(valid);
    Ok(Json(out))
}

/// Checks a code with Twilio Verify and records what it said.
async fn twilio_check(
    app: &App,
    tenant: &Tenant,
    v: &Verification,
    code: &str,
) -> ApiResult<(String, bool)> {
    let service = v.service_sid.clone().ok_or_else(not_found)?;
    let sid = v.twilio_sid.clone().ok_or_else(not_found)?;
    let client = app.twilio(&tenant.id).await?;
    let now = app.clock().now_ms();
    let target = twilio::rest::CheckTarget::Sid(sid);
    match client.check_verification(&service, &target, code).await {
        Ok(r) => {
            let status = match r.status.as_str() {
                "approved" | "pending" | "max_attempts_reached" => r.status.clone(),
                "canceled" | "expired" | "deleted" => {
                    store::set_status(app.db(), &v.id, "expired", now).await?;
                    return Err(not_found());
                }
                other => other.to_string(),
            };
            store::record_check(app.db(), &v.id, v.check_attempts, &status, now).await?;
            Ok((status, r.valid || r.status == "approved"))
        }
        Err(e) => {
            match e.code() {
                Some(20404) => {
                    store::set_status(app.db(), &v.id, "expired", now).await?;
                }
                Some(60202) => {
                    store::set_status(app.db(), &v.id, "max_attempts_reached", now).await?;
                }
                _ => {}
            }
            Err(twilio_error(e))
        }
    }
}

async fn fetch(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Json<Value>> {
    let v = store::get(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("verification"))?;
    Ok(Json(view(&v, app.clock().now_ms())))
}

async fn cancel(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Json<Value>> {
    let tenant = &auth.tenant;
    let v = store::get(app.db(), &tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("verification"))?;
    let now = app.clock().now_ms();
    if v.status != "pending" || v.expires_at <= now {
        return Err(not_found());
    }
    if let (Some(service), Some(sid)) = (&v.service_sid, &v.twilio_sid) {
        let client = app.twilio(&tenant.id).await?;
        if let Err(e) = client.update_verification(service, sid, "canceled").await {
            // Already gone at Twilio: canceled here too.
            if e.code() != Some(20404) {
                return Err(twilio_error(e));
            }
        }
    }
    store::set_status(app.db(), &v.id, "canceled", now).await?;
    app.metrics().verification(&v.engine, "canceled");
    let v = store::get(app.db(), &tenant.id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&v, now)))
}

async fn get_settings(State(app): State<App>, auth: Auth) -> ApiResult<Json<Settings>> {
    Ok(Json(store::settings(app.db(), &auth.tenant.id).await?))
}

async fn put_settings(
    State(app): State<App>,
    auth: Auth,
    JsonBody(s): JsonBody<Settings>,
) -> ApiResult<Json<Settings>> {
    if let Some(p) = s.problem() {
        return Err(ApiError::unprocessable("invalid_settings", p));
    }
    store::save_settings(app.db(), &auth.tenant.id, &s, app.clock().now_ms()).await?;
    Ok(Json(s))
}
