//! Inbound media: recorded with the message, then downloaded into storage by a worker that
//! retries while Twilio answers 404 (media is not always ready when the webhook arrives). Twilio
//! credentials go only to URLs under the configured Twilio base; other hosts are refused.

use super::store::{self, Tx};
use super::Media;
use crate::db::{now_ms, Db, DbResult};
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
    let m = store::NewMedia {
        id: &id,
        tenant_id,
        message_id,
        position,
        url,
        content_type,
        now,
    };
    store::insert_media(tx, &m).await?;
    queue::enqueue(tx, WORKER.kind, &id, tenant_id, now).await
}

pub async fn for_message(db: &Db, tenant_id: &str, message_id: &str) -> DbResult<Vec<Media>> {
    store::media_of(db, tenant_id, message_id).await
}

/// The stored bytes of a tenant's media.
pub async fn content(app: &App, tenant_id: &str, id: &str) -> ApiResult<(String, Vec<u8>)> {
    let (status, key, content_type) = store::media_file(app.db(), tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("media"))?;
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
    let ct = content_type.unwrap_or_else(|| "application/octet-stream".into());
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
    let Some(url) = store::pending_media_source(app.db(), &job.tenant_id, &job.subject_id).await?
    else {
        return Ok(Outcome::Done);
    };
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
            let ct = ct.map(|c| c.split(';').next().unwrap_or_default().trim().to_string());
            let size = bytes.len() as i64;
            store::media_stored(app.db(), id, &key, size, ct.as_deref(), job.attempts).await?;
            Ok(Outcome::Done)
        }
        // Not there yet, rate limited, or a passing fault: try again later.
        Err(e) if e.status() == Some(404) || e.is_retryable() => {
            store::media_error(app.db(), id, &e.to_string(), job.attempts).await?;
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
    store::media_failed(app.db(), id, error).await
}
