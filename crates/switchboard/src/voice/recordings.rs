//! Recordings and voicemails. Twilio's recording callbacks become rows; a worker downloads the
//! audio into storage (retrying while Twilio says it is not ready; credentials only to Twilio),
//! optionally deletes it at Twilio once copied, and transcribes voicemails with an
//! OpenAI-compatible speech-to-text endpoint when one is configured (Twilio's own transcription
//! otherwise). Failures are recorded and retried, never lost.

use super::calls::Call;
use crate::db::{now_ms, opt_str, Db, DbError, DbResult, Row};
use crate::error::{ApiError, ApiResult};
use crate::http::webhook::{security_event, Webhook};
use crate::http::{Auth, JsonBody, PathId, QueryParams};
use crate::ids::new_id;
use crate::messaging::iso;
use crate::queue::{self, Job, Outcome, Worker};
use crate::App;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use std::time::Duration;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/voicemails", get(list))
        .route("/v1/voicemails/{id}", get(fetch).patch(update))
        .route("/v1/recordings/{id}/media", get(media))
}

#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    pub id: String,
    pub call_id: String,
    pub twilio_sid: String,
    pub kind: String,
    pub duration: Option<i64>,
    pub status: String,
    pub content_type: Option<String>,
    pub size: Option<i64>,
    pub error: Option<String>,
    pub media_url: String,
    pub created_at: String,
}

