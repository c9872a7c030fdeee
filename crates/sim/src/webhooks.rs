//! Webhooks the twin sends to applications, signed as Twilio signs them.

use crate::state::{new_sid, SentWebhook};
use crate::Sim;
use chrono::Utc;
use std::collections::BTreeMap;
use twilio::signature;
use twilio::Form;

/// What the application answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends one webhook. `url` is used exactly as configured for the signature (minus any
/// `#fragment`, which is never sent over HTTP). GET requests carry the parameters in the query
/// and sign the resulting URL alone. Connection failures are tried once more, as Twilio does.
pub async fn send(
    sim: &Sim,
    kind: &'static str,
    url: &str,
    method: &str,
    params: &Form,
    auth_token: &str,
) -> Result<Answer, String> {
    let url = url.split('#').next().unwrap_or(url).to_string();
    let get = method.eq_ignore_ascii_case("GET");
    let (target, signature) = if get {
        let sep = if url.contains('?') { '&' } else { '?' };
        let full = if params.pairs().is_empty() {
            url.clone()
        } else {
            format!("{url}{sep}{}", params.encode())
        };
        let empty: &[(&str, &str)] = &[];
        let sig = signature::sign(auth_token, &full, empty);
        (full, sig)
    } else {
        let sig = signature::sign(auth_token, &url, params.pairs());
        (url.clone(), sig)
    };
    let idempotency = new_sid("ID");
    let mut answer = None;
    let mut last_error = String::new();
    for attempt in 0..2 {
        let rb = if get {
            sim.http().get(&target)
        } else {
            sim.http()
                .post(&target)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(params.encode())
        };
        let rb = rb
            .header(signature::HEADER, &signature)
            .header("I-Twilio-Idempotency-Token", &idempotency)
            .header("Accept", "*/*");
        match rb.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                answer = Some(Answer { status, body });
                break;
            }
            Err(e) => {
                last_error = e.to_string();
                if !(e.is_connect() && attempt == 0) {
                    break;
                }
            }
        }
    }
    let result = answer.ok_or(last_error);
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in params.pairs() {
        grouped.entry(k.clone()).or_default().push(v.clone());
    }
    sim.world().webhooks.push(SentWebhook {
        kind,
        url: target,
        method: if get { "GET".into() } else { "POST".into() },
        params: grouped,
        signature,
        status: result.as_ref().ok().map(|a| a.status),
        error: result.as_ref().err().cloned(),
        at: Utc::now(),
    });
    result
}
