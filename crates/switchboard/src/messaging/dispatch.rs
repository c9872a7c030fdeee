//! Sending messages, as jobs of the one queue (`queue`): each job paces its sender, marks itself
//! `submitting` before calling Twilio, then records the SID. Twilio's 429/5xx and network
//! failures before sending are retried with backoff; its 4xx codes are final failures with the
//! code kept. A job whose holder may have called Twilio (a crash, or no answer) is reconciled
//! against Twilio's message list before anything is sent again: nothing is sent twice, nothing
//! is lost. Status polls, for messages whose callbacks never came, are jobs too.

use super::store::{self, Stored, Tx};
use crate::db::{now_ms, DbResult};
use crate::queue::{self, Job, Outcome, Worker};
use crate::App;
use std::time::Duration;
use twilio::rest::{CreateMessage, ListMessages};

/// How far ahead a sender's slots may be booked: a message whose slot starts within this waits
/// for it while holding its job, so a fast sender is not held to one message per round.
const SLOT_HORIZON_MS: i64 = 1000;

/// Sending messages.
pub const WORKER: Worker = Worker {
    kind: "message",
    lease: |c| c.submit_lease() + Duration::from_millis(SLOT_HORIZON_MS as u64),
    max_attempts: |c| c.workers.max_attempts,
    batch: 64,
    // Twilio calls in flight at once: each waits on Twilio's answer, not on us.
    parallel: 64,
    run: |app, job| Box::pin(async move { send(&app, &job).await }),
    give_up: |app, job, error| Box::pin(async move { give_up(&app, &job, &error).await }),
};

/// Asking Twilio for the status of sent messages whose callbacks are overdue.
pub const STATUS_POLLS: Worker = Worker {
    kind: "status_poll",
    lease: |c| c.twilio_timeout * 2,
    max_attempts: |_| i64::MAX,
    batch: 32,
    parallel: 8,
    run: |app, job| Box::pin(async move { poll(&app, &job).await }),
    give_up: |_, _, _| Box::pin(async { Ok(()) }),
};

/// The message of a job, if it is still one of ours to send.
async fn sendable(app: &App, job: &Job) -> DbResult<Option<Stored>> {
    Ok(store::get_any(app.db(), &job.subject_id)
        .await?
        .filter(|m| m.tenant_id == job.tenant_id)
        .filter(|m| matches!(m.view.status.as_str(), "accepted" | "submitting")))
}

async fn send(app: &App, job: &Job) -> DbResult<Outcome> {
    let Some(m) = store::get_any(app.db(), &job.subject_id)
        .await?
        .filter(|m| m.tenant_id == job.tenant_id)
    else {
        return Ok(Outcome::Done);
    };
    // A status callback linked Twilio's SID while we were waiting for Twilio's answer (and
    // then we stopped): Twilio has it. Record it as submitted, so its status is polled.
    if let Some(sid) = m.view.twilio_sid.clone() {
        let status = m.view.status;
        submitted(app, &m, &sid, status.as_str()).await?;
        return Ok(Outcome::Done);
    }
    if !matches!(m.view.status.as_str(), "accepted" | "submitting") {
        return Ok(Outcome::Done);
    }
    if job.submitting {
        return reconcile(app, &m).await;
    }
    let now = now_ms();
    if m.valid_until.is_some_and(|v| v < now) {
        let error = "the validity period ended before the message could be sent";
        fail(app, &m, "validity_expired", error).await?;
        return Ok(Outcome::Failed {
            error: error.into(),
        });
    }
    // Pacing: the sender's next slot must start within the horizon; the message's segments
    // then hold it for their time at the number's rate. Shared by every replica.
    let mut start_at = now;
    if let Some(number_id) = &m.view.number_id {
        let sps = crate::numbers::store::get_number(app.db(), &m.tenant_id, number_id)
            .await?
            .map_or(app.config().default_segments_per_second, |n| {
                n.segments_per_second
            });
        let cost_ms = ((m.view.segments.max(1) as f64) * 1000.0 / sps.max(0.001)).ceil() as i64;
        match crate::numbers::store::reserve_slot(
            app.db(),
            number_id,
            now,
            cost_ms,
            SLOT_HORIZON_MS,
        )
        .await?
        {
            Ok(start) => start_at = start,
            Err(free_at) => {
                return Ok(Outcome::Later {
                    at: free_at - SLOT_HORIZON_MS,
                })
            }
        }
    }
    let client = match app.twilio(&m.tenant_id).await {
        Ok(c) => c,
        Err(_) => {
            let error = "the tenant has no Twilio credentials";
            fail(app, &m, "twilio_not_configured", error).await?;
            return Ok(Outcome::Failed {
                error: error.into(),
            });
        }
    };
    let Some(body) = text_of(app, &m).await? else {
        let error = "the verification ended before its code was sent";
        fail(app, &m, "verification_ended", error).await?;
        return Ok(Outcome::Failed {
            error: error.into(),
        });
    };
    if !mark_submitting(app, job, &m).await? {
        return Ok(Outcome::Done); // the claim was lost: another holder has it
    }
    let wait = start_at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let req = CreateMessage {
        to: m.view.to.clone(),
        from: Some(m.view.from.clone()),
        body: (!body.is_empty()).then_some(body),
        media_url: m.view.media_urls.clone(),
        status_callback: Some(format!(
            "{}/twilio/messaging/status?mid={}",
            app.config().public_url,
            m.view.id
        )),
        ..Default::default()
    };
    match client.create_message(&req).await {
        Ok(sent) => {
            submitted(app, &m, &sent.sid, sent.status.as_str()).await?;
            Ok(Outcome::Done)
        }
        Err(e) if e.outcome_unknown() => {
            // Twilio may have the message: whoever takes the job next looks for it first.
            tracing::warn!(message_id = %m.view.id, error = %e, "no answer from Twilio; will reconcile");
            Ok(Outcome::Unknown)
        }
        Err(e) if e.is_retryable() => {
            tracing::info!(message_id = %m.view.id, error = %e, "Twilio refused for now; retrying");
            note_error(app, &m, &code_of(&e), &e.to_string()).await?;
            Ok(Outcome::Retry {
                error: e.to_string(),
                after: e.retry_after(),
            })
        }
        Err(e) => {
            let code = code_of(&e);
            let message = match &e {
                twilio::Error::Api(a) => a.message.clone(),
                other => other.to_string(),
            };
            let opted_out = e.code() == Some(21610);
            let (m2, code2, message2) = (m.clone(), code.clone(), message.clone());
            app.db()
                .write(move |tx| {
                    let (m, code, message) = (m2.clone(), code2.clone(), message2.clone());
                    Box::pin(async move {
                        if opted_out {
                            // Twilio knows of a STOP we did not see: record it so later sends
                            // fail fast.
                            store::set_opt_out(
                                tx,
                                &m.tenant_id,
                                &m.view.from,
                                &m.view.to,
                                true,
                                "STOP",
                                "twilio_21610",
                            )
                            .await?;
                        }
                        fail_in(tx, &m, &code, &message).await
                    })
                })
                .await?;
            Ok(Outcome::Failed { error: message })
        }
    }
}

