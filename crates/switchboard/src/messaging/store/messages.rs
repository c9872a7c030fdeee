//! Messages: rows, events, statuses that only move forward, history, and sending.

use super::Tx;
use crate::db::{now_ms, opt_str, placeholders, Db, DbResult, Row};
use crate::ids::new_id;
use crate::messaging::{
    is_terminal, iso, status_rank, Direction, Event, Message, MessageStatus, TERMINAL,
};
use sqlx::any::AnyRow;
const MSG_COLS: &str = "id, tenant_id, direction, number_id, conversation_id, contact_id, from_number, to_number, body, \
    media_urls, status, twilio_sid, encoding, segments, price_estimate, error_code, error_message, attempts, \
    next_attempt_at, valid_until, submitted_at, created_at, updated_at, sent_at, delivered_at, verification_id";

/// A message row with the fields the workers need beyond the API view.
#[derive(Debug, Clone)]
pub struct Stored {
    pub tenant_id: String,
    pub view: Message,
    pub next_attempt_at: Option<i64>,
    pub valid_until: Option<i64>,
    pub submitted_at: Option<i64>,
    pub created_ms: i64,
    /// The verification whose code this text carries (its body holds the code masked).
    pub verification_id: Option<String>,
}

fn row(r: &AnyRow) -> Stored {
    let media: Vec<String> =
        serde_json::from_str(&r.get::<String, _>("media_urls")).unwrap_or_default();
    let created: i64 = r.get("created_at");
    let opt_i = |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten();
    Stored {
        tenant_id: r.get("tenant_id"),
        next_attempt_at: opt_i("next_attempt_at"),
        valid_until: opt_i("valid_until"),
        submitted_at: opt_i("submitted_at"),
        created_ms: created,
        verification_id: opt_str(r, "verification_id"),
        view: Message {
            id: r.get("id"),
            direction: Direction::from_stored(&r.get::<String, _>("direction")),
            from: r.get("from_number"),
            to: r.get("to_number"),
            body: r.get("body"),
            media_urls: media,
            // Only statuses of ours are ever stored.
            status: MessageStatus::parse(&r.get::<String, _>("status"))
                .unwrap_or(MessageStatus::Queued),
            twilio_sid: opt_str(r, "twilio_sid"),
            encoding: r.get("encoding"),
            segments: r.get("segments"),
            price_estimate: opt_str(r, "price_estimate"),
            price_currency: "USD",
            error_code: opt_str(r, "error_code"),
            error_message: opt_str(r, "error_message"),
            error_description: opt_str(r, "error_code")
                .as_deref()
                .and_then(crate::messaging::describe_error),
            conversation_id: opt_str(r, "conversation_id"),
            contact_id: opt_str(r, "contact_id"),
            number_id: opt_str(r, "number_id"),
            attempts: r.get("attempts"),
            created_at: iso(created),
            updated_at: iso(r.get("updated_at")),
            sent_at: opt_i("sent_at").map(iso),
            delivered_at: opt_i("delivered_at").map(iso),
            events: None,
            media: None,
        },
    }
}

/// A new message to store (outbound or inbound).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub tenant_id: String,
    pub direction: Direction,
    pub number_id: Option<String>,
    pub conversation_id: Option<String>,
    pub contact_id: Option<String>,
    pub from: String,
    pub to: String,
    pub body: String,
    pub media_urls: Vec<String>,
    pub status: MessageStatus,
    pub twilio_sid: Option<String>,
    pub encoding: &'static str,
    pub segments: i64,
    pub price_estimate: Option<String>,
    pub template_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub valid_until: Option<i64>,
    pub now: i64,
    /// The verification whose code this text carries.
    pub verification_id: Option<String>,
}

/// Inserts a message. For inbound messages a repeated MessageSid inserts nothing and returns
/// false (Twilio retried the webhook).
pub async fn insert_message(tx: &mut Tx, m: &NewMessage) -> DbResult<bool> {
    Ok(!insert_messages(tx, std::slice::from_ref(m))
        .await?
        .is_empty())
}

