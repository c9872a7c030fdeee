//! Recordings and voicemails. Twilio's recording callbacks become rows; a worker downloads the
//! audio into storage (retrying while Twilio says it is not ready; credentials only to Twilio),
//! optionally deletes it at Twilio once copied, and transcribes voicemails with an
//! OpenAI-compatible speech-to-text endpoint when one is configured (Twilio's own transcription
//! otherwise). Failures are recorded and retried, never lost.

use super::calls::Call;
use super::store::recordings as rstore;
use crate::db::{now_ms, Db, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::webhook::{security_event, Webhook};
use crate::http::{Auth, JsonBody, PathId, QueryParams};
use crate::queue::{self, Job, Outcome, Worker};
use crate::App;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
    pub(crate) created_ms: i64,
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
    let owner = rstore::recording_call(app.db(), &c.tenant_id, sid).await?;
    let elsewhere =
        super::store::sid_elsewhere(app.db().pool(), "recordings", &hook.tenants, sid).await?;
    if elsewhere.is_some() || owner.is_some_and(|call| call != c.id) {
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
    let row = std::sync::Arc::new(rstore::NewRecording {
        tenant_id: c.tenant_id.clone(),
        call_id: c.id.clone(),
        sid: sid.clone(),
        url,
        duration,
        kind: kind.to_string(),
        account_tenants: hook.tenants.clone(),
        now: now_ms(),
    });
    let id = app
        .db()
        .write(move |tx| {
            let row = row.clone();
            Box::pin(async move { rstore::insert_recording(tx, &row, WORKER.kind).await })
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
    rstore::mark_voicemail_recording(app.db(), &c.tenant_id, &c.id, &rec_id).await?;
    let (status, source) = match (transcribe, app.config().stt.is_some()) {
        (false, _) => ("none", None),
        (true, true) => ("pending", Some("stt")),
        (true, false) => ("pending", Some("twilio")),
    };
    let now = now_ms();
    let vm = std::sync::Arc::new(rstore::NewVoicemail {
        tenant_id: c.tenant_id.clone(),
        call_id: c.id.clone(),
        recording_id: rec_id,
        from: c.from.clone(),
        to: c.to.clone(),
        transcription_status: status,
        transcription_source: source,
        now,
    });
    app.db()
        .write(move |tx| {
            let vm = vm.clone();
            Box::pin(async move {
                let made = rstore::insert_voicemail(tx, &vm).await?;
                if let (Some(id), Some("stt")) = (made, vm.transcription_source) {
                    queue::enqueue(tx, TRANSCRIPTIONS.kind, &id, &vm.tenant_id, vm.now).await?;
                }
                Ok(())
            })
        })
        .await?;
    if let Some(sid) = hook.form.non_empty("RecordingSid") {
        rstore::apply_twilio_transcription(app.db(), &c.tenant_id, sid, now_ms()).await?;
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
    // Checked by `media_callback` before the callback was kept.
    let status = if form.get("TranscriptionStatus") == Some("completed") {
        "completed"
    } else {
        "failed"
    };
    let text = form.get("TranscriptionText");
    rstore::save_twilio_transcription(app.db(), &c.tenant_id, sid, status, text, now_ms()).await?;
    Ok(rstore::apply_twilio_transcription(app.db(), &c.tenant_id, sid, now_ms()).await?)
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
    rstore::recording_failed(app.db(), id, error, attempts).await
}

async fn download(app: &App, job: &Job) -> DbResult<Outcome> {
    let (id, tenant_id, attempt) = (&job.subject_id, &job.tenant_id, job.attempts);
    let Some((sid, source)) = rstore::pending_recording(app.db(), tenant_id, id).await? else {
        return Ok(Outcome::Done);
    };
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
            let ct = ct.unwrap_or_else(|| "audio/x-wav".into());
            let size = bytes.len() as i64;
            rstore::recording_stored(app.db(), id, &key, size, &ct, attempt).await?;
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
    rstore::recording_error(app.db(), id, &error, attempt).await?;
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
    let found = rstore::to_transcribe(app.db(), &job.tenant_id, &job.subject_id).await?;
    let Some((_, recording_status, storage_key)) = found.filter(|(t, _, _)| t == "pending") else {
        return Ok(Outcome::Done);
    };
    match recording_status.as_str() {
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
    let key = storage_key.unwrap_or_default();
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
            rstore::transcription_error(app.db(), &job.subject_id, &error, job.attempts, now_ms())
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
    rstore::transcription_ended(app.db(), id, status, text, error, attempts, now_ms()).await
}

/// A call's recordings and voicemail, for `GET /v1/calls/{id}`.
pub async fn for_call(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
) -> DbResult<(Vec<Recording>, Option<Voicemail>)> {
    rstore::of_call(db, tenant_id, call_id).await
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
    let filter = rstore::VoicemailFilter {
        status: q.status.clone(),
        pattern,
        before,
        limit: limit + 1,
    };
    let mut data = rstore::voicemails(app.db(), &auth.tenant.id, &filter).await?;
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
    rstore::voicemail(db, tenant_id, id).await
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
    if !rstore::set_voicemail_status(app.db(), &auth.tenant.id, &id, &p.status, now_ms()).await? {
        return Err(ApiError::not_found("voicemail"));
    }
    fetch(State(app), auth, PathId(id)).await
}

/// Streams a stored recording.
async fn media(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Response> {
    let (status, key, content_type) = rstore::recording_file(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    let Some(key) = key.filter(|_| status == "stored") else {
        return Err(ApiError::conflict(
            "recording_not_ready",
            format!("this recording is {status}, not stored yet"),
        ));
    };
    let bytes = app.storage().get(&key).await.map_err(|e| {
        tracing::error!(error = %e, key, "stored recording is missing");
        ApiError::internal()
    })?;
    let ct = content_type.unwrap_or_else(|| "audio/x-wav".into());
    Ok(([(header::CONTENT_TYPE, ct)], bytes).into_response())
}