/// Marks the job and the message `submitting` together, before the call to Twilio.
async fn mark_submitting(app: &App, job: &Job, m: &Stored) -> DbResult<bool> {
    let (job, id) = (job.clone(), m.view.id.clone());
    app.db()
        .write(move |tx| {
            let (job, id) = (job.clone(), id.clone());
            Box::pin(async move {
                if !queue::mark_submitting(tx, &job).await? {
                    return Ok(false);
                }
                store::mark_submitting(tx, &id, job.attempts, now_ms()).await?;
                Ok(true)
            })
        })
        .await
}

/// What the message says when it is handed to Twilio: its body, or for a verification's text
/// the body with the code put in (None once the verification ended).
async fn text_of(app: &App, m: &Stored) -> DbResult<Option<String>> {
    match &m.verification_id {
        None => Ok(Some(m.view.body.clone())),
        Some(v) => crate::verify::code_text(app, &m.tenant_id, v, "sms").await,
    }
}

/// Twilio has the message: its SID, and its status polls queued.
async fn submitted(app: &App, m: &Stored, sid: &str, status: &str) -> DbResult<()> {
    let poll_at = now_ms() + app.config().workers.status_poll_after.as_millis() as i64;
    let (m, sid, status) = (m.clone(), sid.to_string(), status.to_string());
    app.db()
        .write(move |tx| {
            let (m, sid, status) = (m.clone(), sid.clone(), status.clone());
            Box::pin(async move { store::submitted(tx, &m, &sid, &status, poll_at).await })
        })
        .await
}

/// Keeps Twilio's latest refusal on the message while it is retried (its status stays).
async fn note_error(app: &App, m: &Stored, code: &str, message: &str) -> DbResult<()> {
    store::note_error(app.db(), &m.view.id, code, message, now_ms()).await
}

/// The attempts are spent: the message fails with the last refusal's code.
async fn give_up(app: &App, job: &Job, error: &str) -> DbResult<()> {
    let Some(m) = sendable(app, job).await? else {
        return Ok(());
    };
    let code = m
        .view
        .error_code
        .clone()
        .unwrap_or_else(|| "gave_up".into());
    fail(app, &m, &code, error).await
}

fn code_of(e: &twilio::Error) -> String {
    match e.code() {
        Some(c) => c.to_string(),
        None => match e.status() {
            Some(s) => format!("http_{s}"),
            None => "transport".into(),
        },
    }
}

async fn fail(app: &App, m: &Stored, code: &str, message: &str) -> DbResult<()> {
    let (m, code, message) = (m.clone(), code.to_string(), message.to_string());
    app.db()
        .write(move |tx| {
            let (m, code, message) = (m.clone(), code.clone(), message.clone());
            Box::pin(async move { fail_in(tx, &m, &code, &message).await })
        })
        .await
}

async fn fail_in(tx: &mut Tx, m: &Stored, code: &str, message: &str) -> DbResult<()> {
    store::advance_status(tx, &m.view.id, "failed", Some((code, message)), None).await?;
    let payload = serde_json::json!({ "error_code": code, "error_message": message });
    store::insert_event(
        tx,
        &m.tenant_id,
        &m.view.id,
        "dispatch_failed",
        Some("failed"),
        true,
        &payload,
    )
    .await
}

