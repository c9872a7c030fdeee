//! SQL for verifications, their send attempts (sent or blocked) and tenants' settings.

use super::Settings;
use crate::db::{opt_str, Db, DbResult, Row, Tx};
use serde::Serialize;
use sqlx::any::AnyRow;

/// A verification as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub to: String,
    pub channel: String,
    pub locale: String,
    pub app_name: String,
    pub engine: String,
    pub status: String,
    #[serde(skip)]
    pub code_length: i64,
    #[serde(skip)]
    pub salt: Option<String>,
    #[serde(skip)]
    pub code_hash: Option<String>,
    pub twilio_sid: Option<String>,
    #[serde(skip)]
    pub service_sid: Option<String>,
    pub send_attempts: i64,
    pub check_attempts: i64,
    pub message_id: Option<String>,
    pub call_id: Option<String>,
    #[serde(serialize_with = "crate::tenants::rfc3339")]
    pub expires_at: i64,
    #[serde(serialize_with = "crate::tenants::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::tenants::rfc3339")]
    pub updated_at: i64,
}

const COLS: &str = "id, tenant_id, to_number, channel, locale, app_name, engine, status, code_length, salt, \
    code_hash, twilio_sid, service_sid, send_attempts, check_attempts, message_id, call_id, expires_at, \
    created_at, updated_at";

fn row(r: &AnyRow) -> Verification {
    Verification {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
        to: r.get("to_number"),
        channel: r.get("channel"),
        locale: r.get("locale"),
        app_name: r.get("app_name"),
        engine: r.get("engine"),
        status: r.get("status"),
        code_length: r.get("code_length"),
        salt: opt_str(r, "salt"),
        code_hash: opt_str(r, "code_hash"),
        twilio_sid: opt_str(r, "twilio_sid"),
        service_sid: opt_str(r, "service_sid"),
        send_attempts: r.get("send_attempts"),
        check_attempts: r.get("check_attempts"),
        message_id: opt_str(r, "message_id"),
        call_id: opt_str(r, "call_id"),
        expires_at: r.get("expires_at"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Verification>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM verifications WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(row))
}

/// The pending verification of a number, expired or not.
pub async fn pending_for<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    tenant_id: &str,
    to: &str,
) -> DbResult<Option<Verification>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM verifications WHERE tenant_id = $1 AND to_number = $2 AND status = 'pending'"
    ))
    .bind(tenant_id)
    .bind(to)
    .fetch_optional(db)
    .await?;
    Ok(r.as_ref().map(row))
}

/// The latest verification of a number, whatever its status.
pub async fn latest_for(db: &Db, tenant_id: &str, to: &str) -> DbResult<Option<Verification>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM verifications WHERE tenant_id = $1 AND to_number = $2 ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(tenant_id)
    .bind(to)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(row))
}

