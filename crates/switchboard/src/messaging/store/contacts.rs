//! Contacts: a tenant's people by phone number, with free-form attributes.

use crate::db::{opt_str, Db, DbResult, Row};
use crate::ids::new_id;
use crate::messaging::contacts::Contact;
use crate::messaging::iso;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;

fn contact_row(r: &AnyRow) -> Contact {
    let attrs: Map<String, Value> =
        serde_json::from_str(&r.get::<String, _>("attributes")).unwrap_or_default();
    Contact {
        id: r.get("id"),
        phone: r.get("phone"),
        name: opt_str(r, "name"),
        attributes: attrs,
        created_at: iso(r.get("created_at")),
        updated_at: iso(r.get("updated_at")),
        created_ms: r.get("created_at"),
    }
}

pub async fn contact_by_phone(db: &Db, tenant_id: &str, phone: &str) -> DbResult<Option<Contact>> {
    let r = sqlx::query("SELECT id, phone, name, attributes, created_at, updated_at FROM contacts WHERE tenant_id = $1 AND phone = $2")
        .bind(tenant_id)
        .bind(phone)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(contact_row))
}

pub async fn contact_by_id(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Contact>> {
    let r = sqlx::query("SELECT id, phone, name, attributes, created_at, updated_at FROM contacts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(contact_row))
}

/// Creates the contact, or updates the one with this phone number.
pub async fn save_contact(
    db: &Db,
    tenant_id: &str,
    phone: &str,
    name: Option<&str>,
    attributes: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO contacts (id, tenant_id, phone, name, attributes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (tenant_id, phone) DO UPDATE SET name = $4, attributes = $5, updated_at = $6",
    )
    .bind(new_id("con"))
    .bind(tenant_id)
    .bind(phone)
    .bind(name)
    .bind(attributes)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update_contact(
    db: &Db,
    tenant_id: &str,
    id: &str,
    name: Option<&str>,
    attributes: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE contacts SET name = $1, attributes = $2, updated_at = $3 WHERE id = $4 AND tenant_id = $5")
        .bind(name)
        .bind(attributes)
        .bind(now)
        .bind(id)
        .bind(tenant_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Contacts newest first, one page after `before` (created time, id).
pub async fn contacts_page(
    db: &Db,
    tenant_id: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> DbResult<Vec<Contact>> {
    let rows = sqlx::query(
        "SELECT id, phone, name, attributes, created_at, updated_at FROM contacts WHERE tenant_id = $1 \
         AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(tenant_id)
    .bind(before.as_ref().map(|b| b.0))
    .bind(before.as_ref().map(|b| b.1.clone()))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(contact_row).collect())
}