const MESSAGE_INSERT_COLS: usize = 25;

/// Inserts messages in one statement and returns the ids of those inserted: an inbound message
/// whose MessageSid is already stored is left out (Twilio retried the webhook).
pub async fn insert_messages(tx: &mut Tx, ms: &[NewMessage]) -> DbResult<Vec<String>> {
    if ms.is_empty() {
        return Ok(vec![]);
    }
    // In MessageSid order, so that two batches holding the same repeated webhooks wait on each
    // other in one order instead of deadlocking.
    let mut sorted: Vec<&NewMessage> = ms.iter().collect();
    sorted.sort_by(|a, b| a.twilio_sid.cmp(&b.twilio_sid));
    let ms = sorted;
    let sql = format!(
        "INSERT INTO messages (id, tenant_id, direction, number_id, conversation_id, contact_id, from_number, to_number, \
         body, media_urls, status, status_rank, twilio_sid, encoding, segments, price_estimate, template_id, \
         idempotency_key, request_hash, next_attempt_at, valid_until, created_at, updated_at, sent_at, verification_id) \
         VALUES {} ON CONFLICT (tenant_id, twilio_sid) DO NOTHING RETURNING id",
        placeholders(tx, ms.len(), MESSAGE_INSERT_COLS)
    );
    let mut q = sqlx::query(&sql);
    for m in &ms {
        let sent_at = (m.direction == Direction::Inbound).then_some(m.now);
        q = q
            .bind(&m.id)
            .bind(&m.tenant_id)
            .bind(m.direction.as_str())
            .bind(&m.number_id)
            .bind(&m.conversation_id)
            .bind(&m.contact_id)
            .bind(&m.from)
            .bind(&m.to)
            .bind(&m.body)
            .bind(serde_json::to_string(&m.media_urls).unwrap_or_else(|_| "[]".into()))
            .bind(m.status.as_str())
            .bind(m.status.rank())
            .bind(&m.twilio_sid)
            .bind(m.encoding)
            .bind(m.segments)
            .bind(&m.price_estimate)
            .bind(&m.template_id)
            .bind(&m.idempotency_key)
            .bind(&m.request_hash)
            .bind(m.next_attempt_at)
            .bind(m.valid_until)
            .bind(m.now)
            .bind(m.now)
            .bind(sent_at)
            .bind(&m.verification_id);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    let inserted: Vec<String> = rows.iter().map(|r| r.get("id")).collect();
    // A message to send is a job of the queue, queued in the same transaction.
    for m in ms
        .iter()
        .filter(|m| m.status == MessageStatus::Accepted && inserted.contains(&m.id))
    {
        let at = m.next_attempt_at.unwrap_or(m.now);
        crate::queue::enqueue(
            tx,
            crate::messaging::dispatch::WORKER.kind,
            &m.id,
            &m.tenant_id,
            at,
        )
        .await?;
    }
    Ok(inserted)
}

/// Stores an outbound message to send with its contact and thread (their ids are found or
/// made here, whatever `m` says of them).
pub async fn accept(tx: &mut Tx, m: &NewMessage) -> DbResult<()> {
    let number_id = m.number_id.as_deref().unwrap_or_default();
    let contact_id = super::upsert_contact(tx, &m.tenant_id, &m.to, m.now).await?;
    let conversation_id =
        super::upsert_conversation(tx, &m.tenant_id, &contact_id, number_id, m.now).await?;
    let m = NewMessage {
        contact_id: Some(contact_id),
        conversation_id: Some(conversation_id),
        ..m.clone()
    };
    insert_message(tx, &m).await?;
    Ok(())
}

/// The message created earlier with this idempotency key, and the hash of that request.
pub async fn by_idempotency_key(
    db: &Db,
    tenant_id: &str,
    key: &str,
) -> DbResult<Option<(String, Option<String>)>> {
    let r = sqlx::query(
        "SELECT id, request_hash FROM messages WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant_id)
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| (r.get("id"), opt_str(&r, "request_hash"))))
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Message>> {
    let r = sqlx::query(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(|r| row(r).view))
}

/// Any tenant's message by id: for webhooks and workers, which then act for its tenant.
pub async fn get_any(db: &Db, id: &str) -> DbResult<Option<Stored>> {
    let r = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(row))
}

