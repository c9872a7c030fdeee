//! SQL for calls and their events: the call rows as every endpoint shows them, statuses that
//! only move forward, the path a flow took, and the requests kept once.

pub mod recordings;

use super::calls::{call_rank, Call, CallStatus, Direction};
use crate::db::{now_ms, opt_str, Db, DbResult, Row};
use crate::ids::new_id;
use crate::messaging::iso;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use twilio::Form;

const CALL_COLS: &str = "id, tenant_id, number_id, direction, from_number, to_number, status, twilio_sid, flow_id, path, \
    ringing_at, answered_at, ended_at, duration, created_at, updated_at, flow_override, metadata, \
    error_code, error_message, attempts, turns";

fn call(r: &AnyRow) -> Call {
    let t = |c: &str| r.try_get::<Option<i64>, _>(c).ok().flatten();
    Call {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
        number_id: opt_str(r, "number_id"),
        // One vocabulary with messages: `inbound` or `outbound` (Twilio's `outbound-api` and
        // `outbound-dial` are both ours to place).
        direction: Direction::from_stored(&r.get::<String, _>("direction")),
        from: r.get("from_number"),
        to: r.get("to_number"),
        // Only statuses of ours are ever stored.
        status: CallStatus::parse(&r.get::<String, _>("status")).unwrap_or(CallStatus::Queued),
        twilio_sid: opt_str(r, "twilio_sid"),
        flow_id: opt_str(r, "flow_id"),
        path: serde_json::from_str(&r.get::<String, _>("path")).unwrap_or_default(),
        ringing_at: t("ringing_at").map(iso),
        answered_at: t("answered_at").map(iso),
        ended_at: t("ended_at").map(iso),
        duration: t("duration"),
        metadata: opt_str(r, "metadata")
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_else(|| Value::Object(Default::default())),
        error_description: opt_str(r, "error_code")
            .as_deref()
            .and_then(crate::messaging::describe_error),
        error_code: opt_str(r, "error_code"),
        error_message: opt_str(r, "error_message"),
        attempts: r.get("attempts"),
        created_ms: r.get("created_at"),
        flow_override: opt_str(r, "flow_override"),
        turns: r.get("turns"),
        created_at: iso(r.get("created_at")),
        updated_at: iso(r.get("updated_at")),
        events: None,
    }
}

/// A call by our id, whichever tenant it belongs to (callers check the owner).
pub async fn get_any(db: &Db, id: &str) -> DbResult<Option<Call>> {
    let r = sqlx::query(&format!("SELECT {CALL_COLS} FROM calls WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(call))
}

/// One of the tenant's calls, as every endpoint shows it.
pub(crate) async fn find(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Call>> {
    Ok(get_any(db, id).await?.filter(|c| c.tenant_id == tenant_id))
}

/// A call by Twilio's SID, within one of `tenants`.
pub async fn get_by_sid(db: &Db, tenants: &[String], sid: &str) -> DbResult<Option<Call>> {
    for tenant_id in tenants {
        let r = sqlx::query(&format!(
            "SELECT {CALL_COLS} FROM calls WHERE twilio_sid = $1 AND tenant_id = $2"
        ))
        .bind(sid)
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
        if let Some(r) = r {
            return Ok(Some(call(&r)));
        }
    }
    Ok(None)
}

/// A tenant other than `tenants` that already has a call with this SID.
pub async fn sid_elsewhere<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    table: &str,
    tenants: &[String],
    sid: &str,
) -> DbResult<Option<String>> {
    let rows = sqlx::query(&format!(
        "SELECT tenant_id FROM {table} WHERE twilio_sid = $1"
    ))
    .bind(sid)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<String, _>("tenant_id"))
        .find(|t| !tenants.contains(t)))
}