/// Finds what Twilio did with a message whose submission was interrupted: if Twilio has a
/// matching message (same To, From and body, created after we began submitting, and not
/// already linked to another of ours), link it; otherwise send it again.
async fn reconcile(app: &App, m: &Stored) -> DbResult<Outcome> {
    let client = match app.twilio(&m.tenant_id).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Retry {
                error: e.message,
                after: None,
            })
        }
    };
    let filter = ListMessages {
        to: Some(m.view.to.clone()),
        from: Some(m.view.from.clone()),
        page_size: Some(100),
        ..Default::default()
    };
    let since = m.submitted_at.unwrap_or(m.created_ms) - 120_000;
    let found = match client.list_all_messages(&filter, 500).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(message_id = %m.view.id, error = %e, "cannot reconcile yet");
            return Ok(Outcome::Unknown);
        }
    };
    // A verification's text went out with its code, which the stored body masks.
    let body = text_of(app, m)
        .await?
        .unwrap_or_else(|| m.view.body.clone());
    for tm in found {
        let created = tm.date_created.map(|d| d.timestamp_millis()).unwrap_or(0);
        let same_body = tm.body.as_deref().unwrap_or_default() == body;
        if created >= since
            && same_body
            && !store::sid_taken(app.db(), &m.tenant_id, &tm.sid).await?
        {
            tracing::info!(message_id = %m.view.id, sid = %tm.sid, "reconciled: Twilio had the message");
            submitted(app, m, &tm.sid, "queued").await?;
            // Twilio's own record, error code included, as if its callback had come.
            apply_twilio(app, m, &tm, "reconciled").await?;
            return Ok(Outcome::Done);
        }
    }
    tracing::info!(message_id = %m.view.id, "reconciled: Twilio never got the message; sending again");
    Ok(Outcome::Later { at: now_ms() })
}

/// Applies what Twilio says of a message (its status, error code and times) under the same
/// never-backwards rule as callbacks, and keeps it as an event of `kind`.
async fn apply_twilio(
    app: &App,
    m: &Stored,
    fetched: &twilio::rest::Message,
    kind: &'static str,
) -> DbResult<()> {
    let status = fetched.status.as_str().to_string();
    let code = fetched.error_code.map(|c| c.to_string());
    let text = fetched
        .error_message
        .clone()
        .or_else(|| code.as_ref().map(|c| format!("Twilio error {c}")));
    let payload = serde_json::to_value(fetched).unwrap_or_default();
    let (id, tenant_id) = (m.view.id.clone(), m.tenant_id.clone());
    let args = std::sync::Arc::new((id, tenant_id, status, code, text, payload));
    app.db()
        .write(move |tx| {
            let args = args.clone();
            Box::pin(async move {
                let (id, tenant_id, status, code, text, payload) = &*args;
                let error = code.as_deref().zip(text.as_deref());
                let applied = store::advance_status(tx, id, status, error, None).await?;
                store::insert_event(tx, tenant_id, id, kind, Some(status), applied, payload)
                    .await?;
                let last = super::is_terminal(status) || status == "delivered";
                if applied && last && kind != STATUS_POLLS.kind {
                    crate::queue::cancel(tx, STATUS_POLLS.kind, id).await?;
                }
                Ok(())
            })
        })
        .await
}

/// Messages are polled for their status for this long after creation, then left as they are.
const POLL_FOR_MS: i64 = 72 * 3600 * 1000;

/// Asks Twilio for the status of a sent message whose callbacks are overdue, and applies what it
/// says under the same never-backwards rule as callbacks. Polls thin out as messages age.
async fn poll(app: &App, job: &Job) -> DbResult<Outcome> {
    let Some(m) = store::get_any(app.db(), &job.subject_id)
        .await?
        .filter(|m| m.tenant_id == job.tenant_id)
    else {
        return Ok(Outcome::Done);
    };
    let waiting = matches!(m.view.status.as_str(), "queued" | "sending" | "sent");
    let now = now_ms();
    let age = now - m.created_ms;
    let (Some(sid), true, true) = (m.view.twilio_sid.as_deref(), waiting, age < POLL_FOR_MS) else {
        return Ok(Outcome::Done);
    };
    let base = app.config().workers.status_poll_after.as_millis() as i64;
    let next = Outcome::Later {
        at: now + base.max(age / 4).min(6 * 3600 * 1000),
    };
    let client = match app.twilio(&m.tenant_id).await {
        Ok(c) => c,
        Err(_) => return Ok(next),
    };
    let fetched = match client.fetch_message(sid).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(message_id = %m.view.id, error = %e, "status poll failed; will try again");
            return Ok(next);
        }
    };
    let status = fetched.status.as_str().to_string();
    apply_twilio(app, &m, &fetched, "status_poll").await?;
    Ok(
        if matches!(status.as_str(), "queued" | "sending" | "sent") {
            next
        } else {
            Outcome::Done
        },
    )
}
