//! Recordings (copied from Twilio into storage), voicemails and their transcriptions.

use crate::db::{opt_str, Db, DbResult, Row, Tx};
use crate::ids::new_id;
use crate::messaging::iso;
use crate::voice::recordings::{Recording, Voicemail};
use sqlx::any::AnyRow;

const VM_COLS: &str = "id, call_id, recording_id, from_number, to_number, status, transcription_status, transcription_source, \
    transcription_text, transcription_error, created_at, updated_at";

fn recording_row(r: &AnyRow) -> Recording {
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

fn voicemail_row(r: &AnyRow) -> Voicemail {
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

/// The call of the tenant's recording with this SID, if any.
pub async fn recording_call(db: &Db, tenant_id: &str, sid: &str) -> DbResult<Option<String>> {
    let r = sqlx::query("SELECT call_id FROM recordings WHERE twilio_sid = $1 AND tenant_id = $2")
        .bind(sid)
        .bind(tenant_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.map(|r| r.get("call_id")))
}

/// A recording Twilio reported.
pub struct NewRecording {
    pub tenant_id: String,
    pub call_id: String,
    pub sid: String,
    pub url: String,
    pub duration: Option<i64>,
    pub kind: String,
    /// The tenants using the account that reported it.
    pub account_tenants: Vec<String>,
    pub now: i64,
}

/// Keeps a recording once per (tenant, RecordingSid), its copy queued as a job of `job_kind`.
/// Returns its id, or None when the SID is another account's or another call's.
pub async fn insert_recording(
    tx: &mut Tx,
    r: &NewRecording,
    job_kind: &str,
) -> DbResult<Option<String>> {
    if super::sid_elsewhere(&mut **tx, "recordings", &r.account_tenants, &r.sid)
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
    .bind(&r.tenant_id)
    .bind(&r.call_id)
    .bind(&r.sid)
    .bind(&r.url)
    .bind(r.duration)
    .bind(&r.kind)
    .bind(r.now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        crate::queue::enqueue(tx, job_kind, &id, &r.tenant_id, r.now).await?;
        return Ok(Some(id));
    }
    let found = sqlx::query(
        "SELECT id FROM recordings WHERE twilio_sid = $1 AND tenant_id = $2 AND call_id = $3",
    )
    .bind(&r.sid)
    .bind(&r.tenant_id)
    .bind(&r.call_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.map(|r| r.get::<String, _>("id")))
}

/// The recording is a voicemail's.
pub async fn mark_voicemail_recording(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
    id: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE recordings SET kind = 'voicemail' WHERE id = $1 AND tenant_id = $2 AND call_id = $3",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(call_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A voicemail left on a call.
pub struct NewVoicemail {
    pub tenant_id: String,
    pub call_id: String,
    pub recording_id: String,
    pub from: String,
    pub to: String,
    pub transcription_status: &'static str,
    pub transcription_source: Option<&'static str>,
    pub now: i64,
}

/// Keeps a voicemail once per recording; returns its id when it is new.
pub async fn insert_voicemail(tx: &mut Tx, v: &NewVoicemail) -> DbResult<Option<String>> {
    let id = new_id("vm");
    let inserted = sqlx::query(
        "INSERT INTO voicemails (id, tenant_id, call_id, recording_id, from_number, to_number, status, transcription_status, \
         transcription_source, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8, $9, $9) \
         ON CONFLICT (recording_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&v.tenant_id)
    .bind(&v.call_id)
    .bind(&v.recording_id)
    .bind(&v.from)
    .bind(&v.to)
    .bind(v.transcription_status)
    .bind(v.transcription_source)
    .bind(v.now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    Ok(inserted.then_some(id))
}

/// Twilio's transcription of a recording, kept by RecordingSid within the tenant.
pub async fn save_twilio_transcription(
    db: &Db,
    tenant_id: &str,
    recording_sid: &str,
    status: &str,
    text: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO twilio_transcriptions (recording_sid, tenant_id, status, text, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, recording_sid) DO UPDATE SET status = $3, text = $4",
    )
    .bind(recording_sid)
    .bind(tenant_id)
    .bind(status)
    .bind(text)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Puts Twilio's transcription of a recording, if there is one yet, on its voicemail.
pub async fn apply_twilio_transcription(
    db: &Db,
    tenant_id: &str,
    recording_sid: &str,
    now: i64,
) -> DbResult<()> {
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
    .bind(now)
    .bind(recording_sid)
    .bind(tenant_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A recording still to copy: its SID and Twilio URL; None once stored or failed.
pub async fn pending_recording(
    db: &Db,
    tenant_id: &str,
    id: &str,
) -> DbResult<Option<(String, String)>> {
    let r = sqlx::query(
        "SELECT twilio_sid, source_url, status FROM recordings WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.filter(|r| r.get::<String, _>("status") == "pending")
        .map(|r| (r.get("twilio_sid"), r.get("source_url"))))
}

pub async fn recording_stored(
    db: &Db,
    id: &str,
    key: &str,
    size: i64,
    content_type: &str,
    attempts: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE recordings SET status = 'stored', storage_key = $1, size = $2, content_type = $3, error = NULL, attempts = $4 WHERE id = $5",
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

/// The latest error of a copy that will be tried again.
pub async fn recording_error(db: &Db, id: &str, error: &str, attempts: i64) -> DbResult<()> {
    sqlx::query("UPDATE recordings SET error = $1, attempts = $2 WHERE id = $3")
        .bind(error)
        .bind(attempts)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn recording_failed(db: &Db, id: &str, error: &str, attempts: i64) -> DbResult<()> {
    sqlx::query("UPDATE recordings SET status = 'failed', error = $1, attempts = $2 WHERE id = $3")
        .bind(error)
        .bind(attempts)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// What transcribing a voicemail needs: its transcription status, and its recording's status
/// and storage key.
pub async fn to_transcribe(
    db: &Db,
    tenant_id: &str,
    id: &str,
) -> DbResult<Option<(String, String, Option<String>)>> {
    let r = sqlx::query(
        "SELECT v.transcription_status, r.status AS recording_status, r.storage_key FROM voicemails v \
         JOIN recordings r ON r.id = v.recording_id WHERE v.id = $1 AND v.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| {
        (
            r.get("transcription_status"),
            r.get("recording_status"),
            opt_str(&r, "storage_key"),
        )
    }))
}

/// The latest error of a transcription that will be tried again.
pub async fn transcription_error(
    db: &Db,
    id: &str,
    error: &str,
    attempts: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE voicemails SET transcription_error = $1, transcription_attempts = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(error)
    .bind(attempts)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The end of a voicemail's transcription: `completed` with its text, or `failed`.
pub async fn transcription_ended(
    db: &Db,
    id: &str,
    status: &str,
    text: Option<&str>,
    error: Option<&str>,
    attempts: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE voicemails SET transcription_status = $1, transcription_text = $2, transcription_error = $3, \
         transcription_attempts = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(status)
    .bind(text)
    .bind(error)
    .bind(attempts)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A call's recordings and voicemail.
pub async fn of_call(
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
        rows.iter().map(recording_row).collect(),
        vm.as_ref().map(voicemail_row),
    ))
}

/// Voicemail filters; None switches a filter off.
pub struct VoicemailFilter {
    pub status: Option<String>,
    /// A LIKE pattern over the lower-cased transcription.
    pub pattern: Option<String>,
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// The tenant's voicemails newest first, one page.
pub async fn voicemails(db: &Db, tenant_id: &str, f: &VoicemailFilter) -> DbResult<Vec<Voicemail>> {
    let rows = sqlx::query(&format!(
        "SELECT {VM_COLS} FROM voicemails WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR LOWER(transcription_text) LIKE $3 ESCAPE '\\') \
         AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(tenant_id)
    .bind(&f.status)
    .bind(&f.pattern)
    .bind(f.before.as_ref().map(|b| b.0))
    .bind(f.before.as_ref().map(|b| b.1.clone()))
    .bind(f.limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(voicemail_row).collect())
}

pub async fn voicemail(db: &Db, tenant_id: &str, id: &str) -> DbResult<Option<Voicemail>> {
    let r = sqlx::query(&format!(
        "SELECT {VM_COLS} FROM voicemails WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(voicemail_row))
}

/// Sets a voicemail's status; false when the tenant has no such voicemail.
pub async fn set_voicemail_status(
    db: &Db,
    tenant_id: &str,
    id: &str,
    status: &str,
    now: i64,
) -> DbResult<bool> {
    let res = sqlx::query(
        "UPDATE voicemails SET status = $1, updated_at = $2 WHERE id = $3 AND tenant_id = $4",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .bind(tenant_id)
    .execute(db.pool())
    .await?;
    Ok(res.rows_affected() == 1)
}

/// A recording's status, storage key and content type.
pub async fn recording_file(
    db: &Db,
    tenant_id: &str,
    id: &str,
) -> DbResult<Option<(String, Option<String>, Option<String>)>> {
    let r = sqlx::query(
        "SELECT status, storage_key, content_type FROM recordings WHERE id = $1 AND tenant_id = $2",
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
