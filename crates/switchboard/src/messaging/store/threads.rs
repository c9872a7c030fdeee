//! Contacts and conversations (one thread per contact and number).

use super::Tx;
use crate::db::{opt_str, placeholders, Db, DbResult, Row};
use crate::ids::new_id;
use crate::messaging::iso;

/// Upserts the contact for `phone` and returns its id (one statement).
pub async fn upsert_contact(
    tx: &mut Tx,
    tenant_id: &str,
    phone: &str,
    now: i64,
) -> DbResult<String> {
    let mut ids = upsert_contacts(tx, &[(tenant_id, phone)], now).await?;
    ids.pop().ok_or(sqlx::Error::RowNotFound.into())
}

/// Upserts contacts by (tenant, phone) in one statement; returns their ids in the same order.
/// A pair given twice is upserted once.
pub async fn upsert_contacts(
    tx: &mut Tx,
    keys: &[(&str, &str)],
    now: i64,
) -> DbResult<Vec<String>> {
    let distinct = distinct(keys);
    let sql = format!(
        "INSERT INTO contacts (id, tenant_id, phone, attributes, created_at, updated_at) VALUES {} \
         ON CONFLICT (tenant_id, phone) DO UPDATE SET phone = excluded.phone RETURNING id, tenant_id, phone",
        placeholders(tx, distinct.len(), 6)
    );
    let mut q = sqlx::query(&sql);
    for (tenant_id, phone) in &distinct {
        q = q
            .bind(new_id("con"))
            .bind(*tenant_id)
            .bind(*phone)
            .bind("{}")
            .bind(now)
            .bind(now);
    }
    let found: std::collections::HashMap<(String, String), String> = q
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| ((r.get("tenant_id"), r.get("phone")), r.get("id")))
        .collect();
    keys.iter()
        .map(|(t, p)| {
            found
                .get(&(t.to_string(), p.to_string()))
                .cloned()
                .ok_or(sqlx::Error::RowNotFound.into())
        })
        .collect()
}

/// Upserts the thread between a contact and one of the tenant's numbers, touching its time,
/// and returns its id (one statement).
pub async fn upsert_conversation(
    tx: &mut Tx,
    tenant_id: &str,
    contact_id: &str,
    number_id: &str,
    now: i64,
) -> DbResult<String> {
    let mut ids = upsert_conversations(tx, &[(tenant_id, contact_id, number_id)], now).await?;
    ids.pop().ok_or(sqlx::Error::RowNotFound.into())
}

/// Upserts threads by (tenant, contact, number) in one statement; returns their ids in order.
pub async fn upsert_conversations(
    tx: &mut Tx,
    keys: &[(&str, &str, &str)],
    now: i64,
) -> DbResult<Vec<String>> {
    let distinct = distinct(keys);
    let sql = format!(
        "INSERT INTO conversations (id, tenant_id, contact_id, number_id, last_message_at, created_at) VALUES {} \
         ON CONFLICT (tenant_id, contact_id, number_id) DO UPDATE SET last_message_at = excluded.last_message_at \
         RETURNING id, tenant_id, contact_id, number_id",
        placeholders(tx, distinct.len(), 6)
    );
    let mut q = sqlx::query(&sql);
    for (tenant_id, contact_id, number_id) in &distinct {
        q = q
            .bind(new_id("cnv"))
            .bind(*tenant_id)
            .bind(*contact_id)
            .bind(*number_id)
            .bind(now)
            .bind(now);
    }
    let found: std::collections::HashMap<(String, String, String), String> = q
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| {
            (
                (r.get("tenant_id"), r.get("contact_id"), r.get("number_id")),
                r.get("id"),
            )
        })
        .collect();
    keys.iter()
        .map(|(t, c, n)| {
            found
                .get(&(t.to_string(), c.to_string(), n.to_string()))
                .cloned()
                .ok_or(sqlx::Error::RowNotFound.into())
        })
        .collect()
}

/// The keys each once (one statement may not upsert a row twice), sorted: concurrent batches
/// then lock their rows in one order and cannot deadlock each other.
fn distinct<K: Ord + Copy>(keys: &[K]) -> Vec<K> {
    let mut out = keys.to_vec();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Conversation {
    pub id: String,
    pub contact_id: String,
    pub contact_phone: String,
    pub contact_name: Option<String>,
    pub number_id: String,
    pub number: String,
    pub last_message_at: String,
    pub created_at: String,
    #[serde(skip)]
    pub last_ms: i64,
}

pub async fn conversations(
    db: &Db,
    tenant_id: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> DbResult<Vec<Conversation>> {
    let (cond, t, id) = match &before {
        Some((t, id)) => (
            "AND (c.last_message_at < $2 OR (c.last_message_at = $2 AND c.id < $3))",
            *t,
            id.clone(),
        ),
        None => ("AND $2 = $2 AND $3 = $3", 0, String::new()),
    };
    let rows = sqlx::query(&format!(
        "SELECT c.id, c.contact_id, k.phone, k.name, c.number_id, n.phone_number, c.last_message_at, c.created_at \
         FROM conversations c JOIN contacts k ON k.id = c.contact_id JOIN numbers n ON n.id = c.number_id \
         WHERE c.tenant_id = $1 {cond} ORDER BY c.last_message_at DESC, c.id DESC LIMIT $4"
    ))
    .bind(tenant_id)
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| Conversation {
            id: r.get("id"),
            contact_id: r.get("contact_id"),
            contact_phone: r.get("phone"),
            contact_name: opt_str(r, "name"),
            number_id: r.get("number_id"),
            number: r.get("phone_number"),
            last_ms: r.get("last_message_at"),
            last_message_at: iso(r.get("last_message_at")),
            created_at: iso(r.get("created_at")),
        })
        .collect())
}

pub async fn conversation_exists(db: &Db, tenant_id: &str, id: &str) -> DbResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM conversations WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(db.pool())
            .await?
            .is_some(),
    )
}

/// The number the tenant last used with this contact (sticky sender), if any.
pub async fn last_number_for(db: &Db, tenant_id: &str, phone: &str) -> DbResult<Option<String>> {
    let r = sqlx::query(
        "SELECT c.number_id FROM conversations c JOIN contacts k ON k.id = c.contact_id \
         WHERE c.tenant_id = $1 AND k.phone = $2 ORDER BY c.last_message_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(phone)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| r.get("number_id")))
}
