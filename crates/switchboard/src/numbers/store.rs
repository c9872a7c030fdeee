//! SQL for numbers: which tenant owns them, their settings, and the send slots that pace them.

use super::Number;
use crate::db::{now_ms, opt_str, Db, DbResult, Row};
use crate::ids::new_id;
use sqlx::any::AnyRow;

fn number(r: &AnyRow) -> Number {
    Number {
        id: r.get("id"),
        tenant_id: r.get("tenant_id"),
        phone_number: r.get("phone_number"),
        twilio_sid: opt_str(r, "twilio_sid"),
        segments_per_second: r.get("segments_per_second"),
        auto_reply: opt_str(r, "auto_reply"),
        flow_id: opt_str(r, "flow_id"),
        created_at: r.get("created_at"),
    }
}

const NUMBER_COLS: &str =
    "id, tenant_id, phone_number, twilio_sid, segments_per_second, auto_reply, flow_id, created_at";

pub async fn add_number(
    db: &Db,
    tenant_id: &str,
    phone: &str,
    sps: f64,
    twilio_sid: Option<&str>,
) -> DbResult<Number> {
    let n = Number {
        id: new_id("num"),
        tenant_id: tenant_id.to_string(),
        phone_number: phone.to_string(),
        twilio_sid: twilio_sid.map(str::to_string),
        segments_per_second: sps,
        auto_reply: None,
        flow_id: None,
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO numbers (id, tenant_id, phone_number, twilio_sid, segments_per_second, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&n.id)
    .bind(&n.tenant_id)
    .bind(&n.phone_number)
    .bind(&n.twilio_sid)
    .bind(n.segments_per_second)
    .bind(n.created_at)
    .execute(db.pool())
    .await?;
    Ok(n)
}

/// Changes to a number; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct NumberChange<'a> {
    pub segments_per_second: Option<f64>,
    pub auto_reply: Option<Option<&'a str>>,
    pub flow_id: Option<Option<&'a str>>,
    pub twilio_sid: Option<&'a str>,
}

pub async fn update_number(
    db: &Db,
    tenant_id: &str,
    id: &str,
    change: NumberChange<'_>,
) -> DbResult<Option<Number>> {
    let Some(current) = get_number(db, tenant_id, id).await? else {
        return Ok(None);
    };
    let sps = change
        .segments_per_second
        .unwrap_or(current.segments_per_second);
    let auto_reply = change
        .auto_reply
        .map_or(current.auto_reply.clone(), |v| v.map(str::to_string));
    let flow_id = change
        .flow_id
        .map_or(current.flow_id.clone(), |v| v.map(str::to_string));
    let sid = change
        .twilio_sid
        .map(str::to_string)
        .or(current.twilio_sid.clone());
    sqlx::query(
        "UPDATE numbers SET segments_per_second = $1, auto_reply = $2, twilio_sid = $3, flow_id = $4 WHERE id = $5 AND tenant_id = $6",
    )
    .bind(sps)
    .bind(&auto_reply)
    .bind(&sid)
    .bind(&flow_id)
    .bind(id)
    .bind(tenant_id)
    .execute(db.pool())
    .await?;
    get_number(db, tenant_id, id).await
}

pub async fn get_number(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Number>> {
    let row = sqlx::query(&format!(
        "SELECT {NUMBER_COLS} FROM numbers WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(number))
}

/// A number by its E.164 value, whichever tenant owns it (for webhooks).
pub async fn number_by_phone(db: &Db, phone: &str) -> DbResult<Option<Number>> {
    let row = sqlx::query(&format!(
        "SELECT {NUMBER_COLS} FROM numbers WHERE phone_number = $1"
    ))
    .bind(phone)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(number))
}

pub async fn tenant_number_by_phone(
    db: &Db,
    tenant_id: &str,
    phone: &str,
) -> DbResult<Option<Number>> {
    let row = sqlx::query(&format!(
        "SELECT {NUMBER_COLS} FROM numbers WHERE phone_number = $1 AND tenant_id = $2"
    ))
    .bind(phone)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(number))
}

pub async fn list_numbers(db: &Db, tenant_id: &str) -> DbResult<Vec<Number>> {
    let rows = sqlx::query(&format!(
        "SELECT {NUMBER_COLS} FROM numbers WHERE tenant_id = $1 ORDER BY created_at, id"
    ))
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(number).collect())
}

/// Every number of every tenant (for pointing webhooks at ourselves at start).
pub async fn all_numbers(db: &Db) -> DbResult<Vec<Number>> {
    let rows = sqlx::query(&format!(
        "SELECT {NUMBER_COLS} FROM numbers ORDER BY created_at, id"
    ))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(number).collect())
}

/// Reserves the sender's next send slot, if it starts within `horizon_ms`; `cost_ms` is the
/// time the message's segments take at the number's rate. Returns when the slot starts, or
/// when the sender is next free. Shared by all replicas through the row; written through the
/// group-commit writer (on SQLite a write elsewhere would wait on the writer's lock).
pub async fn reserve_slot(
    db: &Db,
    number_id: &str,
    now: i64,
    cost_ms: i64,
    horizon_ms: i64,
) -> DbResult<Result<i64, i64>> {
    let number_id = number_id.to_string();
    db.write(move |tx| {
        let number_id = number_id.clone();
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE numbers SET next_slot_at = (CASE WHEN next_slot_at > $1 THEN next_slot_at ELSE $1 END) + $2 \
                 WHERE id = $3 AND next_slot_at <= $4 RETURNING next_slot_at",
            )
            .bind(now)
            .bind(cost_ms)
            .bind(&number_id)
            .bind(now + horizon_ms)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(r) = r {
                return Ok(Ok(r.get::<i64, _>("next_slot_at") - cost_ms));
            }
            let free = sqlx::query("SELECT next_slot_at FROM numbers WHERE id = $1")
                .bind(&number_id)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(Err(free.map(|r| r.get::<i64, _>("next_slot_at")).unwrap_or(0)))
        })
    })
    .await
}