/// A message by Twilio's SID, within one of `tenants`.
pub async fn get_by_sid(db: &Db, tenants: &[String], sid: &str) -> DbResult<Option<Stored>> {
    for tenant_id in tenants {
        let r = sqlx::query(&format!(
            "SELECT {MSG_COLS} FROM messages WHERE twilio_sid = $1 AND tenant_id = $2"
        ))
        .bind(sid)
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
        if let Some(r) = r {
            return Ok(Some(row(&r)));
        }
    }
    Ok(None)
}

pub async fn events(db: &Db, tenant_id: &str, message_id: &str) -> DbResult<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT id, kind, status, applied, payload, created_at FROM message_events \
         WHERE message_id = $1 AND tenant_id = $2 ORDER BY created_at, id",
    )
    .bind(message_id)
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| Event {
            id: r.get("id"),
            kind: r.get("kind"),
            status: opt_str(r, "status"),
            applied: r.get::<i64, _>("applied") != 0,
            payload: serde_json::from_str(&r.get::<String, _>("payload")).unwrap_or_default(),
            created_at: iso(r.get("created_at")),
        })
        .collect())
}

pub async fn insert_event(
    tx: &mut Tx,
    tenant_id: &str,
    message_id: &str,
    kind: &str,
    status: Option<&str>,
    applied: bool,
    payload: &serde_json::Value,
) -> DbResult<()> {
    insert_events(
        tx,
        &[NewEvent {
            tenant_id,
            message_id,
            kind,
            status,
            applied,
            payload,
        }],
    )
    .await
}

