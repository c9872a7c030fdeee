//! The life of an outbound message: `queued → sending → sent → delivered` (or `undelivered` /
//! `failed` with an error code), each step a signed status callback, and a delivered message
//! handed to the handset.

use crate::api::messages::price_for;
use crate::faults::{self, FaultKind};
use crate::state::Delivery;
use crate::{webhooks, Sim};
use chrono::Utc;
use std::time::Duration;
use twilio::types::MessageStatus;
use twilio::Form;

/// What the carrier will do with one message, decided when it leaves the queue.
struct Plan {
    carrier_error: Option<(i64, bool)>,
    duplicate: bool,
    reorder: bool,
    drop: bool,
}

fn error_message(code: i64) -> &'static str {
    match code {
        30003 => "Unreachable destination handset",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        _ => "Delivery failed",
    }
}

pub fn spawn_outbound(sim: Sim, sid: String) {
    tokio::spawn(async move { run(sim, sid).await });
}

async fn run(sim: Sim, sid: String) {
    let (plan, delays) = {
        let mut w = sim.world();
        let Some(m) = w.messages.get(&sid) else {
            return;
        };
        let numbers = [m.to.clone(), m.from.clone()];
        let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let carrier_error = faults::take(&mut w.faults, &numbers, |k| match k {
            FaultKind::CarrierError { code, failed } => Some((*code, *failed)),
            _ => None,
        });
        let mut has = |kind: FaultKind| {
            faults::take(&mut w.faults, &numbers, |k| (*k == kind).then_some(())).is_some()
        };
        let plan = Plan {
            carrier_error,
            duplicate: has(FaultKind::DuplicateCallbacks),
            reorder: has(FaultKind::ReorderCallbacks),
            drop: has(FaultKind::DropCallbacks),
        };
        (plan, w.delays)
    };
    let last = match plan.carrier_error {
        Some((_, true)) => MessageStatus::Failed,
        Some((_, false)) => MessageStatus::Undelivered,
        None => MessageStatus::Delivered,
    };
    let steps = [
        (MessageStatus::Sending, delays.sending_ms),
        (MessageStatus::Sent, delays.sent_ms),
        (last, delays.delivered_ms),
    ];
    let mut held = Vec::new();
    for (status, delay) in steps {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let Some(callback) = advance(&sim, &sid, &status, plan.carrier_error.map(|(c, _)| c))
        else {
            return;
        };
        if let Some(cb) = callback.filter(|_| !plan.drop) {
            if plan.reorder {
                held.push(cb);
            } else {
                send_status(&sim, &cb, plan.duplicate).await;
            }
        }
    }
    for cb in held.iter().rev() {
        send_status(&sim, cb, plan.duplicate).await;
    }
}

/// A status callback to send: URL, parameters and the token to sign with.
struct Callback {
    url: String,
    params: Form,
    token: String,
}

/// Moves the message to `status`. Returns None if the message is gone, Some(None) if it has no
/// StatusCallback.
fn advance(
    sim: &Sim,
    sid: &str,
    status: &MessageStatus,
    code: Option<i64>,
) -> Option<Option<Callback>> {
    let mut w = sim.world();
    let token = {
        let m = w.messages.get(sid)?;
        w.accounts.get(&m.account_sid)?.auth_token.clone()
    };
    let now = Utc::now();
    let m = w.messages.get_mut(sid)?;
    m.status = status.clone();
    m.updated = now;
    let failing = matches!(status, MessageStatus::Undelivered | MessageStatus::Failed);
    if *status == MessageStatus::Sent {
        m.sent = Some(now);
        m.price = Some(price_for(m.num_segments));
    }
    if failing {
        m.error_code = code;
        m.error_message = code.map(|c| error_message(c).to_string());
    }
    let mut params = Form::new();
    params
        .push("ApiVersion", twilio::rest::API_VERSION)
        .push("MessageStatus", status.as_str())
        .push("SmsSid", &m.sid)
        .push("SmsStatus", status.as_str())
        .push("To", &m.to)
        .push("From", &m.from)
        .push("MessageSid", &m.sid)
        .push("AccountSid", &m.account_sid);
    if let Some(ms) = &m.messaging_service_sid {
        params.push("MessagingServiceSid", ms);
    }
    if matches!(
        status,
        MessageStatus::Delivered | MessageStatus::Undelivered
    ) {
        params.push("RawDlrDoneDate", now.format("%y%m%d%H%M").to_string());
    }
    if failing {
        if let Some(c) = code {
            params.push("ErrorCode", c.to_string());
        }
    }
    let callback = m
        .status_callback
        .clone()
        .map(|url| Callback { url, params, token });
    if *status == MessageStatus::Delivered || failing {
        let delivery = Delivery {
            channel: "sms",
            sid: m.sid.clone(),
            account_sid: m.account_sid.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            body: m.body.clone(),
            media_urls: m.media_urls.clone(),
            status: status.as_str().to_string(),
            error_code: m.error_code,
            date: now,
        };
        // Only delivered messages reach the handset; failures are kept for the ledger too,
        // so a test can tell "not delivered" from "never sent".
        w.deliveries.push(delivery);
    }
    Some(callback)
}

async fn send_status(sim: &Sim, cb: &Callback, duplicate: bool) {
    let times = if duplicate { 2 } else { 1 };
    for _ in 0..times {
        let _ = webhooks::send(
            sim,
            "message-status",
            &cb.url,
            "POST",
            &cb.params,
            &cb.token,
        )
        .await;
    }
}
