//! `/IncomingPhoneNumbers`: the account's numbers and their webhook settings.

use super::{authenticate, json_file, live_only, FormBody, Paging};
use crate::error::{SimError, SimResult};
use crate::state::{new_sid, Number, World};
use crate::{phone, Sim};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde_json::Value;
use twilio::rest::{Capabilities, IncomingPhoneNumber, NumberSettings};
use twilio::Form;

pub(crate) fn view(n: &Number) -> IncomingPhoneNumber {
    IncomingPhoneNumber {
        sid: n.sid.clone(),
        account_sid: n.account_sid.clone(),
        phone_number: n.phone_number.clone(),
        friendly_name: Some(n.friendly_name.clone()),
        capabilities: Some(Capabilities {
            voice: true,
            sms: true,
            mms: true,
            fax: false,
        }),
        sms_url: Some(n.sms_url.clone().unwrap_or_default()),
        sms_method: Some(n.sms_method.clone()),
        sms_fallback_url: Some(n.sms_fallback_url.clone().unwrap_or_default()),
        sms_fallback_method: Some(n.sms_fallback_method.clone()),
        sms_application_sid: Some(String::new()),
        voice_url: Some(n.voice_url.clone().unwrap_or_default()),
        voice_method: Some(n.voice_method.clone()),
        voice_fallback_url: Some(n.voice_fallback_url.clone().unwrap_or_default()),
        voice_fallback_method: Some(n.voice_fallback_method.clone()),
        voice_application_sid: Some(String::new()),
        voice_caller_id_lookup: Some(n.voice_caller_id_lookup),
        status_callback: Some(n.status_callback.clone().unwrap_or_default()),
        status_callback_method: Some(n.status_callback_method.clone()),
        status: Some("in-use".into()),
        origin: Some("twilio".into()),
        beta: Some(false),
        api_version: Some(twilio::rest::API_VERSION.into()),
        date_created: Some(n.created),
        date_updated: Some(n.updated),
        uri: Some(format!(
            "/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{}.json",
            n.account_sid, n.sid
        )),
    }
}

fn value(n: &Number) -> Value {
    serde_json::to_value(view(n)).unwrap_or(Value::Null)
}

/// Empty strings clear a URL, as in Twilio's console.
fn url_setting(current: &mut Option<String>, new: &Option<String>, name: &str) -> SimResult<()> {
    if let Some(v) = new {
        if v.is_empty() {
            *current = None;
        } else if super::messages::is_http_url(v) {
            *current = Some(v.clone());
        } else {
            return Err(SimError::bad_request(
                21502,
                format!("{name} {v:?} is not a valid URL"),
            ));
        }
    }
    Ok(())
}

fn apply(n: &mut Number, s: &NumberSettings) -> SimResult<()> {
    url_setting(&mut n.sms_url, &s.sms_url, "SmsUrl")?;
    url_setting(
        &mut n.sms_fallback_url,
        &s.sms_fallback_url,
        "SmsFallbackUrl",
    )?;
    url_setting(&mut n.voice_url, &s.voice_url, "VoiceUrl")?;
    url_setting(
        &mut n.voice_fallback_url,
        &s.voice_fallback_url,
        "VoiceFallbackUrl",
    )?;
    url_setting(&mut n.status_callback, &s.status_callback, "StatusCallback")?;
    let method = |m: &Option<String>, into: &mut String| {
        if let Some(m) = m {
            *into = m.to_ascii_uppercase();
        }
    };
    method(&s.sms_method, &mut n.sms_method);
    method(&s.sms_fallback_method, &mut n.sms_fallback_method);
    method(&s.voice_method, &mut n.voice_method);
    method(&s.voice_fallback_method, &mut n.voice_fallback_method);
    method(&s.status_callback_method, &mut n.status_callback_method);
    if let Some(f) = &s.friendly_name {
        n.friendly_name = f.clone();
    }
    if let Some(l) = s.voice_caller_id_lookup {
        n.voice_caller_id_lookup = l;
    }
    n.updated = Utc::now();
    Ok(())
}

/// A new number record, checked, not yet owned by anything.
fn build(account_sid: &str, phone: &str, s: &NumberSettings) -> SimResult<Number> {
    if phone == "+15005550000" {
        return Err(SimError::bad_request(
            21422,
            format!("Phone number {phone} is not available."),
        ));
    }
    if !phone::is_valid(phone) || phone == "+15005550001" {
        return Err(SimError::bad_request(
            21421,
            format!("PhoneNumber {phone:?} is invalid."),
        ));
    }
    let now = Utc::now();
    let mut n = Number {
        sid: new_sid("PN"),
        account_sid: account_sid.to_string(),
        phone_number: phone.to_string(),
        friendly_name: phone.to_string(),
        sms_url: None,
        sms_method: "POST".into(),
        sms_fallback_url: None,
        sms_fallback_method: "POST".into(),
        voice_url: None,
        voice_method: "POST".into(),
        voice_fallback_url: None,
        voice_fallback_method: "POST".into(),
        voice_caller_id_lookup: false,
        status_callback: None,
        status_callback_method: "POST".into(),
        created: now,
        updated: now,
    };
    apply(&mut n, s)?;
    Ok(n)
}

