//! Inbound media: recorded with the message, then downloaded into storage by a worker that
//! retries while Twilio answers 404 (media is not always ready when the webhook arrives). Twilio
//! credentials go only to URLs under the configured Twilio base; other hosts are refused.

use super::store::Tx;
use super::Media;
use crate::db::{now_ms, opt_str, Db, DbResult, Row};
use crate::error::{ApiError, ApiResult};
use crate::ids::new_id;
use crate::App;

pub async fn insert_pending(
    tx: &mut Tx,
    tenant_id: &str,
    message_id: &str,
    position: i64,
    url: &str,
    content_type: Option<&str>,
) -> DbResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO media (id, tenant_id, message_id, position, source_url, content_type, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(new_id("med"))
    .bind(tenant_id)
    .bind(message_id)
    .bind(position)
    .bind(url)
    .bind(content_type)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

struct Due {
    id: String,
    tenant_id: String,
    url: String,
    attempts: i64,
}

/// Downloads due media.
pub async fn work(app: &App) -> DbResult<super::dispatch::Round> {
    let now = now_ms();
    let lease = now + 60_000;
    let rows = sqlx::query(
        "SELECT id, tenant_id, source_url, attempts FROM media WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 16",
    )
    .bind(now)
    .fetch_all(app.db().pool())
    .await?;
    let mut handled = 0;
    for r in rows {
        let d = Due {
            id: r.get("id"),
            tenant_id: r.get("tenant_id"),
            url: r.get("source_url"),
            attempts: r.get("attempts"),
        };
        // Claim: push the next attempt into the future so no other worker takes it meanwhile.
        let claimed = sqlx::query("UPDATE media SET next_attempt_at = $1, attempts = attempts + 1 WHERE id = $2 AND status = 'pending' AND next_attempt_at <= $3")
            .bind(lease)
            .bind(&d.id)
            .bind(now)
            .execute(app.db().pool())
            .await?
            .rows_affected()
            == 1;
        if claimed {
            download(app, &d).await?;
            handled += 1;
        }
    }
    Ok(super::dispatch::Round {
        moved: handled,
        wake_at: None,
    })
}

async fn download(app: &App, d: &Due) -> DbResult<()> {
    let attempt = d.attempts + 1;
    let client = match app.twilio(&d.tenant_id).await {
        Ok(c) => c,
        Err(_) => {
            return finish(
                app,
                &d.id,
                Err(("failed", "the tenant has no Twilio credentials".into())),
            )
            .await
        }
    };
    if !client.base().covers(&d.url) {
        return finish(
            app,
            &d.id,
            Err((
                "failed",
                format!("refused: {} is not a Twilio media URL", d.url),
            )),
        )
        .await;
    }
    match client.download(&d.url, app.config().max_media_bytes).await {
        Ok((ct, bytes)) => {
            let key = format!("media/{}/{}", d.tenant_id, d.id);
            if let Err(e) = app.storage().put(&key, &bytes).await {
                tracing::error!(error = %e, "cannot store media");
                return retry(app, &d.id, attempt, &format!("storage: {e}")).await;
            }
            sqlx::query("UPDATE media SET status = 'stored', storage_key = $1, size = $2, content_type = COALESCE($3, content_type), error = NULL WHERE id = $4")
                .bind(key)
                .bind(bytes.len() as i64)
                .bind(ct.map(|c| c.split(';').next().unwrap_or_default().trim().to_string()))
                .bind(&d.id)
                .execute(app.db().pool())
                .await?;
            Ok(())
        }
        // Not there yet, rate limited, or a passing fault: try again later.
        Err(e) if e.status() == Some(404) || e.is_retryable() => {
            retry(app, &d.id, attempt, &e.to_string()).await
        }
        Err(e) => finish(app, &d.id, Err(("failed", e.to_string()))).await,
    }
}

async fn retry(app: &App, id: &str, attempt: i64, error: &str) -> DbResult<()> {
    if attempt >= app.config().workers.media_max_attempts {
        return finish(
            app,
            id,
            Err((
                "failed",
                format!("gave up after {attempt} attempts: {error}"),
            )),
        )
        .await;
    }
    let delay = crate::workers::backoff(app.config().workers.backoff_base, attempt);
    sqlx::query(
        "UPDATE media SET next_attempt_at = $1, error = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(now_ms() + delay.as_millis() as i64)
    .bind(error)
    .bind(id)
    .execute(app.db().pool())
    .await?;
    Ok(())
}

async fn finish(app: &App, id: &str, outcome: Result<(), (&str, String)>) -> DbResult<()> {
    if let Err((status, error)) = outcome {
        tracing::warn!(media_id = id, %error, "media download failed");
        sqlx::query("UPDATE media SET status = $1, error = $2 WHERE id = $3")
            .bind(status)
            .bind(error)
            .bind(id)
            .execute(app.db().pool())
            .await?;
    }
    Ok(())
}
