//! Twilio Verify v2 (`verify.twilio.com/v2`): Services, Verifications and VerificationCheck,
//! with Twilio's shapes (snake_case JSON, `VA`/`VE` SIDs), statuses, limits and error codes.
//! Codes reach the simulated handset as an SMS (in `GET /sim/control/messages`) or as a call
//! that reads them out (listed there too, with `"channel": "call"`).
//!
//! Twilio's rules kept here: a verification lives 10 minutes; asking again for a number with a
//! pending verification sends the same code again (5 sends at most: 60203); 5 wrong codes at
//! most (then 60202); an approved, expired or exhausted verification is gone (20404); an SMS
//! to a prefix Fraud Guard blocks is refused (60410).

use crate::api::messages::api_faults;
use crate::api::{authenticate_any, FormBody};
use crate::error::{SimError, SimResult};
use crate::faults::{self, FaultKind};
use crate::state::{new_sid, Delivery, Message};
use crate::Sim;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{json, Value};
use twilio::types::{MessageDirection, MessageStatus};

/// How long a code can be checked.
pub const LIFETIME_MINUTES: i64 = 10;
/// Sends of one verification at most.
pub const MAX_SENDS: usize = 5;
/// Wrong codes one verification takes at most.
pub const MAX_CHECKS: u32 = 5;
/// The number Verify's texts come from.
pub const SENDER: &str = "+18005550199";