fn recording(r: &AnyRow) -> Recording {
    let id: String = r.get("id");
    Recording {
        media_url: format!("/v1/recordings/{id}/media"),
        id,
        call_id: r.get("call_id"),
        twilio_sid: r.get("twilio_sid"),
        kind: r.get("kind"),
        duration: r.try_get::<Option<i64>, _>("duration").ok().flatten(),
        status: r.get("status"),
        content_type: opt_str(r, "content_type"),
        size: r.try_get::<Option<i64>, _>("size").ok().flatten(),
        error: opt_str(r, "error"),
        created_at: iso(r.get("created_at")),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Voicemail {
    pub id: String,
    pub call_id: String,
    pub recording_id: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub transcription_status: String,
    pub transcription_source: Option<String>,
    pub transcription: Option<String>,
    pub transcription_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    created_ms: i64,
}

const VM_COLS: &str = "id, call_id, recording_id, from_number, to_number, status, transcription_status, transcription_source, \
    transcription_text, transcription_error, created_at, updated_at";

fn voicemail(r: &AnyRow) -> Voicemail {
    Voicemail {
        id: r.get("id"),
        call_id: r.get("call_id"),
        recording_id: r.get("recording_id"),
        from: r.get("from_number"),
        to: r.get("to_number"),
        status: r.get("status"),
        transcription_status: r.get("transcription_status"),
        transcription_source: opt_str(r, "transcription_source"),
        transcription: opt_str(r, "transcription_text"),
        transcription_error: opt_str(r, "transcription_error"),
        created_ms: r.get("created_at"),
        created_at: iso(r.get("created_at")),
        updated_at: iso(r.get("updated_at")),
    }
}

/// The recording a callback names, checked: its id is Twilio's and its audio is a recording
/// of the account that signed the webhook (never another account's URL).
fn reported_recording(hook: &Webhook) -> ApiResult<Option<(String, String)>> {
    let form = &hook.form;
    let (Some(sid), Some(url)) = (
        form.non_empty("RecordingSid"),
        form.non_empty("RecordingUrl"),
    ) else {
        return Ok(None);
    };
    let own = format!("/Accounts/{}/Recordings/{sid}", hook.account_sid);
    let path = url::Url::parse(url)
        .map(|u| {
            u.path()
                .trim_end_matches(".json")
                .trim_end_matches(".wav")
                .to_string()
        })
        .unwrap_or_default();
    if !path.ends_with(&own) {
        security_event(&hook.account_sid, "recording url", sid);
        return Err(ApiError::bad_request(
            "invalid_webhook",
            "RecordingUrl is not this account's recording",
        ));
    }
    Ok(Some((sid.to_string(), url.to_string())))
}

/// Checks what a recording or transcription callback names before anything of it is kept:
/// the RecordingSid must not be another account's or another call's, and the RecordingUrl
/// must be the signing account's.
pub async fn check_reported(app: &App, hook: &Webhook, c: &Call) -> ApiResult<()> {
    let Some(sid) = hook.form.non_empty("RecordingSid") else {
        return Ok(());
    };
    if hook.form.non_empty("RecordingUrl").is_some() {
        reported_recording(hook)?;
    }
    let owner =
        sqlx::query("SELECT call_id FROM recordings WHERE twilio_sid = $1 AND tenant_id = $2")
            .bind(sid)
            .bind(&c.tenant_id)
            .fetch_optional(app.db().pool())
            .await
            .map_err(DbError::from)?;
    let elsewhere =
        super::store::sid_elsewhere(app.db().pool(), "recordings", &hook.tenants, sid).await?;
    if elsewhere.is_some() || owner.is_some_and(|r| r.get::<String, _>("call_id") != c.id) {
        security_event(&hook.account_sid, "recording", sid);
        return Err(ApiError::forbidden(
            "this RecordingSid belongs to another call",
        ));
    }
    Ok(())
}

/// Records a recording Twilio reported (once per RecordingSid within the tenant) and returns
/// its id. A RecordingSid another account has, or another call of this tenant has, is refused.
async fn upsert_recording(
    app: &App,
    hook: &Webhook,
    c: &Call,
    kind: &str,
) -> ApiResult<Option<String>> {
    let Some((sid, url)) = reported_recording(hook)? else {
        return Ok(None);
    };
    let duration = hook
        .form
        .get("RecordingDuration")
        .and_then(|d| d.parse::<i64>().ok());
    let now = now_ms();
    let args = std::sync::Arc::new((
        c.tenant_id.clone(),
        c.id.clone(),
        sid.clone(),
        url,
        kind.to_string(),
        hook.tenants.clone(),
    ));
    let id = app
        .db()
        .write(move |tx| {
            let args = args.clone();
            Box::pin(async move {
                let (tenant_id, call_id, sid, url, kind, tenants) = &*args;
                if super::store::sid_elsewhere(&mut **tx, "recordings", tenants, sid)
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
                let id = new_id("rec");
                let inserted = sqlx::query(
                    "INSERT INTO recordings (id, tenant_id, call_id, twilio_sid, source_url, duration, kind, status, attempts, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(tenant_id)
                .bind(call_id)
                .bind(sid)
                .bind(url)
                .bind(duration)
                .bind(kind)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    queue::enqueue(tx, WORKER.kind, &id, tenant_id, now).await?;
                    return Ok(Some(id));
                }
                let r = sqlx::query("SELECT id FROM recordings WHERE twilio_sid = $1 AND tenant_id = $2 AND call_id = $3")
                    .bind(sid)
                    .bind(tenant_id)
                    .bind(call_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                Ok(r.map(|r| r.get::<String, _>("id")))
            })
        })
        .await?;
    match id {
        Some(id) => Ok(Some(id)),
        None => {
            security_event(&hook.account_sid, "recording", &sid);
            Err(ApiError::forbidden(
                "this RecordingSid belongs to another call",
            ))
        }
    }
}

/// A voicemail's `<Record>` finished: the recording and the voicemail are stored at once.
pub async fn voicemail_recorded(
    app: &App,
    hook: &Webhook,
    c: &Call,
    transcribe: bool,
) -> ApiResult<()> {
    let Some(rec_id) = upsert_recording(app, hook, c, "voicemail").await? else {
        return Ok(());
    };
    sqlx::query("UPDATE recordings SET kind = 'voicemail' WHERE id = $1 AND tenant_id = $2 AND call_id = $3")
        .bind(&rec_id)
        .bind(&c.tenant_id)
        .bind(&c.id)
        .execute(app.db().pool())
        .await
        .map_err(DbError::from)?;
    let (status, source) = match (transcribe, app.config().stt.is_some()) {
        (false, _) => ("none", None),
        (true, true) => ("pending", Some("stt")),
        (true, false) => ("pending", Some("twilio")),
    };
    let now = now_ms();
    let (tenant_id, call_id, from, to) = (
        c.tenant_id.clone(),
        c.id.clone(),
        c.from.clone(),
        c.to.clone(),
    );
    app.db()
        .write(move |tx| {
            let (tenant_id, call_id, from, to, rec_id) = (
                tenant_id.clone(),
                call_id.clone(),
                from.clone(),
                to.clone(),
                rec_id.clone(),
            );
            Box::pin(async move {
                let id = new_id("vm");
                let inserted = sqlx::query(
                    "INSERT INTO voicemails (id, tenant_id, call_id, recording_id, from_number, to_number, status, transcription_status, \
                     transcription_source, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8, $9, $9) \
                     ON CONFLICT (recording_id) DO NOTHING",
                )
                .bind(&id)
                .bind(&tenant_id)
                .bind(&call_id)
                .bind(&rec_id)
                .bind(&from)
                .bind(&to)
                .bind(status)
                .bind(source)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted && source == Some("stt") {
                    queue::enqueue(tx, TRANSCRIPTIONS.kind, &id, &tenant_id, now).await?;
                }
                Ok(())
            })
        })
        .await?;
    if let Some(sid) = hook.form.non_empty("RecordingSid") {
        apply_twilio_transcription(app.db(), &c.tenant_id, sid).await?;
    }
    app.work_queued();
    Ok(())
}

/// A recording status callback: call recordings and dialled-leg recordings are kept too.
pub async fn recording_reported(app: &App, hook: &Webhook, c: &Call) -> ApiResult<()> {
    if hook
        .form
        .get("RecordingStatus")
        .is_some_and(|s| s != "completed")
    {
        return Ok(());
    }
    upsert_recording(app, hook, c, "call").await?;
    app.work_queued();
    Ok(())
}

/// Twilio's transcription callback, for voicemails transcribed by Twilio. It is kept by
/// RecordingSid within the tenant, and applied to the voicemail now or when the voicemail is
/// stored. A RecordingSid that is another call's is refused.
pub async fn transcription_reported(app: &App, hook: &Webhook, c: &Call) -> ApiResult<()> {
    let form = &hook.form;
    let Some(sid) = form.non_empty("RecordingSid") else {
        return Ok(());
    };
    // Checked again here: the callback's event was kept on the same check a moment ago, and
    // this is what guards the row.
    check_reported(app, hook, c).await?;
    let status = if form.get("TranscriptionStatus") == Some("completed") {
        "completed"
    } else {
        "failed"
    };
    sqlx::query(
        "INSERT INTO twilio_transcriptions (recording_sid, tenant_id, status, text, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, recording_sid) DO UPDATE SET status = $3, text = $4",
    )
    .bind(sid)
    .bind(&c.tenant_id)
    .bind(status)
    .bind(form.get("TranscriptionText"))
    .bind(now_ms())
    .execute(app.db().pool())
    .await
    .map_err(DbError::from)?;
    Ok(apply_twilio_transcription(app.db(), &c.tenant_id, sid).await?)
}

async fn apply_twilio_transcription(db: &Db, tenant_id: &str, recording_sid: &str) -> DbResult<()> {
    let Some(t) = sqlx::query(
        "SELECT status, text FROM twilio_transcriptions WHERE recording_sid = $1 AND tenant_id = $2",
    )
    .bind(recording_sid)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(());
    };
    let status: String = t.get("status");
    sqlx::query(
        "UPDATE voicemails SET transcription_status = $1, transcription_text = $2, transcription_error = $3, updated_at = $4 \
         WHERE tenant_id = $6 AND recording_id = (SELECT id FROM recordings WHERE twilio_sid = $5 AND tenant_id = $6) \
         AND transcription_source = 'twilio'",
    )
    .bind(&status)
    .bind(opt_str(&t, "text"))
    .bind((status != "completed").then_some("Twilio could not transcribe the recording"))
    .bind(now_ms())
    .bind(recording_sid)
    .bind(tenant_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Copying recordings from Twilio into storage.
pub const WORKER: Worker = Worker {
    kind: "recording",
    lease: |_| Duration::from_secs(120),
    max_attempts: |c| c.workers.media_max_attempts,
    batch: 8,
    parallel: 2,
    run: |app, job| Box::pin(async move { download(&app, &job).await }),
    give_up: |app, job, error| {
        Box::pin(async move { recording_failed(&app, &job.subject_id, &error, job.attempts).await })
    },
};

/// Transcribing voicemails with the configured speech-to-text service.
pub const TRANSCRIPTIONS: Worker = Worker {
    kind: "transcription",
    lease: |_| Duration::from_secs(180),
    max_attempts: |c| c.workers.media_max_attempts,
    batch: 4,
    parallel: 2,
    run: |app, job| Box::pin(async move { transcribe(&app, &job).await }),
    give_up: |app, job, error| {
        Box::pin(async move {
            transcription_ended(&app, &job.subject_id, Err(&error), job.attempts).await
        })
    },
};

async fn recording_failed(app: &App, id: &str, error: &str, attempts: i64) -> DbResult<()> {
    sqlx::query("UPDATE recordings SET status = 'failed', error = $1, attempts = $2 WHERE id = $3")
        .bind(error)
        .bind(attempts)
        .bind(id)
        .execute(app.db().pool())
        .await?;
    Ok(())
}

async fn download(app: &App, job: &Job) -> DbResult<Outcome> {
    let (id, tenant_id, attempt) = (&job.subject_id, &job.tenant_id, job.attempts);
    let r = sqlx::query(
        "SELECT twilio_sid, source_url, status FROM recordings WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(app.db().pool())
    .await?;
    let Some(r) = r.filter(|r| r.get::<String, _>("status") == "pending") else {
        return Ok(Outcome::Done);
    };
    let (sid, source): (String, String) = (r.get("twilio_sid"), r.get("source_url"));
    let fail = |error: String| async move {
        recording_failed(app, id, &error, attempt).await?;
        Ok(Outcome::Failed { error })
    };
    let client = match app.twilio(tenant_id).await {
        Ok(c) => c,
        Err(e) => return fail(e.message).await,
    };
    // Twilio's RecordingUrl has no extension; `.wav` asks for the audio.
    let url = format!("{}.wav", source.trim_end_matches(".json"));
    if !client.base().covers(&url) {
        return fail(format!("refused: {source} is not a Twilio URL")).await;
    }
    match client
        .download(&url, app.config().max_media_bytes.max(50 << 20))
        .await
    {
        Ok((ct, bytes)) => {
            let key = format!("recordings/{tenant_id}/{id}");
            if let Err(e) = app.storage().put(&key, &bytes).await {
                return retry(app, id, attempt, format!("storage: {e}")).await;
            }
            sqlx::query("UPDATE recordings SET status = 'stored', storage_key = $1, size = $2, content_type = $3, error = NULL, attempts = $4 WHERE id = $5")
                .bind(&key)
                .bind(bytes.len() as i64)
                .bind(ct.unwrap_or_else(|| "audio/x-wav".into()))
                .bind(attempt)
                .bind(id)
                .execute(app.db().pool())
                .await?;
            if app.config().delete_recordings_at_twilio {
                if let Err(e) = client.delete_recording(&sid).await {
                    tracing::warn!(recording = %sid, error = %e, "copied, but could not delete the recording at Twilio");
                }
            }
            app.work_queued();
            Ok(Outcome::Done)
        }
        Err(e) if e.status() == Some(404) || e.is_retryable() => {
            retry(app, id, attempt, e.to_string()).await
        }
        Err(e) => fail(e.to_string()).await,
    }
}

async fn retry(app: &App, id: &str, attempt: i64, error: String) -> DbResult<Outcome> {
    sqlx::query("UPDATE recordings SET error = $1, attempts = $2 WHERE id = $3")
        .bind(&error)
        .bind(attempt)
        .bind(id)
        .execute(app.db().pool())
        .await?;
    Ok(Outcome::Retry { error, after: None })
}

/// Sends the audio to `{url}/audio/transcriptions` (OpenAI's API shape, which self-hosted
/// Whisper servers also speak) and stores the text.
async fn transcribe(app: &App, job: &Job) -> DbResult<Outcome> {
    let Some(stt) = app.config().stt.clone() else {
        let error = "no speech-to-text service is configured".to_string();
        transcription_ended(app, &job.subject_id, Err(&error), job.attempts).await?;
        return Ok(Outcome::Failed { error });
    };
    let r = sqlx::query(
        "SELECT v.transcription_status, r.status AS recording_status, r.storage_key FROM voicemails v \
         JOIN recordings r ON r.id = v.recording_id WHERE v.id = $1 AND v.tenant_id = $2",
    )
    .bind(&job.subject_id)
    .bind(&job.tenant_id)
    .fetch_optional(app.db().pool())
    .await?;
    let Some(r) = r.filter(|r| r.get::<String, _>("transcription_status") == "pending") else {
        return Ok(Outcome::Done);
    };
    match r.get::<String, _>("recording_status").as_str() {
        "stored" => {}
        "failed" => {
            let error = "the recording could not be copied".to_string();
            transcription_ended(app, &job.subject_id, Err(&error), job.attempts).await?;
            return Ok(Outcome::Failed { error });
        }
        // The audio is still being copied: look again shortly.
        _ => {
            return Ok(Outcome::Later {
                at: now_ms() + 1000,
            })
        }
    }
    let key: String = r.get("storage_key");
    let key = key.as_str();
    let result: Result<String, String> = async {
        let audio = app
            .storage()
            .get(key)
            .await
            .map_err(|e| format!("storage: {e}"))?;
        let part = reqwest::multipart::Part::bytes(audio)
            .file_name("voicemail.wav")
            .mime_str("audio/wav")
            .map_err(|e| e.to_string())?;
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", stt.model.clone())
            .text("response_format", "json");
        let mut rb = app
            .http()
            .post(format!("{}/audio/transcriptions", stt.url))
            .multipart(form)
            .timeout(std::time::Duration::from_secs(120));
        if let Some(k) = &stt.api_key {
            rb = rb.bearer_auth(k);
        }
        let resp = rb.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("HTTP {status}: answer is not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {body}"));
        }
        body["text"]
            .as_str()
            .map(|t| t.trim().to_string())
            .ok_or_else(|| "the answer has no text".to_string())
    }
    .await;
    match result {
        Ok(text) => {
            transcription_ended(app, &job.subject_id, Ok(&text), job.attempts).await?;
            Ok(Outcome::Done)
        }
        Err(error) => {
            tracing::warn!(voicemail = %job.subject_id, %error, attempt = job.attempts, "transcription failed");
            sqlx::query("UPDATE voicemails SET transcription_error = $1, transcription_attempts = $2, updated_at = $3 WHERE id = $4")
                .bind(&error)
                .bind(job.attempts)
                .bind(now_ms())
                .bind(&job.subject_id)
                .execute(app.db().pool())
                .await?;
            Ok(Outcome::Retry { error, after: None })
        }
    }
}

/// Records the end of a voicemail's transcription: its text, or why there is none.
async fn transcription_ended(
    app: &App,
    id: &str,
    result: Result<&str, &str>,
    attempts: i64,
) -> DbResult<()> {
    let (status, text, error) = match result {
        Ok(t) => ("completed", Some(t), None),
        Err(e) => ("failed", None, Some(e)),
    };
    sqlx::query("UPDATE voicemails SET transcription_status = $1, transcription_text = $2, transcription_error = $3, \
                 transcription_attempts = $4, updated_at = $5 WHERE id = $6")
        .bind(status)
        .bind(text)
        .bind(error)
        .bind(attempts)
        .bind(now_ms())
        .bind(id)
        .execute(app.db().pool())
        .await?;
    Ok(())
}

/// A call's recordings and voicemail, for `GET /v1/calls/{id}`.
pub async fn for_call(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
) -> DbResult<(Vec<Recording>, Option<Voicemail>)> {
    let rows = sqlx::query(
        "SELECT * FROM recordings WHERE call_id = $1 AND tenant_id = $2 ORDER BY created_at",
    )
    .bind(call_id)
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await?;
    let vm = sqlx::query(&format!(
        "SELECT {VM_COLS} FROM voicemails WHERE call_id = $1 AND tenant_id = $2"
    ))
    .bind(call_id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok((
        rows.iter().map(recording).collect(),
        vm.as_ref().map(voicemail),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    /// Words in the transcription.
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(app): State<App>,
    auth: Auth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit is 1 to 500"));
    }
    if q.status
        .as_deref()
        .is_some_and(|s| !["new", "listened", "archived"].contains(&s))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "status is new, listened or archived",
        ));
    }
    let before = q
        .cursor
        .as_deref()
        .map(crate::messaging::api::decode_cursor)
        .transpose()?;
    let pattern = q.q.as_ref().map(|s| {
        format!(
            "%{}%",
            s.to_lowercase().replace('%', "\\%").replace('_', "\\_")
        )
    });
    let rows = sqlx::query(&format!(
        "SELECT {VM_COLS} FROM voicemails WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR LOWER(transcription_text) LIKE $3 ESCAPE '\\') \
         AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(&auth.tenant.id)
    .bind(&q.status)
    .bind(&pattern)
    .bind(before.as_ref().map(|b| b.0))
    .bind(before.as_ref().map(|b| b.1.clone()))
    .bind(limit + 1)
    .fetch_all(app.db().pool())
    .await
    .map_err(DbError::from)?;
    let mut data: Vec<Voicemail> = rows.iter().map(voicemail).collect();
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next = if more {
        data.last()
            .map(|v| crate::messaging::api::encode_cursor(v.created_ms, &v.id))
    } else {
        None
    };
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}

async fn get_voicemail(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Voicemail>> {
    let r = sqlx::query(&format!(
        "SELECT {VM_COLS} FROM voicemails WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(voicemail))
}

async fn fetch(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
) -> ApiResult<Json<Voicemail>> {
    get_voicemail(app.db(), &auth.tenant.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("voicemail"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    status: String,
}

/// Marks a voicemail listened, archived, or new again.
async fn update(
    State(app): State<App>,
    auth: Auth,
    PathId(id): PathId,
    JsonBody(p): JsonBody<Patch>,
) -> ApiResult<Json<Voicemail>> {
    if !["new", "listened", "archived"].contains(&p.status.as_str()) {
        return Err(ApiError::unprocessable(
            "invalid_status",
            "status is new, listened or archived",
        ));
    }
    let res = sqlx::query(
        "UPDATE voicemails SET status = $1, updated_at = $2 WHERE id = $3 AND tenant_id = $4",
    )
    .bind(&p.status)
    .bind(now_ms())
    .bind(&id)
    .bind(&auth.tenant.id)
    .execute(app.db().pool())
    .await
    .map_err(DbError::from)?;
    if res.rows_affected() == 0 {
        return Err(ApiError::not_found("voicemail"));
    }
    fetch(State(app), auth, PathId(id)).await
}

/// Streams a stored recording.
async fn media(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Response> {
    let r = sqlx::query(
        "SELECT status, storage_key, content_type FROM recordings WHERE id = $1 AND tenant_id = $2",
    )
    .bind(&id)
    .bind(&auth.tenant.id)
    .fetch_optional(app.db().pool())
    .await
    .map_err(DbError::from)?
    .ok_or_else(|| ApiError::not_found("recording"))?;
    let status: String = r.get("status");
    let Some(key) = opt_str(&r, "storage_key").filter(|_| status == "stored") else {
        return Err(ApiError::conflict(
            "recording_not_ready",
            format!("this recording is {status}, not stored yet"),
        ));
    };
    let bytes = app.storage().get(&key).await.map_err(|e| {
        tracing::error!(error = %e, key, "stored recording is missing");
        ApiError::internal()
    })?;
    let ct = opt_str(&r, "content_type").unwrap_or_else(|| "audio/x-wav".into());
    Ok(([(header::CONTENT_TYPE, ct)], bytes).into_response())
}