/// Marks pending verifications of the number that are past their time as expired, so that a
/// new one can be made.
pub async fn expire(tx: &mut Tx, tenant_id: &str, to: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE verifications SET status = 'expired', updated_at = $1 \
         WHERE tenant_id = $2 AND to_number = $3 AND status = 'pending' AND expires_at <= $1",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(to)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends whatever verification of the number is pending (Twilio started a new one).
pub async fn end_pending(tx: &mut Tx, tenant_id: &str, to: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE verifications SET status = 'expired', updated_at = $1 \
         WHERE tenant_id = $2 AND to_number = $3 AND status = 'pending'",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(to)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert(tx: &mut Tx, v: &Verification) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO verifications ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    ))
    .bind(&v.id)
    .bind(&v.tenant_id)
    .bind(&v.to)
    .bind(&v.channel)
    .bind(&v.locale)
    .bind(&v.app_name)
    .bind(&v.engine)
    .bind(&v.status)
    .bind(v.code_length)
    .bind(&v.salt)
    .bind(&v.code_hash)
    .bind(&v.twilio_sid)
    .bind(&v.service_sid)
    .bind(v.send_attempts)
    .bind(v.check_attempts)
    .bind(&v.message_id)
    .bind(&v.call_id)
    .bind(v.expires_at)
    .bind(v.created_at)
    .bind(v.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One more send of a pending verification, by `channel`.
pub async fn count_send(
    tx: &mut Tx,
    id: &str,
    channel: &str,
    twilio_sid: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE verifications SET send_attempts = send_attempts + 1, channel = $1, \
         twilio_sid = COALESCE(twilio_sid, $2), updated_at = $3 WHERE id = $4",
    )
    .bind(channel)
    .bind(twilio_sid)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The text or call that carried the latest send.
pub async fn set_carrier(
    db: &Db,
    id: &str,
    message_id: Option<&str>,
    call_id: Option<&str>,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE verifications SET message_id = COALESCE($1, message_id), call_id = COALESCE($2, call_id) WHERE id = $3",
    )
    .bind(message_id)
    .bind(call_id)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records a check: its new status and count, only if the verification is still as it was
/// read (`pending`, `checks` so far), so that two racing checks cannot both use one attempt.
pub async fn record_check(
    db: &Db,
    id: &str,
    checks_before: i64,
    status: &str,
    now: i64,
) -> DbResult<bool> {
    let (id, status) = (id.to_string(), status.to_string());
    db.write(move |tx| {
        let (id, status) = (id.clone(), status.clone());
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE verifications SET status = $1, check_attempts = check_attempts + 1, updated_at = $2 \
                 WHERE id = $3 AND status = 'pending' AND check_attempts = $4",
            )
            .bind(&status)
            .bind(now)
            .bind(&id)
            .bind(checks_before)
            .execute(&mut **tx)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    })
    .await
}

/// Sets a status (cancel, expiry seen, Twilio's answer) on a verification still pending.
pub async fn set_status(db: &Db, id: &str, status: &str, now: i64) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE verifications SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A send attempt, kept for the limits whether it went out or was blocked.
pub struct Attempt<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub verification_id: Option<&'a str>,
    pub to: &'a str,
    pub prefix: &'a str,
    pub country: &'a str,
    pub client_ip: &'a str,
    pub channel: &'a str,
    /// `sent` or `blocked`.
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub cost_micros: i64,
    pub now: i64,
}

pub async fn insert_attempt<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    a: &Attempt<'_>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO verification_attempts (id, tenant_id, verification_id, to_number, prefix, country, client_ip, channel, \
         outcome, reason, cost_micros, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(a.id)
    .bind(a.tenant_id)
    .bind(a.verification_id)
    .bind(a.to)
    .bind(a.prefix)
    .bind(a.country)
    .bind(a.client_ip)
    .bind(a.channel)
    .bind(a.outcome)
    .bind(a.reason)
    .bind(a.cost_micros)
    .bind(a.now)
    .execute(db)
    .await?;
    Ok(())
}

/// An attempt admitted but not sent after all: it counts no more.
pub async fn attempt_refused(db: &Db, id: &str, reason: &str) -> DbResult<()> {
    sqlx::query(
        "UPDATE verification_attempts SET outcome = 'blocked', reason = $1, cost_micros = 0 WHERE id = $2",
    )
    .bind(reason)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Codes sent since `since` whose `column` is `value` (`to_number`, `client_ip`, `prefix`,
/// `country`), and when the oldest of them was sent.
pub async fn sent_since(
    db: &Db,
    tenant_id: &str,
    column: &'static str,
    value: &str,
    since: i64,
) -> DbResult<(i64, Option<i64>)> {
    let r = sqlx::query(&format!(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM verification_attempts \
         WHERE tenant_id = $1 AND {column} = $2 AND created_at >= $3 AND outcome = 'sent'"
    ))
    .bind(tenant_id)
    .bind(value)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok((
        r.get("n"),
        r.try_get::<Option<i64>, _>("oldest").ok().flatten(),
    ))
}

/// Estimated spend on codes since `since`, in millionths of a dollar.
pub async fn spent_since(db: &Db, tenant_id: &str, since: i64) -> DbResult<(i64, Option<i64>)> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent, MIN(created_at) AS oldest FROM verification_attempts \
         WHERE tenant_id = $1 AND created_at >= $2 AND outcome = 'sent'",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok((
        r.get("spent"),
        r.try_get::<Option<i64>, _>("oldest").ok().flatten(),
    ))
}

pub async fn settings(db: &Db, tenant_id: &str) -> DbResult<Settings> {
    let r = sqlx::query("SELECT settings FROM verify_settings WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(
        r.and_then(|r| serde_json::from_str(&r.get::<String, _>("settings")).ok())
            .unwrap_or_default(),
    )
}

pub async fn save_settings(db: &Db, tenant_id: &str, s: &Settings, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO verify_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(serde_json::to_string(s).unwrap_or_default())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}
