//! Inbound media: one row per attachment, downloaded into storage by a worker.

use super::Tx;
use crate::db::{opt_str, Db, DbResult, Row};
use crate::messaging::Media;

/// An attachment of a message received, to fetch.
pub struct NewMedia<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub message_id: &'a str,
    pub position: i64,
    pub url: &'a str,
    pub content_type: Option<&'a str>,
    pub now: i64,
}

pub async fn insert_media(tx: &mut Tx, m: &NewMedia<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO media (id, tenant_id, message_id, position, source_url, content_type, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(m.id)
    .bind(m.tenant_id)
    .bind(m.message_id)
    .bind(m.position)
    .bind(m.url)
    .bind(m.content_type)
    .bind(m.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A message's media, in order.
pub async fn media_of(db: &Db, tenant_id: &str, message_id: &str) -> DbResult<Vec<Media>> {
    let rows = sqlx::query(
        "SELECT id, content_type, size, status, error FROM media WHERE message_id = $1 AND tenant_id = $2 ORDER BY position",
    )
    .bind(message_id)
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id: String = r.get("id");
            Media {
                url: format!("/v1/media/{id}"),
                id,
                content_type: opt_str(r, "content_type"),
                size: r.try_get::<Option<i64>, _>("size").ok().flatten(),
                status: r.get("status"),
                error: opt_str(r, "error"),
            }
        })
        .collect())
}

/// A media's status, storage key and content type.
pub async fn media_file(
    db: &Db,
    tenant_id: &str,
    id: &str,
) -> DbResult<Option<(String, Option<String>, Option<String>)>> {
    let r = sqlx::query(
        "SELECT content_type, storage_key, status FROM media WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| {
        (
            r.get("status"),
            opt_str(&r, "storage_key"),
            opt_str(&r, "content_type"),
        )
    }))
}

/// Where a media still to fetch is at Twilio; None once it is stored or failed.
pub async fn pending_media_source(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<String>> {
    let r = sqlx::query("SELECT source_url, status FROM media WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.filter(|r| r.get::<String, _>("status") == "pending")
        .map(|r| r.get("source_url")))
}

pub async fn media_stored(
    db: &Db,
    id: &str,
    key: &str,
    size: i64,
    content_type: Option<&str>,
    attempts: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE media SET status = 'stored', storage_key = $1, size = $2, content_type = COALESCE($3, content_type), \
         error = NULL, attempts = $4 WHERE id = $5",
    )
    .bind(key)
    .bind(size)
    .bind(content_type)
    .bind(attempts)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The latest error of a download that will be tried again.
pub async fn media_error(db: &Db, id: &str, error: &str, attempts: i64) -> DbResult<()> {
    sqlx::query("UPDATE media SET error = $1, attempts = $2 WHERE id = $3")
        .bind(error)
        .bind(attempts)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn media_failed(db: &Db, id: &str, error: &str) -> DbResult<()> {
    sqlx::query("UPDATE media SET status = 'failed', error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}