#[derive(Debug, Clone)]
pub struct Service {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub code_length: usize,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub sid: String,
    pub channel: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Verification {
    pub sid: String,
    pub service_sid: String,
    pub account_sid: String,
    pub to: String,
    pub channel: String,
    pub locale: String,
    /// pending, approved, canceled, max_attempts_reached, expired.
    pub status: String,
    pub code: String,
    pub attempts: Vec<Attempt>,
    pub checks: u32,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl Verification {
    /// Still waiting for its code at `now`.
    fn pending(&self, now: DateTime<Utc>) -> bool {
        self.status == "pending" && now < self.created + Duration::minutes(LIFETIME_MINUTES)
    }
}

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/Services", post(create_service))
        .route("/Services/{sid}", get(fetch_service))
        .route("/Services/{service}/Verifications", post(create))
        .route(
            "/Services/{service}/Verifications/{sid}",
            get(fetch).post(update),
        )
        .route("/Services/{service}/VerificationCheck", post(check))
}

impl Sim {
    /// The twin's clock: the real one, moved forward by [`Sim::advance_clock`].
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.world().clock_offset_ms)
    }

    /// Moves the twin's clock forward (verifications expire by it).
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.world().clock_offset_ms += by.as_millis() as i64;
    }

    /// Creates a Verify service for an account, as `POST /v2/Services` does.
    pub fn create_verify_service(&self, account_sid: &str, friendly_name: &str) -> String {
        let now = self.now();
        let s = Service {
            sid: new_sid("VA"),
            account_sid: account_sid.to_string(),
            friendly_name: friendly_name.to_string(),
            code_length: 6,
            created: now,
            updated: now,
        };
        let sid = s.sid.clone();
        self.world().verify_services.insert(sid.clone(), s);
        sid
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn invalid(param: &str) -> SimError {
    SimError::new(400, 60200, format!("Invalid parameter: {param}"))
}

fn service_view(sim: &Sim, s: &Service) -> Value {
    let url = format!("{}/verify/v2/Services/{}", sim.base_url(), s.sid);
    json!({
        "sid": s.sid,
        "account_sid": s.account_sid,
        "friendly_name": s.friendly_name,
        "code_length": s.code_length,
        "lookup_enabled": false,
        "psd2_enabled": false,
        "skip_sms_to_landlines": false,
        "dtmf_input_required": true,
        "tts_name": null,
        "do_not_share_warning_enabled": false,
        "custom_code_enabled": false,
        "push": {"include_date": false, "apn_credential_sid": null, "fcm_credential_sid": null},
        "totp": {"issuer": null, "time_step": 30, "code_length": 6, "skew": 1},
        "default_template_sid": null,
        "whatsapp": {"msg_service_sid": null, "from": null},
        "passkeys": {"relying_party": null, "authenticator_attachment": null, "discoverable_credentials": null, "user_verification": null},
        "verify_event_subscription_enabled": false,
        "date_created": iso(s.created),
        "date_updated": iso(s.updated),
        "url": url,
        "links": {
            "verifications": format!("{url}/Verifications"),
            "verification_checks": format!("{url}/VerificationCheck"),
        },
    })
}

fn verification_view(sim: &Sim, v: &Verification) -> Value {
    json!({
        "sid": v.sid,
        "service_sid": v.service_sid,
        "account_sid": v.account_sid,
        "to": v.to,
        "channel": v.channel,
        "status": v.status,
        "valid": v.status == "approved",
        "lookup": {"carrier": null},
        "amount": null,
        "payee": null,
        "send_code_attempts": v.attempts.iter().map(|a| json!({
            "attempt_sid": a.sid, "channel": a.channel, "time": iso(a.time),
        })).collect::<Vec<_>>(),
        "date_created": iso(v.created),
        "date_updated": iso(v.updated),
        "sna": null,
        "url": format!("{}/verify/v2/Services/{}/Verifications/{}", sim.base_url(), v.service_sid, v.sid),
    })
}

fn check_view(v: &Verification) -> Value {
    json!({
        "sid": v.sid,
        "service_sid": v.service_sid,
        "account_sid": v.account_sid,
        "to": v.to,
        "channel": v.channel,
        "status": v.status,
        "valid": v.status == "approved",
        "amount": null,
        "payee": null,
        "date_created": iso(v.created),
        "date_updated": iso(v.updated),
        "sna_attempts_error_codes": [],
    })
}

async fn create_service(
    State(sim): State<Sim>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<(StatusCode, Json<Value>)> {
    let acct = authenticate_any(&sim, &headers)?;
    let name = form
        .non_empty("FriendlyName")
        .filter(|n| n.chars().count() <= 30)
        .ok_or_else(|| invalid("FriendlyName"))?;
    let code_length = match form.non_empty("CodeLength") {
        None => 6,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (4..=10).contains(l))
            .ok_or_else(|| invalid("CodeLength"))?,
    };
    let sid = sim.create_verify_service(&acct.sid, name);
    let mut w = sim.world();
    let s = w.verify_services.get_mut(&sid).expect("just made");
    s.code_length = code_length;
    let s = s.clone();
    drop(w);
    Ok((StatusCode::CREATED, Json(service_view(&sim, &s))))
}

fn owned_service(sim: &Sim, account: &str, sid: &str) -> SimResult<Service> {
    sim.world()
        .verify_services
        .get(sid)
        .filter(|s| s.account_sid == account)
        .cloned()
        .ok_or_else(|| SimError::not_found(&format!("/Services/{sid}")))
}

async fn fetch_service(
    State(sim): State<Sim>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate_any(&sim, &headers)?;
    let s = owned_service(&sim, &acct.sid, &sid)?;
    Ok(Json(service_view(&sim, &s)))
}

fn is_e164(to: &str) -> bool {
    to.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// The text of a code, in the verification's language.
fn sms_text(locale: &str, name: &str, code: &str) -> String {
    match locale {
        "es" => format!("Tu código de verificación de {name} es: {code}"),
        "fr" => format!("Votre code de vérification {name} est : {code}"),
        "pt" | "pt-br" => format!("O seu código de verificação {name} é: {code}"),
        _ => format!("Your {name} verification code is: {code}"),
    }
}

/// Sends the code: an SMS through the simulated network, or a call that reads it twice.
fn deliver(sim: &Sim, v: &Verification, name: &str) {
    let now = sim.now();
    match v.channel.as_str() {
        "call" => {
            let digits: Vec<String> = v.code.chars().map(|c| c.to_string()).collect();
            let spoken = digits.join(" ");
            let text = format!("Your {name} verification code is {spoken}. Again, {spoken}.");
            sim.world().deliveries.push(Delivery {
                channel: "call",
                sid: new_sid("CA"),
                account_sid: v.account_sid.clone(),
                from: SENDER.to_string(),
                to: v.to.clone(),
                body: text,
                media_urls: vec![],
                status: "completed".into(),
                error_code: None,
                date: now,
            });
        }
        _ => {
            let body = sms_text(&v.locale, name, &v.code);
            let m = {
                let mut w = sim.world();
                let seq = w.seq();
                let m = Message {
                    seq,
                    sid: new_sid("SM"),
                    account_sid: v.account_sid.clone(),
                    messaging_service_sid: None,
                    from: SENDER.to_string(),
                    to: v.to.clone(),
                    num_segments: twilio::segments::count(&body).count.max(1),
                    body,
                    status: MessageStatus::Queued,
                    direction: MessageDirection::OutboundApi,
                    media: Vec::new(),
                    media_urls: vec![],
                    status_callback: None,
                    error_code: None,
                    error_message: None,
                    price: None,
                    created: now,
                    updated: now,
                    sent: None,
                };
                w.messages.insert(m.sid.clone(), m.clone());
                m
            };
            crate::lifecycle::spawn_outbound(sim.clone(), m.sid);
        }
    }
}

async fn create(
    State(sim): State<Sim>,
    Path(service): Path<String>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<(StatusCode, Json<Value>)> {
    let acct = authenticate_any(&sim, &headers)?;
    let svc = owned_service(&sim, &acct.sid, &service)?;
    let to = form.get("To").unwrap_or_default().to_string();
    if !is_e164(&to) {
        return Err(invalid("To"));
    }
    let channel = form.get("Channel").unwrap_or_default().to_string();
    if !matches!(channel.as_str(), "sms" | "call") {
        return Err(invalid("Channel"));
    }
    let locale = form.non_empty("Locale").unwrap_or("en").to_lowercase();
    let name = form
        .non_empty("CustomFriendlyName")
        .unwrap_or(&svc.friendly_name)
        .to_string();
    if channel == "sms" {
        let blocked = faults::take(&mut sim.world().faults, &[to.as_str()], |k| match k {
            FaultKind::FraudGuard { prefix } if to.starts_with(prefix.as_str()) => Some(()),
            _ => None,
        });
        if blocked.is_some() {
            return Err(SimError::new(
                403,
                60410,
                "Verification delivery attempt blocked",
            ));
        }
    }
    let slow = api_faults(&sim, &[to.as_str()])?;
    let now = sim.now();
    let v = {
        let mut w = sim.world();
        let existing = w
            .verifications
            .values_mut()
            .find(|v| v.service_sid == svc.sid && v.to == to && v.pending(now));
        match existing {
            Some(v) => {
                if v.attempts.len() >= MAX_SENDS {
                    return Err(SimError::new(429, 60203, "Max send attempts reached"));
                }
                v.attempts.push(Attempt {
                    sid: new_sid("VL"),
                    channel: channel.clone(),
                    time: now,
                });
                v.channel = channel.clone();
                v.updated = now;
                v.clone()
            }
            None => {
                let mut rng = rand::rng();
                let code: String = (0..svc.code_length)
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                let v = Verification {
                    sid: new_sid("VE"),
                    service_sid: svc.sid.clone(),
                    account_sid: acct.sid.clone(),
                    to: to.clone(),
                    channel: channel.clone(),
                    locale,
                    status: "pending".into(),
                    code,
                    attempts: vec![Attempt {
                        sid: new_sid("VL"),
                        channel: channel.clone(),
                        time: now,
                    }],
                    checks: 0,
                    created: now,
                    updated: now,
                };
                w.verifications.insert(v.sid.clone(), v.clone());
                v
            }
        }
    };
    deliver(&sim, &v, &name);
    if let Some(d) = slow {
        tokio::time::sleep(d).await;
    }
    Ok((StatusCode::CREATED, Json(verification_view(&sim, &v))))
}

/// A verification that can still be seen: approved, expired and exhausted ones are deleted.
fn visible(sim: &Sim, account: &str, service: &str, sid: &str) -> SimResult<Verification> {
    let now = sim.now();
    sim.world()
        .verifications
        .get(sid)
        .filter(|v| v.account_sid == account && v.service_sid == service)
        .filter(|v| v.pending(now) || v.status == "canceled")
        .cloned()
        .ok_or_else(|| SimError::not_found(&format!("/Services/{service}/Verifications/{sid}")))
}

async fn fetch(
    State(sim): State<Sim>,
    Path((service, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate_any(&sim, &headers)?;
    let v = visible(&sim, &acct.sid, &service, &sid)?;
    Ok(Json(verification_view(&sim, &v)))
}

async fn update(
    State(sim): State<Sim>,
    Path((service, sid)): Path<(String, String)>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<Json<Value>> {
    let acct = authenticate_any(&sim, &headers)?;
    let status = form.get("Status").unwrap_or_default();
    if !matches!(status, "canceled" | "approved") {
        return Err(invalid("Status"));
    }
    let v = visible(&sim, &acct.sid, &service, &sid)?;
    if v.status != "pending" {
        return Err(SimError::not_found(&format!(
            "/Services/{service}/Verifications/{sid}"
        )));
    }
    let now = sim.now();
    let mut w = sim.world();
    let v = w.verifications.get_mut(&sid).expect("seen above");
    v.status = status.to_string();
    v.updated = now;
    let v = v.clone();
    drop(w);
    Ok(Json(verification_view(&sim, &v)))
}

async fn check(
    State(sim): State<Sim>,
    Path(service): Path<String>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<Json<Value>> {
    let acct = authenticate_any(&sim, &headers)?;
    owned_service(&sim, &acct.sid, &service)?;
    let code = form.get("Code").unwrap_or_default().to_string();
    if !(4..=10).contains(&code.chars().count()) {
        return Err(invalid("Code"));
    }
    let (to, sid) = (form.non_empty("To"), form.non_empty("VerificationSid"));
    if to.is_none() && sid.is_none() {
        return Err(SimError::new(
            400,
            60221,
            "No target verification specified",
        ));
    }
    let now = sim.now();
    let gone = || SimError::not_found(&format!("/Services/{service}/VerificationCheck"));
    let mut w = sim.world();
    let v = w
        .verifications
        .values_mut()
        .filter(|v| v.account_sid == acct.sid && v.service_sid == service)
        .filter(|v| sid.is_none_or(|s| v.sid == s) && to.is_none_or(|t| v.to == t))
        .filter(|v| v.pending(now) || v.status == "max_attempts_reached")
        .max_by_key(|v| v.created)
        .ok_or_else(gone)?;
    if v.checks >= MAX_CHECKS {
        return Err(SimError::new(429, 60202, "Max check attempts reached"));
    }
    v.updated = now;
    if code == v.code {
        v.status = "approved".into();
    } else {
        v.checks += 1;
        if v.checks >= MAX_CHECKS {
            v.status = "max_attempts_reached".into();
        }
    }
    Ok(Json(check_view(v)))
}
