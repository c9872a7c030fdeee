//! `/Calls`, `/Recordings` and `/Transcriptions` with Twilio's shapes and errors.

use super::{new_call, spawn_outbound, wav};
use crate::api::messages::{api_faults, is_http_url};
use crate::api::{authenticate, json_file, live_only, FormBody, Paging};
use crate::error::{SimError, SimResult};
use crate::state::{Call, CallUpdate, Recording, Transcription};
use crate::{phone, Sim};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeMap;
use twilio::rest::CreateCall;
use twilio::types::CallStatus;
use twilio::Form;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/Accounts/{account}/Calls.json", get(list).post(create))
        .route("/Accounts/{account}/Calls/{file}", get(fetch).post(update))
        .route(
            "/Accounts/{account}/Calls/{call}/Recordings.json",
            get(call_recordings),
        )
        .route("/Accounts/{account}/Recordings.json", get(recordings))
        .route(
            "/Accounts/{account}/Recordings/{file}",
            get(recording).delete(delete_recording),
        )
        .route(
            "/Accounts/{account}/Recordings/{recording}/Transcriptions.json",
            get(recording_transcriptions),
        )
        .route(
            "/Accounts/{account}/Transcriptions/{file}",
            get(transcription),
        )
}

fn bad(code: i64, message: impl Into<String>) -> SimError {
    SimError::bad_request(code, message)
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(crate) fn call_view(c: &Call) -> twilio::rest::Call {
    let base = format!("/2010-04-01/Accounts/{}/Calls/{}", c.account_sid, c.sid);
    let mut sub = BTreeMap::new();
    sub.insert("recordings".to_string(), format!("{base}/Recordings.json"));
    sub.insert(
        "transcriptions".to_string(),
        format!("{base}/Transcriptions.json"),
    );
    twilio::rest::Call {
        sid: c.sid.clone(),
        account_sid: c.account_sid.clone(),
        parent_call_sid: c.parent_call_sid.clone(),
        to: Some(c.to.clone()),
        to_formatted: Some(c.to.clone()),
        from: Some(c.from.clone()),
        from_formatted: Some(c.from.clone()),
        phone_number_sid: c.phone_number_sid.clone(),
        status: c.status.clone(),
        start_time: c.start,
        end_time: c.end,
        duration: c.duration.map(|d| d.to_string()),
        price: c
            .duration
            .filter(|d| *d > 0)
            .map(|d| format!("-{:.5}", 0.014 * d.div_ceil(60) as f64)),
        price_unit: Some("USD".into()),
        direction: Some(c.direction.clone()),
        answered_by: None,
        forwarded_from: None,
        caller_name: None,
        api_version: Some(twilio::rest::API_VERSION.into()),
        date_created: Some(c.created),
        date_updated: Some(c.updated),
        uri: Some(format!("{base}.json")),
        subresource_uris: Some(sub),
    }
}

fn recording_view(sim: &Sim, r: &Recording) -> twilio::rest::Recording {
    let base = format!(
        "/2010-04-01/Accounts/{}/Recordings/{}",
        r.account_sid, r.sid
    );
    let mut sub = BTreeMap::new();
    sub.insert(
        "transcriptions".to_string(),
        format!("{base}/Transcriptions.json"),
    );
    twilio::rest::Recording {
        sid: r.sid.clone(),
        account_sid: r.account_sid.clone(),
        call_sid: Some(r.call_sid.clone()),
        conference_sid: None,
        status: Some(r.status.clone()),
        duration: Some(r.duration.to_string()),
        channels: Some(1),
        source: Some(r.source.clone()),
        error_code: None,
        price: Some(format!("-{:.5}", 0.0025 * r.duration.div_ceil(60) as f64)),
        price_unit: Some("USD".into()),
        api_version: Some(twilio::rest::API_VERSION.into()),
        start_time: Some(r.created),
        date_created: Some(r.created),
        date_updated: Some(r.created),
        uri: Some(format!("{base}.json")),
        media_url: Some(super::audio_url(sim, &r.account_sid, &r.sid)),
        subresource_uris: Some(sub),
    }
}

fn transcription_view(t: &Transcription) -> twilio::rest::Transcription {
    twilio::rest::Transcription {
        sid: t.sid.clone(),
        account_sid: t.account_sid.clone(),
        recording_sid: Some(t.recording_sid.clone()),
        status: Some(t.status.clone()),
        transcription_text: Some(t.text.clone()),
        duration: Some(t.duration.to_string()),
        price: Some("-0.05000".into()),
        price_unit: Some("USD".into()),
        kind: Some("fast".into()),
        api_version: Some(twilio::rest::API_VERSION.into()),
        date_created: Some(t.created),
        date_updated: Some(t.created),
        uri: Some(format!(
            "/2010-04-01/Accounts/{}/Transcriptions/{}.json",
            t.account_sid, t.sid
        )),
    }
}

/// Twilio's documented test numbers for calls.
fn test_credentials_check(req: &CreateCall) -> SimResult<()> {
    match req.from.as_str() {
        "+15005550001" => {
            return Err(bad(
                21212,
                format!(
                    "The 'From' number {} is not a valid phone number.",
                    req.from
                ),
            ))
        }
        "+15005550007" => {
            return Err(bad(
                21210,
                format!(
                    "The source phone number provided, {}, is not yet verified for your account.",
                    req.from
                ),
            ))
        }
        "+15005550006" => {}
        other => {
            return Err(bad(
                21210,
                format!(
                "The source phone number provided, {other}, is not yet verified for your account."
            ),
            ))
        }
    }
    match req.to.as_str() {
        "+15005550001" => Err(bad(
            21217,
            format!("Phone number {} does not appear to be valid.", req.to),
        )),
        "+15005550002" => Err(bad(
            21214,
            format!("'To' phone number {} cannot be reached.", req.to),
        )),
        "+15005550003" => Err(bad(
            21215,
            format!("Account not authorized to call {}.", req.to),
        )),
        "+15005550004" => Err(bad(21216, format!("Call blocked: {}.", req.to))),
        _ => Ok(()),
    }
}

async fn create(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<(StatusCode, Json<Value>)> {
    let acct = authenticate(&sim, &headers, &account)?;
    let req = CreateCall::from_form(&form).map_err(|e| bad(20001, e.to_string()))?;
    if req.to.is_empty() {
        return Err(bad(21201, "No 'To' number is specified"));
    }
    if req.from.is_empty() {
        return Err(bad(21213, "No 'From' number is specified"));
    }
    if acct.test {
        test_credentials_check(&req)?;
    }
    if !phone::is_valid(&req.to) {
        return Err(bad(
            21217,
            format!("Phone number {} does not appear to be valid.", req.to),
        ));
    }
    if !phone::is_valid(&req.from) {
        return Err(bad(
            21212,
            format!(
                "The 'From' number {} is not a valid phone number.",
                req.from
            ),
        ));
    }
    match (&req.url, &req.twiml, &req.application_sid) {
        (None, None, None) => return Err(bad(21205, "Url parameter is required.")),
        (Some(u), None, _) if !is_http_url(u) => {
            return Err(bad(21205, format!("Url {u:?} is not a valid URL.")))
        }
        (_, Some(t), _) if twilio::twiml::parse(t).is_err() => {
            return Err(bad(21230, "Twiml is not valid TwiML."))
        }
        (None, None, Some(app)) => {
            return Err(bad(21218, format!("Application {app} was not found.")))
        }
        _ => {}
    }
    if let Some(cb) = &req.status_callback {
        if !is_http_url(cb) {
            return Err(bad(
                21609,
                format!("StatusCallback {cb:?} is not a valid URL."),
            ));
        }
    }
    if let Some(e) = req
        .status_callback_event
        .iter()
        .find(|e| !["initiated", "ringing", "answered", "completed"].contains(&e.as_str()))
    {
        return Err(bad(
            20001,
            format!(
                "StatusCallbackEvent {e:?} is not one of initiated, ringing, answered, completed"
            ),
        ));
    }
    if req.timeout.is_some_and(|t| t == 0 || t > 600) {
        return Err(bad(20001, "Timeout is 1 to 600 seconds"));
    }
    let slow = api_faults(&sim, &[req.to.as_str(), req.from.as_str()])?;
    let (call, script) = {
        let mut w = sim.world();
        if !acct.test && w.account_number(&acct.sid, &req.from).is_none() {
            return Err(bad(
                21210,
                format!(
                    "The source phone number provided, {}, is not yet verified for your account.",
                    req.from
                ),
            ));
        }
        let seq = w.seq();
        let mut c = new_call(&acct.sid, &req.from, &req.to, "outbound-api", seq);
        c.url = req.url.clone();
        c.twiml = req.twiml.clone();
        c.method = req
            .method
            .clone()
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase();
        c.status_callback = req.status_callback.clone();
        c.status_callback_method = req
            .status_callback_method
            .clone()
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase();
        c.status_callback_events = req.status_callback_event.clone();
        c.record = req.record.unwrap_or(false);
        c.recording_status_callback = req.recording_status_callback.clone();
        c.timeout = req.timeout.unwrap_or(60);
        c.phone_number_sid = w
            .account_number(&acct.sid, &req.from)
            .map(|n| n.sid.clone());
        w.calls.insert(c.sid.clone(), c.clone());
        (c, w.phones.get(&req.to).cloned().unwrap_or_default())
    };
    // Test credentials place no call.
    if !acct.test {
        spawn_outbound(
            sim.clone(),
            call.sid.clone(),
            acct.auth_token.clone(),
            script,
        );
    }
    if let Some(d) = slow {
        tokio::time::sleep(d).await;
    }
    Ok((StatusCode::CREATED, Json(to_value(call_view(&call)))))
}

fn owned_call(sim: &Sim, account: &str, sid: &str) -> SimResult<Call> {
    sim.world()
        .calls
        .get(sid)
        .filter(|c| c.account_sid == account)
        .cloned()
        .ok_or_else(|| {
            SimError::not_found(&format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json"))
        })
}

async fn fetch(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let c = owned_call(&sim, &account, json_file(&file)?)?;
    Ok(Json(to_value(call_view(&c))))
}

/// Redirects a live call to new TwiML, or ends it.
async fn update(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let sid = json_file(&file)?.to_string();
    let c = owned_call(&sim, &account, &sid)?;
    let live = matches!(
        c.status,
        CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress
    );
    if !live {
        return Err(bad(21220, "Call is not in-progress. Cannot redirect."));
    }
    let update = match (
        form.non_empty("Status"),
        form.non_empty("Twiml"),
        form.non_empty("Url"),
    ) {
        (Some("completed" | "canceled"), _, _) => CallUpdate::End,
        (Some(s), _, _) => {
            return Err(bad(
                20001,
                format!("Status {s:?} is not completed or canceled"),
            ))
        }
        (None, Some(t), _) => {
            twilio::twiml::parse(t).map_err(|_| bad(21230, "Twiml is not valid TwiML."))?;
            CallUpdate::Redirect {
                url: None,
                method: "POST".into(),
                twiml: Some(t.to_string()),
            }
        }
        (None, None, Some(u)) if is_http_url(u) => CallUpdate::Redirect {
            url: Some(u.to_string()),
            method: form
                .non_empty("Method")
                .unwrap_or("POST")
                .to_ascii_uppercase(),
            twiml: None,
        },
        (None, None, Some(u)) => return Err(bad(21205, format!("Url {u:?} is not a valid URL."))),
        (None, None, None) => return Err(bad(20001, "Give Url, Twiml or Status")),
    };
    let mut w = sim.world();
    let stored = w
        .calls
        .get_mut(&sid)
        .ok_or_else(|| SimError::not_found(&sid))?;
    stored.pending_update = Some(update);
    stored.updated = Utc::now();
    Ok(Json(to_value(call_view(stored))))
}

async fn list(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let paging = Paging::from_query(&q)?;
    let mut filters = Form::new();
    for k in ["To", "From", "Status", "ParentCallSid"] {
        if let Some(v) = q.non_empty(k) {
            filters.push(k, v);
        }
    }
    let mut items: Vec<Call> = sim
        .world()
        .calls
        .values()
        .filter(|c| c.account_sid == account)
        .filter(|c| q.non_empty("To").is_none_or(|t| c.to == t))
        .filter(|c| q.non_empty("From").is_none_or(|f| c.from == f))
        .filter(|c| q.non_empty("Status").is_none_or(|s| c.status.as_str() == s))
        .filter(|c| {
            q.non_empty("ParentCallSid")
                .is_none_or(|p| c.parent_call_sid.as_deref() == Some(p))
        })
        .cloned()
        .collect();
    items.sort_by_key(|c| std::cmp::Reverse(c.seq));
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    paging.respond(
        &path,
        "calls",
        items,
        |c| c.sid.clone(),
        |c| to_value(call_view(c)),
        &filters,
    )
}

fn list_recordings(
    sim: &Sim,
    account: &str,
    call: Option<&str>,
    path: String,
    q: Option<String>,
) -> SimResult<Json<Value>> {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let paging = Paging::from_query(&q)?;
    let call = call
        .map(str::to_string)
        .or_else(|| q.non_empty("CallSid").map(str::to_string));
    let mut items: Vec<Recording> = sim
        .world()
        .recordings
        .values()
        .filter(|r| r.account_sid == account && call.as_ref().is_none_or(|c| &r.call_sid == c))
        .cloned()
        .collect();
    items.sort_by_key(|r| std::cmp::Reverse(r.created));
    paging.respond(
        &path,
        "recordings",
        items,
        |r| r.sid.clone(),
        |r| to_value(recording_view(sim, r)),
        &Form::new(),
    )
}

async fn call_recordings(
    State(sim): State<Sim>,
    Path((account, call)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    owned_call(&sim, &account, &call)?;
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{call}/Recordings.json");
    list_recordings(&sim, &account, Some(&call), path, q)
}

async fn recordings(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let path = format!("/2010-04-01/Accounts/{account}/Recordings.json");
    list_recordings(&sim, &account, None, path, q)
}

fn owned_recording(sim: &Sim, account: &str, sid: &str) -> SimResult<Recording> {
    sim.world()
        .recordings
        .get(sid)
        .filter(|r| r.account_sid == account)
        .cloned()
        .ok_or_else(|| {
            SimError::not_found(&format!("/2010-04-01/Accounts/{account}/Recordings/{sid}"))
        })
}

/// `…/Recordings/{sid}.json` is the metadata; `{sid}` or `{sid}.wav` is the audio.
async fn recording(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<Response> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let (sid, ext) = file.split_once('.').unwrap_or((file.as_str(), ""));
    let r = owned_recording(&sim, &account, sid)?;
    match ext {
        "json" => Ok(Json(to_value(recording_view(&sim, &r))).into_response()),
        "" | "wav" => {
            Ok(([(header::CONTENT_TYPE, "audio/x-wav")], wav(r.duration)).into_response())
        }
        other => Err(SimError::new(
            415,
            20001,
            format!("the twin serves recordings as .wav, not .{other}"),
        )),
    }
}

async fn delete_recording(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<StatusCode> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let sid = json_file(&file)?;
    owned_recording(&sim, &account, sid)?;
    let mut w = sim.world();
    if let Some(r) = w.recordings.remove(sid) {
        if let Some(t) = r.transcription_sid {
            w.transcriptions.remove(&t);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn recording_transcriptions(
    State(sim): State<Sim>,
    Path((account, recording)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    owned_recording(&sim, &account, &recording)?;
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let paging = Paging::from_query(&q)?;
    let items: Vec<Transcription> = sim
        .world()
        .transcriptions
        .values()
        .filter(|t| t.recording_sid == recording)
        .cloned()
        .collect();
    let path = format!("/2010-04-01/Accounts/{account}/Recordings/{recording}/Transcriptions.json");
    paging.respond(
        &path,
        "transcriptions",
        items,
        |t| t.sid.clone(),
        |t| to_value(transcription_view(t)),
        &Form::new(),
    )
}

async fn transcription(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    live_only(&authenticate(&sim, &headers, &account)?)?;
    let sid = json_file(&file)?;
    let t = sim
        .world()
        .transcriptions
        .get(sid)
        .filter(|t| t.account_sid == account)
        .cloned()
        .ok_or_else(|| {
            SimError::not_found(&format!(
                "/2010-04-01/Accounts/{account}/Transcriptions/{sid}.json"
            ))
        })?;
    Ok(Json(to_value(transcription_view(&t))))
}
