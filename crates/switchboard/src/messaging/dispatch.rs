//! The dispatcher: takes due messages (the rows are the queue), paces each sender, records
//! `submitting` before calling Twilio, then the SID. Retries 429/5xx/connection failures with
//! backoff and jitter; keeps Twilio's 4xx codes as final failures. A message left `submitting`
//! (a crash or a timeout around the call) is reconciled against Twilio's message list before
//! anything is sent again, so nothing is sent twice and nothing is lost.

use super::store::{self, Stored, Tx};
use crate::db::{now_ms, DbResult};
use crate::App;
use twilio::rest::{CreateMessage, ListMessages};

/// What one round of work did: how many items moved, and when something not yet due will be.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub moved: usize,
    pub wake_at: Option<i64>,
}

/// Twilio calls in flight at once per process.
const MAX_IN_FLIGHT: usize = 16;
/// How far ahead a sender's slots may be booked: messages whose slot starts within this wait
/// for it in flight, so a fast sender is not held to one message per round trip.
const SLOT_HORIZON_MS: i64 = 1000;

/// Sends what is due: database steps one at a time, Twilio calls side by side.
pub async fn work(app: &App) -> DbResult<Round> {
    let mut round = Round {
        moved: reconcile_stale(app).await? + poll_statuses(app).await?,
        wake_at: None,
    };
    let now = now_ms();
    // Senders found busy in this round: their other messages wait for the next one.
    let mut busy = std::collections::HashSet::new();
    let mut calls = tokio::task::JoinSet::new();
    for m in store::due(app.db(), now, 64).await? {
        if calls.len() >= MAX_IN_FLIGHT {
            break;
        }
        if m.view.number_id.as_ref().is_some_and(|n| busy.contains(n)) {
            continue;
        }
        match prepare(app, m, &mut busy).await? {
            Prepared::Send(m, client, start_at) => {
                let app = app.clone();
                calls.spawn(async move {
                    let wait = start_at - now_ms();
                    if wait > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
                    }
                    send(&app, *m, client).await
                });
            }
            Prepared::Done => round.moved += 1,
            Prepared::Later(at) => round.wake_at = Some(round.wake_at.map_or(at, |w| w.min(at))),
            Prepared::Skip => {}
        }
    }
    while let Some(r) = calls.join_next().await {
        match r {
            Ok(r) => r?,
            Err(e) => tracing::error!(error = %e, "a dispatch task failed"),
        }
        round.moved += 1;
    }
    Ok(round)
}

enum Prepared {
    /// Claimed and paced: call Twilio when the slot starts.
    Send(Box<Stored>, twilio::Client, i64),
    /// Finished without a call (failed before sending).
    Done,
    /// The sender is busy until then.
    Later(i64),
    /// Another worker has it.
    Skip,
}

/// Claims a due message and takes its sender's send slot.
async fn prepare(
    app: &App,
    m: Stored,
    busy: &mut std::collections::HashSet<String>,
) -> DbResult<Prepared> {
    let now = now_ms();
    // Pacing: the sender's next slot must be free; its segments then hold it for their time.
    let mut slot = None;
    if let Some(number_id) = &m.view.number_id {
        let number = crate::tenants::store::get_number(app.db(), &m.tenant_id, number_id).await?;
        let sps = number
            .as_ref()
            .map_or(app.config().default_segments_per_second, |n| {
                n.segments_per_second
            });
        let free_at = store::slot_free_at(app.db(), number_id).await?;
        if free_at > now + SLOT_HORIZON_MS {
            busy.insert(number_id.clone());
            return Ok(Prepared::Later(free_at - SLOT_HORIZON_MS));
        }
        slot = Some((
            number_id.clone(),
            ((m.view.segments.max(1) as f64) * 1000.0 / sps.max(0.001)).ceil() as i64,
        ));
    }
    if !store::claim(
        app.db(),
        &m.view.id,
        now,
        now + app.config().submit_lease().as_millis() as i64,
    )
    .await?
    {
        return Ok(Prepared::Skip);
    }
    if m.valid_until.is_some_and(|v| v < now) {
        fail(
            app,
            &m,
            "validity_expired",
            "the validity period ended before the message could be sent",
        )
        .await?;
        return Ok(Prepared::Done);
    }
    let mut start_at = now;
    if let Some((number_id, cost_ms)) = slot {
        match store::reserve_slot(app.db(), &number_id, now, cost_ms, SLOT_HORIZON_MS).await? {
            Ok(start) => start_at = start,
            Err(free_at) => {
                // Other replicas booked the sender's slots between our look and our claim.
                busy.insert(number_id);
                let due = free_at - SLOT_HORIZON_MS;
                store::requeue(app.db(), &m.view.id, due, true, None).await?;
                return Ok(Prepared::Later(due));
            }
        }
    }
    match app.twilio(&m.tenant_id).await {
        Ok(client) => Ok(Prepared::Send(Box::new(m), client, start_at)),
        Err(_) => {
            fail(
                app,
                &m,
                "twilio_not_configured",
                "the tenant has no Twilio credentials",
            )
            .await?;
            Ok(Prepared::Done)
        }
    }
}

