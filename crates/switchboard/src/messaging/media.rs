//! Inbound media: recorded with the message, then downloaded into storage by a worker that
//! retries while Twilio answers 404 (media is not always ready when the webhook arrives). Twilio
//! credentials go only to URLs under the configured Twilio base; other hosts are refused.

use super::store::Tx;
use super::Media;
use crate::db::{now_ms, opt_str, Db, DbResult, Row};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::queue::{self, Job, Outcome, Worker};
use crate::App;
use std::time::Duration;

pub async fn insert_pending(
    tx: &mut Tx,
    tenant_id: &str,
    message_id: &str,
    position: i64,
    url: &str,
    content_type: Option<&str>,
) -> DbResult<()> {
    let now = now_ms();
    let id = new_id("med");
    sqlx::query(
        "INSERT INTO media (id, tenant_id, message_id, position, source_url, content_type, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(message_id)
    .bind(position)
    .bind(url)
    .bind(content_type)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    queue::enqueue(tx, WORKER.kind, &id, tenant_id, now).await
}

pub async fn for_message(db: &Db, tenant_id: &str, message_id: &str) -> DbResult<Vec<Media>> {
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

/// The stored bytes of a tenant's media.
pub async fn content(app: &App, tenant_id: &str, id: &str) -> ApiResult<(String, Vec<u8>)> {
    let r = sqlx::query(
        "SELECT content_type, storage_key, status FROM media WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(app.db().pool())
    .await
    .map_err(crate::db::DbError::from)?
    .ok_or_else(|| ApiError::not_found("media"))?;
    let status: String = r.get("status");
    let key = opt_str(&r, "storage_key");
    let Some(key) = key.filter(|_| status == "stored") else {
        return Err(ApiError::conflict(
            "media_not_ready",
            format!("this media is {status}, not stored yet"),
        ));
    };
    let bytes = app.storage().get(&key).await.map_err(|e| {
        tracing::error!(error = %e, key, "stored media is missing");
        ApiError::internal()
    })?;
    let ct = opt_str(&r, "content_type").unwrap_or_else(|| "application/octet-stream".into());
    Ok((ct, bytes))
}

/// Downloading inbound media into storage.
pub const WORKER: Worker = Worker {
    kind: "media",
    lease: |_| Duration::from_secs(60),
    max_attempts: |c| c.workers.media_max_attempts,
    batch: 16,
    parallel: 4,
    run: |app, job| Box::pin(async move { download(&app, &job).await }),
    give_up: |app, job, error| {
        Box::pin(async move { mark_failed(&app, &job.subject_id, &error).await })
    },
};

async fn download(app: &App, job: &Job) -> DbResult<Outcome> {
    let r = sqlx::query("SELECT source_url, status FROM media WHERE id = $1 AND tenant_id = $2")
        .bind(&job.subject_id)
        .bind(&job.tenant_id)
        .fetch_optional(app.db().pool())
        .await?;
    let Some(r) = r.filter(|r| r.get::<String, _>("status") == "pending") else {
        return Ok(Outcome::Done);
    };
    let url: String = r.get("source_url");
    let (id, tenant_id) = (&job.subject_id, &job.tenant_id);
    let client = match app.twilio(tenant_id).await {
        Ok(c) => c,
        Err(_) => return fail(app, id, "the tenant has no Twilio credentials".into()).await,
    };
    if !client.base().covers(&url) {
        return fail(app, id, format!("refused: {url} is not a Twilio media URL")).await;
    }
    match client.download(&url, app.config().max_media_bytes).await {
        Ok((ct, bytes)) => {
            let key = format!("media/{tenant_id}/{id}");
            if let Err(e) = app.storage().put(&key, &bytes).await {
                tracing::error!(error = %e, "cannot store media");
                return Ok(Outcome::Retry {
                    error: format!("storage: {e}"),
                    after: None,
                });
            }
            sqlx::query("UPDATE media SET status = 'stored', storage_key = $1, size = $2, content_type = COALESCE($3, content_type), error = NULL, attempts = $4 WHERE id = $5")
                .bind(key)
                .bind(bytes.len() as i64)
                .bind(ct.map(|c| c.split(';').next().unwrap_or_default().trim().to_string()))
                .bind(job.attempts)
                .bind(id)
                .execute(app.db().pool())
                .await?;
            Ok(Outcome::Done)
        }
        // Not there yet, rate limited, or a passing fault: try again later.
        Err(e) if e.status() == Some(404) || e.is_retryable() => {
            sqlx::query("UPDATE media SET error = $1, attempts = $2 WHERE id = $3")
                .bind(e.to_string())
                .bind(job.attempts)
                .bind(id)
                .execute(app.db().pool())
                .await?;
            Ok(Outcome::Retry {
                error: e.to_string(),
                after: None,
            })
        }
        Err(e) => fail(app, id, e.to_string()).await,
    }
}

async fn fail(app: &App, id: &str, error: String) -> DbResult<Outcome> {
    mark_failed(app, id, &error).await?;
    Ok(Outcome::Failed { error })
}

async fn mark_failed(app: &App, id: &str, error: &str) -> DbResult<()> {
    tracing::warn!(media_id = id, %error, "media download failed");
    sqlx::query("UPDATE media SET status = 'failed', error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(app.db().pool())
        .await?;
    Ok(())
}