/// Keeps a callback once: a second one with the same key (a replay) is not kept. Returns
/// whether it was kept.
#[allow(clippy::too_many_arguments)]
pub async fn insert_event_once(
    tx: &mut Tx,
    tenant_id: &str,
    message_id: &str,
    kind: &str,
    status: Option<&str>,
    applied: bool,
    payload: &serde_json::Value,
    once: &str,
) -> DbResult<bool> {
    let r = sqlx::query(
        "INSERT INTO message_events (id, tenant_id, message_id, kind, status, applied, payload, created_at, once_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(new_id("evt"))
    .bind(tenant_id)
    .bind(message_id)
    .bind(kind)
    .bind(status)
    .bind(applied as i64)
    .bind(payload.to_string())
    .bind(now_ms())
    .bind(once)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A raw event of a message (a callback, a webhook, a step of ours).
pub struct NewEvent<'a> {
    pub tenant_id: &'a str,
    pub message_id: &'a str,
    pub kind: &'a str,
    pub status: Option<&'a str>,
    pub applied: bool,
    pub payload: &'a serde_json::Value,
}

/// Inserts events in one statement.
pub async fn insert_events(tx: &mut Tx, events: &[NewEvent<'_>]) -> DbResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO message_events (id, tenant_id, message_id, kind, status, applied, payload, created_at) VALUES {}",
        placeholders(tx, events.len(), 8)
    );
    let now = now_ms();
    let mut q = sqlx::query(&sql);
    for e in events {
        q = q
            .bind(new_id("evt"))
            .bind(e.tenant_id)
            .bind(e.message_id)
            .bind(e.kind)
            .bind(e.status)
            .bind(e.applied as i64)
            .bind(e.payload.to_string())
            .bind(now);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Moves a message to `status` if that is a step forward from where it is and it is not in a
/// terminal state. Returns whether it moved. One statement, so concurrent callbacks cannot
/// move a status backwards.
pub async fn advance_status(
    tx: &mut Tx,
    id: &str,
    status: &str,
    error: Option<(&str, &str)>,
    twilio_sid: Option<&str>,
) -> DbResult<bool> {
    let Some(rank) = status_rank(status) else {
        return Ok(false);
    };
    let now = now_ms();
    let sent = matches!(status, "sent" | "delivered" | "undelivered" | "read").then_some(now);
    let delivered = matches!(status, "delivered" | "read").then_some(now);
    let res = sqlx::query(&format!(
        "UPDATE messages SET status = $1, status_rank = $2, updated_at = $3, \
         sent_at = COALESCE(sent_at, $4), delivered_at = COALESCE(delivered_at, $5), \
         error_code = COALESCE($6, error_code), error_message = COALESCE($7, error_message), \
         twilio_sid = COALESCE(twilio_sid, $8) \
         WHERE id = $9 AND status_rank < $2 AND status NOT IN ({})",
        TERMINAL
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(status)
    .bind(rank)
    .bind(now)
    .bind(sent)
    .bind(delivered)
    .bind(error.map(|e| e.0))
    .bind(error.map(|e| e.1))
    .bind(twilio_sid)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// A signature-checked status callback for one of the tenant's messages.
pub struct StatusUpdate {
    pub tenant_id: String,
    pub message_id: String,
    pub status: String,
    /// Twilio's error code and message, when the callback carries one.
    pub error: Option<(String, String)>,
    pub message_sid: String,
    pub raw: serde_json::Value,
}

/// Moves the message forward if the callback does, and keeps the callback as an event (once
/// per SID, status and error: a replay is not kept again), in one transaction. Returns
/// whether the status moved.
pub async fn record_status(tx: &mut Tx, u: &StatusUpdate) -> DbResult<bool> {
    let error = u.error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
    let applied = advance_status(tx, &u.message_id, &u.status, error, Some(&u.message_sid)).await?;
    let once = format!(
        "status:{}:{}:{}",
        u.message_sid,
        u.status,
        error.map(|e| e.0).unwrap_or_default()
    );
    insert_event_once(
        tx,
        &u.tenant_id,
        &u.message_id,
        "status_callback",
        Some(&u.status),
        applied,
        &u.raw,
        &once,
    )
    .await?;
    // The final status came: no need to ask Twilio for it later.
    if applied && (is_terminal(&u.status) || u.status == "delivered") {
        crate::queue::cancel(
            tx,
            crate::messaging::dispatch::STATUS_POLLS.kind,
            &u.message_id,
        )
        .await?;
    }
    Ok(applied)
}

/// History filters.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub phone: Option<String>,
    pub direction: Option<String>,
    pub status: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub conversation_id: Option<String>,
    /// Continue after this (created_at, id), newest first.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// Messages newest first, one page.
pub async fn list(db: &Db, tenant_id: &str, f: &Filter) -> DbResult<Vec<Message>> {
    let mut sql = format!("SELECT {MSG_COLS} FROM messages WHERE tenant_id = $1");
    let mut args: Vec<Arg> = vec![Arg::S(tenant_id.to_string())];
    let mut push = |cond: &str, a: Arg, sql: &mut String| {
        args.push(a);
        sql.push_str(&cond.replace('?', &format!("${}", args.len())));
    };
    if let Some(p) = &f.phone {
        push(
            " AND (to_number = ? OR from_number = ?)",
            Arg::S(p.clone()),
            &mut sql,
        );
    }
    if let Some(d) = &f.direction {
        push(" AND direction = ?", Arg::S(d.clone()), &mut sql);
    }
    if let Some(s) = &f.status {
        push(" AND status = ?", Arg::S(s.clone()), &mut sql);
    }
    if let Some(c) = &f.conversation_id {
        push(" AND conversation_id = ?", Arg::S(c.clone()), &mut sql);
    }
    if let Some(t) = f.since_ms {
        push(" AND created_at >= ?", Arg::I(t), &mut sql);
    }
    if let Some(t) = f.until_ms {
        push(" AND created_at < ?", Arg::I(t), &mut sql);
    }
    if let Some((t, id)) = &f.before {
        args.push(Arg::I(*t));
        let a = args.len();
        args.push(Arg::S(id.clone()));
        let b = args.len();
        sql.push_str(&format!(
            " AND (created_at < ${a} OR (created_at = ${a} AND id < ${b}))"
        ));
    }
    args.push(Arg::I(f.limit));
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ${}",
        args.len()
    ));
    let mut q = sqlx::query(&sql);
    for a in args {
        q = match a {
            Arg::S(s) => q.bind(s),
            Arg::I(i) => q.bind(i),
        };
    }
    Ok(q.fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| row(r).view)
        .collect())
}

enum Arg {
    S(String),
    I(i64),
}

// ---- Sending ----

/// The message is being handed to Twilio (retries included).
pub async fn mark_submitting(tx: &mut Tx, id: &str, attempts: i64, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE messages SET status = 'submitting', status_rank = $1, submitted_at = $2, attempts = $3, \
         updated_at = $2 WHERE id = $4 AND status IN ('accepted', 'submitting')",
    )
    .bind(MessageStatus::Submitting.rank())
    .bind(now)
    .bind(attempts)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps Twilio's latest refusal on a message that will be tried again (its status stays).
pub async fn note_error(db: &Db, id: &str, code: &str, message: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE messages SET error_code = $1, error_message = $2, updated_at = $3 WHERE id = $4 AND status_rank < 5",
    )
    .bind(code)
    .bind(message)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records Twilio's SID for a submitted message and queues its status polls. The status
/// becomes `queued` unless a callback already moved it further; an error a callback already
/// reported (a 30003 that came before Twilio's slow answer to the create) is kept.
pub async fn submitted(
    tx: &mut Tx,
    m: &Stored,
    sid: &str,
    twilio_status: &str,
    poll_at: i64,
) -> DbResult<()> {
    let status = if status_rank(twilio_status).is_some_and(|r| r >= 2) {
        twilio_status
    } else {
        "queued"
    };
    let rank = status_rank(status).unwrap_or(2);
    let row = sqlx::query(
        "UPDATE messages SET twilio_sid = COALESCE(twilio_sid, $1), \
         status = CASE WHEN status_rank < $2 THEN $3 ELSE status END, \
         status_rank = CASE WHEN status_rank < $2 THEN $2 ELSE status_rank END, \
         lease_until = NULL, next_attempt_at = NULL, \
         error_code = CASE WHEN status_rank >= 5 THEN error_code END, \
         error_message = CASE WHEN status_rank >= 5 THEN error_message END, updated_at = $4 WHERE id = $5 \
         RETURNING status",
    )
    .bind(sid)
    .bind(rank)
    .bind(status)
    .bind(now_ms())
    .bind(&m.view.id)
    .fetch_optional(&mut **tx)
    .await?;
    // Polls only for a message whose final status has not come yet.
    let now = row.map(|r| r.get::<String, _>("status"));
    match now.as_deref() {
        Some(s) if !is_terminal(s) && s != "delivered" => {
            crate::queue::enqueue(tx, "status_poll", &m.view.id, &m.tenant_id, poll_at).await
        }
        _ => Ok(()),
    }
}

/// The tenants already holding each of these SIDs, as (sid, tenant) pairs.
pub async fn sid_owners(tx: &mut Tx, sids: &[&str]) -> DbResult<Vec<(String, String)>> {
    if sids.is_empty() {
        return Ok(vec![]);
    }
    let list = placeholders(tx, sids.len(), 1);
    // `placeholders` writes rows as `(…)`; an IN list wants them bare.
    let list = list.replace(['(', ')'], "");
    let sql = format!("SELECT twilio_sid, tenant_id FROM messages WHERE twilio_sid IN ({list})");
    let mut q = sqlx::query(&sql);
    for s in sids {
        q = q.bind(*s);
    }
    Ok(q.fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| (r.get("twilio_sid"), r.get("tenant_id")))
        .collect())
}

/// Whether one of the tenant's messages already has this SID.
pub async fn sid_taken(db: &Db, tenant_id: &str, sid: &str) -> DbResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM messages WHERE twilio_sid = $1 AND tenant_id = $2")
            .bind(sid)
            .bind(tenant_id)
            .fetch_optional(db.pool())
            .await?
            .is_some(),
    )
}
