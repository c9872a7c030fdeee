//! Opt-outs (STOP and START) and the keyword log.

use super::Tx;
use crate::db::{now_ms, opt_str, Db, DbResult, Row};
use crate::ids::new_id;
use crate::messaging::iso;

/// Records an opt-out (or opt-in) of `phone` from messages sent by `sender`.
pub async fn set_opt_out(
    tx: &mut Tx,
    tenant_id: &str,
    sender: &str,
    phone: &str,
    opted_out: bool,
    keyword: &str,
    source: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO opt_outs (tenant_id, sender, phone, opted_out, keyword, source, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, sender, phone) DO UPDATE SET opted_out = $4, keyword = $5, source = $6, updated_at = $7",
    )
    .bind(tenant_id)
    .bind(sender)
    .bind(phone)
    .bind(opted_out as i64)
    .bind(keyword)
    .bind(source)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a STOP/START/HELP-family keyword as received.
pub async fn log_keyword(
    tx: &mut Tx,
    tenant_id: &str,
    sender: &str,
    phone: &str,
    keyword: &str,
    body: &str,
    message_id: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO keyword_log (id, tenant_id, sender, phone, keyword, body, message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("kw"))
    .bind(tenant_id)
    .bind(sender)
    .bind(phone)
    .bind(keyword)
    .bind(body)
    .bind(message_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OptOut {
    pub sender: String,
    pub phone: String,
    pub opted_out: bool,
    pub keyword: String,
    pub source: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeywordEntry {
    pub id: String,
    pub sender: String,
    pub phone: String,
    pub keyword: String,
    pub body: String,
    pub message_id: Option<String>,
    pub created_at: String,
}

/// The opt-out ledger (current state per sender and phone) and the keyword log, newest first.
pub async fn compliance(
    db: &Db,
    tenant_id: &str,
    limit: i64,
) -> DbResult<(Vec<OptOut>, Vec<KeywordEntry>)> {
    let rows = sqlx::query(
        "SELECT sender, phone, opted_out, keyword, source, updated_at FROM opt_outs WHERE tenant_id = $1 \
         ORDER BY updated_at DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let ledger = rows
        .iter()
        .map(|r| OptOut {
            sender: r.get("sender"),
            phone: r.get("phone"),
            opted_out: r.get::<i64, _>("opted_out") != 0,
            keyword: r.get("keyword"),
            source: r.get("source"),
            updated_at: iso(r.get("updated_at")),
        })
        .collect();
    let rows = sqlx::query(
        "SELECT id, sender, phone, keyword, body, message_id, created_at FROM keyword_log WHERE tenant_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let log = rows
        .iter()
        .map(|r| KeywordEntry {
            id: r.get("id"),
            sender: r.get("sender"),
            phone: r.get("phone"),
            keyword: r.get("keyword"),
            body: r.get("body"),
            message_id: opt_str(r, "message_id"),
            created_at: iso(r.get("created_at")),
        })
        .collect();
    Ok((ledger, log))
}

pub async fn is_opted_out<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    tenant_id: &str,
    sender: &str,
    phone: &str,
) -> DbResult<bool> {
    let r = sqlx::query(
        "SELECT opted_out FROM opt_outs WHERE tenant_id = $1 AND sender = $2 AND phone = $3",
    )
    .bind(tenant_id)
    .bind(sender)
    .bind(phone)
    .fetch_optional(ex)
    .await?;
    Ok(r.is_some_and(|r| r.get::<i64, _>("opted_out") != 0))
}