/// Keeps a request about the call. With `once`, a second request with the same key (a replay)
/// is not kept again; returns whether it was kept.
pub async fn insert_event<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    c: &Call,
    kind: &str,
    status: Option<&str>,
    applied: bool,
    form: &Form,
    once: Option<&str>,
) -> DbResult<bool> {
    let payload: serde_json::Map<String, Value> = form
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let r = sqlx::query("INSERT INTO call_events (id, tenant_id, call_id, kind, status, applied, payload, created_at, once_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING")
        .bind(new_id("evt"))
        .bind(&c.tenant_id)
        .bind(&c.id)
        .bind(kind)
        .bind(status)
        .bind(applied as i64)
        .bind(Value::Object(payload).to_string())
        .bind(now_ms())
        .bind(once)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Adds the steps a document ran to the call's path and, when the call was answered now, its
/// answer time: one statement, through the group-commit writer.
pub async fn record_steps(db: &Db, c: &Call, steps: &[String], answered: bool) -> DbResult<()> {
    if steps.is_empty() && !answered {
        return Ok(());
    }
    let mut path = c.path.clone();
    path.extend(steps.iter().cloned());
    let path = serde_json::to_string(&path).unwrap_or_else(|_| "[]".into());
    let id = c.id.clone();
    db.write(move |tx| {
        let (path, id) = (path.clone(), id.clone());
        Box::pin(async move {
            let now = now_ms();
            sqlx::query(
                "UPDATE calls SET path = $1, updated_at = $2, \
                 answered_at = CASE WHEN $3 = 1 THEN COALESCE(answered_at, $2) ELSE answered_at END WHERE id = $4",
            )
            .bind(path)
            .bind(now)
            .bind(answered as i64)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Ok(())
        })
    })
    .await
}

/// Moves a call's status forward only; final statuses stick. Returns whether it moved.
pub(crate) async fn advance<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
    status: &str,
    duration: Option<i64>,
    sid: Option<&str>,
) -> DbResult<bool> {
    let Some(rank) = call_rank(status) else {
        return Ok(false);
    };
    let now = now_ms();
    let res = sqlx::query(
        "UPDATE calls SET status = $1, status_rank = $2, updated_at = $3, \
         ringing_at = CASE WHEN $2 >= 3 THEN COALESCE(ringing_at, $3) ELSE ringing_at END, \
         answered_at = CASE WHEN $1 = 'in-progress' THEN COALESCE(answered_at, $3) ELSE answered_at END, \
         ended_at = CASE WHEN $2 = 5 THEN COALESCE(ended_at, $3) ELSE ended_at END, \
         duration = COALESCE($4, duration), twilio_sid = COALESCE(twilio_sid, $6), lease_until = NULL \
         WHERE id = $5 AND status_rank < $2",
    )
    .bind(status)
    .bind(rank)
    .bind(now)
    .bind(duration)
    .bind(id)
    .bind(sid)
    .execute(db)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Takes turn `turn` of a call's flow: true the first time, false for a replay of a request
/// already answered (its answer is given again, and nothing is stored).
pub async fn claim_turn(db: &Db, call_id: &str, turn: i64) -> DbResult<bool> {
    let id = call_id.to_string();
    db.write(move |tx| {
        let id = id.clone();
        Box::pin(async move {
            let r = sqlx::query("UPDATE calls SET turns = $1 WHERE id = $2 AND turns = $3")
                .bind(turn + 1)
                .bind(&id)
                .bind(turn)
                .execute(&mut **tx)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    })
    .await
}

/// A call Twilio reports coming in to one of the tenant's numbers.
pub struct Incoming {
    pub number: crate::numbers::Number,
    /// The tenants using the account that signed the webhook.
    pub account_tenants: Vec<String>,
    pub sid: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub form: Form,
}

/// A call coming in, once per (tenant, CallSid): returns the call and whether it is new.
/// None when the SID is another account's (refused by the caller).
pub async fn record_incoming(
    tx: &mut crate::db::Tx,
    i: &Incoming,
) -> DbResult<Option<(Call, bool)>> {
    let Incoming {
        number,
        account_tenants,
        sid,
        from,
        to,
        status,
        form,
    } = i;
    if sid_elsewhere(&mut **tx, "calls", account_tenants, sid)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO calls (id, tenant_id, number_id, direction, from_number, to_number, status, status_rank, twilio_sid, flow_id, \
         ringing_at, created_at, updated_at) VALUES ($1, $2, $3, 'inbound', $4, $5, $6, $7, $8, $9, $10, $10, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(new_id("call"))
    .bind(&number.tenant_id)
    .bind(&number.id)
    .bind(from)
    .bind(to)
    .bind(status)
    .bind(call_rank(status).unwrap_or(2))
    .bind(sid)
    .bind(&number.flow_id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    let r = sqlx::query(&format!(
        "SELECT {CALL_COLS} FROM calls WHERE twilio_sid = $1 AND tenant_id = $2"
    ))
    .bind(sid)
    .bind(&number.tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(c) = r.as_ref().map(call) else {
        return Ok(None);
    };
    // A repeat of the webhook (Twilio retrying, or a replay) is answered as before and stores
    // nothing.
    if inserted {
        insert_event(
            &mut **tx,
            &c,
            "voice_request",
            Some(status),
            true,
            form,
            None,
        )
        .await?;
    }
    Ok(Some((c, inserted)))
}

/// The call continues with another of the tenant's flows.
pub async fn set_flow(db: &Db, call_id: &str, flow_id: &str) -> DbResult<()> {
    sqlx::query("UPDATE calls SET flow_id = $1 WHERE id = $2")
        .bind(flow_id)
        .bind(call_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The flow of this call, with the steps an app added.
pub async fn set_flow_override(db: &Db, call_id: &str, flow_json: &str) -> DbResult<()> {
    sqlx::query("UPDATE calls SET flow_override = $1 WHERE id = $2")
        .bind(flow_json)
        .bind(call_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Whether the tenant texted this template from `from` to `to` since `since_ms`.
pub async fn texted_since(
    db: &Db,
    tenant_id: &str,
    from: &str,
    to: &str,
    template_id: &str,
    since_ms: i64,
) -> DbResult<bool> {
    Ok(sqlx::query(
        "SELECT id FROM messages WHERE tenant_id = $1 AND from_number = $2 AND to_number = $3 AND template_id = $4 AND created_at >= $5 LIMIT 1",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .bind(template_id)
    .bind(since_ms)
    .fetch_optional(db.pool())
    .await?
    .is_some())
}

/// History filters for calls; None switches a filter off.
#[derive(Debug, Default)]
pub struct Filter {
    pub phone: Option<String>,
    /// `inbound`, `outbound-api`, `outbound-dial`, or a LIKE pattern such as `outbound%`.
    pub direction: Option<String>,
    pub status: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Continue after this (created_at, id), newest first.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// The tenant's calls newest first, one page. One statement: a NULL parameter switches its
/// filter off.
pub async fn list(db: &Db, tenant_id: &str, f: &Filter) -> DbResult<Vec<Call>> {
    let rows = sqlx::query(&format!(
        "SELECT {CALL_COLS} FROM calls WHERE tenant_id = $1 \
         AND ($2 IS NULL OR from_number = $2 OR to_number = $2) \
         AND ($3 IS NULL OR direction LIKE $3) AND ($4 IS NULL OR status = $4) \
         AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
         AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
         ORDER BY created_at DESC, id DESC LIMIT $9"
    ))
    .bind(tenant_id)
    .bind(&f.phone)
    .bind(&f.direction)
    .bind(&f.status)
    .bind(f.since_ms)
    .bind(f.until_ms)
    .bind(f.before.as_ref().map(|b| b.0))
    .bind(f.before.as_ref().map(|b| b.1.clone()))
    .bind(f.limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(call).collect())
}

/// The requests kept about a call, oldest first.
pub async fn events(db: &Db, tenant_id: &str, call_id: &str) -> DbResult<Vec<Value>> {
    let rows = sqlx::query("SELECT id, kind, status, applied, payload, created_at FROM call_events WHERE call_id = $1 AND tenant_id = $2 ORDER BY created_at, id")
        .bind(call_id)
        .bind(tenant_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<String, _>("id"),
                "kind": r.get::<String, _>("kind"),
                "status": opt_str(r, "status"),
                "applied": r.get::<i64, _>("applied") != 0,
                "payload": serde_json::from_str::<Value>(&r.get::<String, _>("payload")).unwrap_or_default(),
                "created_at": iso(r.get("created_at")),
            })
        })
        .collect())
}

/// The status of the call's latest event of these kinds.
pub async fn last_event_status(db: &Db, c: &Call, kinds: &[&str]) -> DbResult<Option<String>> {
    let mut best: Option<(i64, String, String)> = None;
    for kind in kinds {
        let r = sqlx::query("SELECT id, status, created_at FROM call_events WHERE call_id = $1 AND tenant_id = $2 AND kind = $3 ORDER BY created_at DESC, id DESC LIMIT 1")
            .bind(&c.id)
            .bind(&c.tenant_id)
            .bind(kind)
            .fetch_optional(db.pool())
            .await?;
        if let Some(r) = r {
            let key = (r.get::<i64, _>("created_at"), r.get::<String, _>("id"));
            if best.as_ref().is_none_or(|b| (b.0, &b.1) < (key.0, &key.1)) {
                best = opt_str(&r, "status").map(|s| (key.0, key.1, s));
            }
        }
    }
    Ok(best.map(|b| b.2))
}

// ---- Outbound calls ----

/// A call the tenant asked to place, as stored.
pub struct NewCall {
    pub id: String,
    pub tenant_id: String,
    pub number_id: String,
    pub from: String,
    pub to: String,
    pub flow_id: Option<String>,
    /// The request, as JSON (what to do when the person answers).
    pub request: String,
    pub metadata: String,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub verification_id: Option<String>,
    pub now: i64,
}

pub async fn insert_outbound(tx: &mut crate::db::Tx, c: &NewCall) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO calls (id, tenant_id, number_id, direction, from_number, to_number, status, status_rank, flow_id, request, \
         metadata, idempotency_key, request_hash, next_attempt_at, created_at, updated_at, verification_id) \
         VALUES ($1, $2, $3, 'outbound-api', $4, $5, 'accepted', 0, $6, $7, $8, $9, $10, $11, $11, $11, $12)",
    )
    .bind(&c.id)
    .bind(&c.tenant_id)
    .bind(&c.number_id)
    .bind(&c.from)
    .bind(&c.to)
    .bind(&c.flow_id)
    .bind(&c.request)
    .bind(&c.metadata)
    .bind(&c.idempotency_key)
    .bind(&c.request_hash)
    .bind(c.now)
    .bind(&c.verification_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The call an idempotency key made, with the hash of the request that made it.
pub async fn by_idempotency_key(
    db: &Db,
    tenant_id: &str,
    key: &str,
) -> DbResult<Option<(String, Option<String>)>> {
    let r = sqlx::query(
        "SELECT id, request_hash FROM calls WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant_id)
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| (r.get("id"), opt_str(&r, "request_hash"))))
}

/// What placing and answering an outbound call need.
pub struct Outbound {
    pub id: String,
    pub tenant_id: String,
    pub number_id: Option<String>,
    pub from: String,
    pub to: String,
    pub flow_id: Option<String>,
    pub request: Option<String>,
    pub submitted_at: Option<i64>,
    pub status: String,
    pub twilio_sid: Option<String>,
    pub verification_id: Option<String>,
}

const OUTBOUND_COLS: &str =
    "id, tenant_id, number_id, from_number, to_number, flow_id, request, submitted_at, \
    status, twilio_sid, verification_id";

fn outbound_row(r: &AnyRow) -> Outbound {
    Outbound {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
        number_id: opt_str(r, "number_id"),
        from: r.get("from_number"),
        to: r.get("to_number"),
        flow_id: opt_str(r, "flow_id"),
        request: opt_str(r, "request"),
        submitted_at: r.try_get::<Option<i64>, _>("submitted_at").ok().flatten(),
        status: r.get("status"),
        twilio_sid: opt_str(r, "twilio_sid"),
        verification_id: opt_str(r, "verification_id"),
    }
}

pub async fn outbound(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Outbound>> {
    let r = sqlx::query(&format!(
        "SELECT {OUTBOUND_COLS} FROM calls WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(outbound_row))
}

/// An outbound call by our id, whichever tenant it belongs to (webhooks check the owner).
pub async fn outbound_any(db: &Db, id: &str) -> DbResult<Option<Outbound>> {
    let r = sqlx::query(&format!("SELECT {OUTBOUND_COLS} FROM calls WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(outbound_row))
}

/// The call is being handed to Twilio (retries included).
pub async fn mark_submitting(
    tx: &mut crate::db::Tx,
    id: &str,
    attempts: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE calls SET status = 'submitting', submitted_at = $1, attempts = $2, updated_at = $1 \
         WHERE id = $3 AND status IN ('accepted', 'submitting')",
    )
    .bind(now)
    .bind(attempts)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Links Twilio's SID to the call (the first one given sticks).
pub async fn set_sid<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
    sid: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE calls SET twilio_sid = COALESCE(twilio_sid, $1), lease_until = NULL WHERE id = $2",
    )
    .bind(sid)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// The call could not be placed.
pub async fn fail(db: &Db, id: &str, code: &str, message: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE calls SET status = 'failed', status_rank = $1, error_code = $2, error_message = $3, \
         lease_until = NULL, ended_at = $4, updated_at = $4 WHERE id = $5",
    )
    .bind(CallStatus::Failed.rank())
    .bind(code)
    .bind(message)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The steps the call's flow took when it was answered.
pub async fn set_path(db: &Db, id: &str, path: &[String]) -> DbResult<()> {
    sqlx::query("UPDATE calls SET path = $1 WHERE id = $2")
        .bind(serde_json::to_string(path).unwrap_or_default())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

// ---- Flows ----

const FLOW_COLS: &str = "id, definition, created_at, updated_at";

fn flow_row(r: &AnyRow) -> Option<super::flows::StoredFlow> {
    let flow: super::flow::Flow = serde_json::from_str(&r.get::<String, _>("definition")).ok()?;
    Some(super::flows::StoredFlow {
        id: r.get("id"),
        flow,
        created_at: iso(r.get("created_at")),
        updated_at: iso(r.get("updated_at")),
    })
}

/// A flow by id or name.
pub async fn find_flow(
    db: &Db,
    tenant_id: &str,
    id_or_name: &str,
) -> DbResult<Option<super::flows::StoredFlow>> {
    let r = sqlx::query(&format!(
        "SELECT {FLOW_COLS} FROM flows WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
    ))
    .bind(tenant_id)
    .bind(id_or_name)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().and_then(flow_row))
}

/// Every flow of the tenant, by name.
pub async fn flows(db: &Db, tenant_id: &str) -> DbResult<Vec<super::flows::StoredFlow>> {
    let rows = sqlx::query(&format!(
        "SELECT {FLOW_COLS} FROM flows WHERE tenant_id = $1 ORDER BY name"
    ))
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().filter_map(flow_row).collect())
}

/// A new flow; a name the tenant already uses is a unique violation.
pub async fn insert_flow(
    db: &Db,
    tenant_id: &str,
    id: &str,
    name: &str,
    definition: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO flows (id, tenant_id, name, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(name)
    .bind(definition)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update_flow(
    db: &Db,
    tenant_id: &str,
    id: &str,
    name: &str,
    definition: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE flows SET name = $1, definition = $2, updated_at = $3 WHERE id = $4 AND tenant_id = $5",
    )
    .bind(name)
    .bind(definition)
    .bind(now)
    .bind(id)
    .bind(tenant_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A number of the tenant whose calls this flow answers, if any.
pub async fn number_answered_by(
    db: &Db,
    tenant_id: &str,
    flow_id: &str,
) -> DbResult<Option<String>> {
    let r = sqlx::query("SELECT phone_number FROM numbers WHERE flow_id = $1 AND tenant_id = $2")
        .bind(flow_id)
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.map(|r| r.get("phone_number")))
}

pub async fn delete_flow(db: &Db, tenant_id: &str, id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM flows WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