/// Gives `account_sid` the number `phone`.
pub(crate) fn create(
    w: &mut World,
    account_sid: &str,
    phone: &str,
    s: &NumberSettings,
) -> SimResult<Number> {
    if !w.accounts.contains_key(account_sid) {
        return Err(SimError::not_found(&format!(
            "/2010-04-01/Accounts/{account_sid}.json"
        )));
    }
    let n = build(account_sid, phone, s)?;
    if w.number_by_phone(phone).is_some() {
        return Err(SimError::bad_request(
            21422,
            format!("Phone number {phone} is not available."),
        ));
    }
    w.numbers.insert(n.sid.clone(), n.clone());
    Ok(n)
}

pub async fn create_handler(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<(StatusCode, Json<Value>)> {
    let acct = authenticate(&sim, &headers, &account)?;
    let settings = NumberSettings::from_form(&form)
        .map_err(|e| SimError::bad_request(20001, e.to_string()))?;
    let phone = match (form.non_empty("PhoneNumber"), form.non_empty("AreaCode")) {
        (Some(p), _) => p.to_string(),
        (None, Some("533")) => {
            return Err(SimError::bad_request(
                21452,
                "No phone numbers found in area code 533",
            ));
        }
        (None, Some(area)) if area.len() == 3 && area.bytes().all(|b| b.is_ascii_digit()) => {
            // Pick the first free number in the 555-01xx range of the area code.
            let w = sim.world();
            (100..200)
                .map(|i| format!("+1{area}5550{i:03}"))
                .find(|p| w.number_by_phone(p).is_none() && phone::is_valid(p))
                .ok_or_else(|| {
                    SimError::bad_request(
                        21452,
                        format!("No phone numbers found in area code {area}"),
                    )
                })?
        }
        _ => {
            return Err(SimError::bad_request(
                21421,
                "PhoneNumber or AreaCode is required.",
            ))
        }
    };
    // Test credentials "buy" without owning anything.
    let n = if acct.test {
        build(&acct.sid, &phone, &settings)?
    } else {
        create(&mut sim.world(), &acct.sid, &phone, &settings)?
    };
    Ok((StatusCode::CREATED, Json(value(&n))))
}

fn owned<'a>(w: &'a mut World, account: &str, sid: &str) -> SimResult<&'a mut Number> {
    w.numbers
        .get_mut(sid)
        .filter(|n| n.account_sid == account)
        .ok_or_else(|| {
            SimError::not_found(&format!(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json"
            ))
        })
}

pub async fn fetch(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let mut w = sim.world();
    Ok(Json(value(owned(&mut w, &account, sid)?)))
}

pub async fn update(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let settings = NumberSettings::from_form(&form)
        .map_err(|e| SimError::bad_request(20001, e.to_string()))?;
    let mut w = sim.world();
    let n = owned(&mut w, &account, sid)?;
    // Validate on a copy so a bad field changes nothing.
    let mut updated = n.clone();
    apply(&mut updated, &settings)?;
    *n = updated;
    Ok(Json(value(n)))
}

pub async fn delete(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> SimResult<StatusCode> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let sid = json_file(&file)?;
    let mut w = sim.world();
    owned(&mut w, &account, sid)?;
    w.numbers.remove(sid);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let acct = authenticate(&sim, &headers, &account)?;
    live_only(&acct)?;
    let q = Form::parse(query.unwrap_or_default().as_bytes());
    let paging = Paging::from_query(&q)?;
    let mut filters = Form::new();
    for k in ["PhoneNumber", "FriendlyName"] {
        if let Some(v) = q.non_empty(k) {
            filters.push(k, v);
        }
    }
    let mut items: Vec<Number> = sim
        .world()
        .numbers
        .values()
        .filter(|n| n.account_sid == account)
        // Twilio matches PhoneNumber as a pattern of digits: a part of the number is enough.
        .filter(|n| {
            q.non_empty("PhoneNumber")
                .is_none_or(|p| n.phone_number.contains(p.trim_start_matches('+')))
        })
        .filter(|n| {
            q.non_empty("FriendlyName")
                .is_none_or(|f| n.friendly_name == f)
        })
        .cloned()
        .collect();
    items.sort_by(|a, b| a.created.cmp(&b.created).then(a.sid.cmp(&b.sid)));
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json");
    paging.respond(
        &path,
        "incoming_phone_numbers",
        items,
        |n| n.sid.clone(),
        value,
        &filters,
    )
}