/// Calls Twilio for a claimed message and records the outcome.
async fn send(app: &App, m: Stored, client: twilio::Client) -> DbResult<()> {
    let cfg = &app.config().workers;
    let id = m.view.id.clone();
    let req = CreateMessage {
        to: m.view.to.clone(),
        from: Some(m.view.from.clone()),
        body: (!m.view.body.is_empty()).then(|| m.view.body.clone()),
        media_url: m.view.media_urls.clone(),
        status_callback: Some(format!(
            "{}/twilio/messaging/status?mid={}",
            app.config().public_url,
            id
        )),
        ..Default::default()
    };
    match client.create_message(&req).await {
        Ok(sent) => {
            store::submitted(
                app.db(),
                &id,
                &sent.sid,
                sent.status.as_str(),
                first_poll(app),
            )
            .await?;
        }
        Err(e) if e.outcome_unknown() => {
            // Twilio may have the message: leave it `submitting` with an ended lease, so the
            // reconciler looks for it before anything is sent again.
            tracing::warn!(message_id = %id, error = %e, "no answer from Twilio; will reconcile");
            expire_lease(app, &id).await?;
        }
        Err(e) if e.is_retryable() => {
            let attempts = m.view.attempts + 1;
            if attempts >= cfg.max_attempts {
                fail(
                    app,
                    &m,
                    &code_of(&e),
                    &format!("gave up after {attempts} attempts: {e}"),
                )
                .await?;
            } else {
                let delay = crate::workers::backoff(cfg.backoff_base, attempts)
                    .max(e.retry_after().unwrap_or_default());
                tracing::info!(message_id = %id, error = %e, ?delay, "Twilio refused for now; retrying");
                let code = code_of(&e);
                store::requeue(
                    app.db(),
                    &id,
                    now_ms() + delay.as_millis() as i64,
                    false,
                    Some((&code, &e.to_string())),
                )
                .await?;
            }
        }
        Err(e) => {
            let code = code_of(&e);
            let message = match &e {
                twilio::Error::Api(a) => a.message.clone(),
                other => other.to_string(),
            };
            let mut tx = app.db().begin().await?;
            if e.code() == Some(21610) {
                // Twilio knows of a STOP we did not see: record it so later sends fail fast.
                store::set_opt_out(
                    &mut tx,
                    &m.tenant_id,
                    &m.view.from,
                    &m.view.to,
                    true,
                    "STOP",
                    "twilio_21610",
                )
                .await?;
            }
            fail_in(&mut tx, &m, &code, &message).await?;
            tx.commit().await?;
        }
    }
    Ok(())
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

async fn expire_lease(app: &App, id: &str) -> DbResult<()> {
    sqlx::query("UPDATE messages SET lease_until = $1 WHERE id = $2 AND status = 'submitting'")
        .bind(now_ms() - 1)
        .bind(id)
        .execute(app.db().pool())
        .await?;
    Ok(())
}

async fn fail(app: &App, m: &Stored, code: &str, message: &str) -> DbResult<()> {
    let mut tx = app.db().begin().await?;
    fail_in(&mut tx, m, code, message).await?;
    tx.commit().await?;
    Ok(())
}

async fn fail_in(tx: &mut Tx, m: &Stored, code: &str, message: &str) -> DbResult<()> {
    store::advance_status(tx, &m.view.id, "failed", Some((code, message)), None, None).await?;
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

/// Finds what Twilio did with messages whose submission was interrupted: if Twilio has a
/// matching message (same To, From and body, created after we began submitting, and not
/// already linked to another of ours), link it; otherwise put the message back in the queue.
async fn reconcile_stale(app: &App) -> DbResult<usize> {
    let now = now_ms();
    let mut moved = 0;
    for m in store::stale_submitting(app.db(), now, 16).await? {
        if !store::reclaim(
            app.db(),
            &m.view.id,
            now,
            now + app.config().submit_lease().as_millis() as i64,
        )
        .await?
        {
            continue;
        }
        let client = match app.twilio(&m.tenant_id).await {
            Ok(c) => c,
            Err(_) => continue,
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
                continue; // the lease ends again and another try comes
            }
        };
        let mut linked = false;
        for tm in found {
            let created = tm.date_created.map(|d| d.timestamp_millis()).unwrap_or(0);
            let same_body = tm.body.as_deref().unwrap_or_default() == m.view.body;
            if created >= since && same_body && !store::sid_taken(app.db(), &tm.sid).await? {
                tracing::info!(message_id = %m.view.id, sid = %tm.sid, "reconciled: Twilio had the message");
                store::submitted(
                    app.db(),
                    &m.view.id,
                    &tm.sid,
                    tm.status.as_str(),
                    first_poll(app),
                )
                .await?;
                linked = true;
                break;
            }
        }
        if !linked {
            tracing::info!(message_id = %m.view.id, "reconciled: Twilio never got the message; sending again");
            store::requeue(app.db(), &m.view.id, now_ms(), false, None).await?;
        }
        moved += 1;
    }
    Ok(moved)
}

fn first_poll(app: &App) -> i64 {
    now_ms() + app.config().workers.status_poll_after.as_millis() as i64
}

/// Messages are polled for their status for this long after creation, then left as they are.
const POLL_FOR_MS: i64 = 72 * 3600 * 1000;

/// Asks Twilio for the status of sent messages whose callbacks are overdue, and applies what it
/// says under the same never-backwards rule as callbacks. Polls thin out as messages age.
async fn poll_statuses(app: &App) -> DbResult<usize> {
    let now = now_ms();
    let base = app.config().workers.status_poll_after.as_millis() as i64;
    let mut moved = 0;
    for m in store::due_status_polls(app.db(), now, 16).await? {
        let age = now - m.created_ms;
        let seen = m.next_attempt_at.unwrap_or(now);
        let next = (age < POLL_FOR_MS).then(|| now + base.max(age / 4).min(6 * 3600 * 1000));
        if !store::reschedule_poll(app.db(), &m.view.id, seen, next).await? {
            continue; // another worker polls it
        }
        let (Some(sid), Ok(client)) =
            (m.view.twilio_sid.as_deref(), app.twilio(&m.tenant_id).await)
        else {
            continue;
        };
        let fetched = match client.fetch_message(sid).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(message_id = %m.view.id, error = %e, "status poll failed; will try again");
                continue;
            }
        };
        let code = fetched.error_code.map(|c| c.to_string());
        let text = fetched
            .error_message
            .clone()
            .or_else(|| code.as_ref().map(|c| format!("Twilio error {c}")));
        let mut tx = app.db().begin().await?;
        let applied = store::advance_status(
            &mut tx,
            &m.view.id,
            fetched.status.as_str(),
            code.as_deref().zip(text.as_deref()),
            None,
            next,
        )
        .await?;
        let payload = serde_json::to_value(&fetched).unwrap_or_default();
        store::insert_event(
            &mut tx,
            &m.tenant_id,
            &m.view.id,
            "status_poll",
            Some(fetched.status.as_str()),
            applied,
            &payload,
        )
        .await?;
        tx.commit().await?;
        moved += 1;
    }
    Ok(moved)
}
