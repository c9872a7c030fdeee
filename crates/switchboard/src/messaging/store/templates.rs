//! Message templates, by id or unique name within a tenant.

use crate::db::{Db, DbResult, Row};
use crate::messaging::iso;
use crate::messaging::templates::{variables, Template};
use sqlx::any::AnyRow;

const COLS: &str = "id, name, body, created_at, updated_at";

fn template_row(r: &AnyRow) -> Template {
    let body: String = r.get("body");
    Template {
        id: r.get("id"),
        name: r.get("name"),
        variables: variables(&body).unwrap_or_default(),
        body,
        created_at: iso(r.get("created_at")),
        updated_at: iso(r.get("updated_at")),
    }
}

/// A template by id or by name.
pub async fn find_template(
    db: &Db,
    tenant_id: &str,
    id_or_name: &str,
) -> DbResult<Option<Template>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM templates WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
    ))
    .bind(tenant_id)
    .bind(id_or_name)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(template_row))
}

/// The tenant's templates by name.
pub async fn templates(db: &Db, tenant_id: &str) -> DbResult<Vec<Template>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM templates WHERE tenant_id = $1 ORDER BY name"
    ))
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(template_row).collect())
}

/// A new template; a name the tenant already uses is a unique violation.
pub async fn insert_template(
    db: &Db,
    tenant_id: &str,
    id: &str,
    name: &str,
    body: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO templates (id, tenant_id, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(name)
    .bind(body)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update_template(
    db: &Db,
    tenant_id: &str,
    id: &str,
    name: &str,
    body: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE templates SET name = $1, body = $2, updated_at = $3 WHERE id = $4 AND tenant_id = $5",
    )
    .bind(name)
    .bind(body)
    .bind(now)
    .bind(id)
    .bind(tenant_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn delete_template(db: &Db, tenant_id: &str, id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM templates WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
