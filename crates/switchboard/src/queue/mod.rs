//! The one work queue. Every kind of background job — sending a message, placing a call,
//! fetching media, copying a recording, transcribing a voicemail, polling a status — is a row
//! of `jobs` naming the row it works on. This module owns everything a queue needs, written
//! once: enqueueing in the caller's transaction, claiming a batch in one statement (PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so replicas never take the same job), leases that a crashed worker
//! gives up by timing out, attempts with backoff and jitter, final failures with the reason
//! kept, and the `submitting` mark that makes the next holder reconcile before doing an outside
//! call again. A capability supplies only a [`Worker`]: what it does with a claimed job, and
//! what giving up means for its row.

use crate::config::Config;
use crate::db::{now_ms, Backend, BoxFuture, Db, DbResult, Row, Tx};
use crate::ids::new_id;
use crate::App;
use std::time::Duration;

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: &'static str,
    pub subject_id: String,
    pub tenant_id: String,
    /// Tries so far, this one included.
    pub attempts: i64,
    /// An earlier holder may have made the outside call: find out before making it again.
    pub submitting: bool,
    token: String,
}

/// What became of a claimed job.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Finished: the job goes away.
    Done,
    /// It failed for now (a 429, a 5xx, a network error before sending): try again after a
    /// backoff of at least `after`, or give up once the attempts are spent.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Not now, and not a try (the sender is busy, something it waits for is not there yet, or
    /// a reconciliation found that the outside call never happened). Clears `submitting`.
    Later { at: i64 },
    /// The outside call may or may not have happened (no answer): the job stays marked
    /// `submitting`, and whoever takes it next reconciles first.
    Unknown,
    /// Given up for good; the capability has recorded why on its own row.
    Failed { error: String },
}

pub type RunFn = fn(App, Job) -> BoxFuture<'static, DbResult<Outcome>>;
pub type GiveUpFn = fn(App, Job, String) -> BoxFuture<'static, DbResult<()>>;

/// A kind of job and how it is worked.
#[derive(Clone, Copy)]
pub struct Worker {
    pub kind: &'static str,
    /// How long a claim lasts: longer than one run can take.
    pub lease: fn(&Config) -> Duration,
    /// Tries before giving up.
    pub max_attempts: fn(&Config) -> i64,
    /// Jobs claimed at once.
    pub batch: i64,
    /// Jobs run side by side.
    pub parallel: usize,
    pub run: RunFn,
    /// Records on the capability's row that the job was given up (attempts spent).
    pub give_up: GiveUpFn,
}

/// Queues a job for `subject_id`, due at `run_at`, in the caller's transaction. A job already
/// queued for it stays as it is.
pub async fn enqueue(
    tx: &mut Tx,
    kind: &str,
    subject_id: &str,
    tenant_id: &str,
    run_at: i64,
) -> DbResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(format!("{kind}:{subject_id}"))
    .bind(kind)
    .bind(subject_id)
    .bind(tenant_id)
    .bind(run_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Drops the queued (not running) job of `kind` for `subject_id`, in the caller's transaction:
/// for work that became needless (a status poll once the final status came).
pub async fn cancel(tx: &mut Tx, kind: &str, subject_id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM jobs WHERE id = $1 AND state = 'queued'")
        .bind(format!("{kind}:{subject_id}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Claims up to `w.batch` due jobs of the worker's kind — queued ones whose time has come, and
/// running ones whose holder's lease ran out — in one statement.
pub async fn claim(db: &Db, w: &Worker, lease: Duration) -> DbResult<Vec<Job>> {
    let skip_locked = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // Two index ranges (due queued jobs in due order; running jobs of this kind, few), so the
    // claim never sorts the whole queue.
    let sql = format!(
        "UPDATE jobs SET state = 'running', lease_until = $1, claim_token = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM jobs WHERE kind = $4 AND state = 'queued' AND run_at <= $3 \
         ORDER BY run_at LIMIT $5{skip_locked}) \
         OR id IN (SELECT id FROM jobs WHERE kind = $4 AND state = 'running' AND lease_until < $3 \
         LIMIT $5{skip_locked}) \
         RETURNING id, subject_id, tenant_id, attempts, submitting"
    );
    let kind = w.kind;
    let batch = w.batch;
    db.write(move |tx| {
        let sql = sql.clone();
        Box::pin(async move {
            let now = now_ms();
            let token = new_id("clm");
            let rows = sqlx::query(&sql)
                .bind(now + lease.as_millis() as i64)
                .bind(&token)
                .bind(now)
                .bind(kind)
                .bind(batch)
                .fetch_all(&mut **tx)
                .await?;
            Ok(rows
                .iter()
                .map(|r| Job {
                    id: r.get("id"),
                    kind,
                    subject_id: r.get("subject_id"),
                    tenant_id: r.get("tenant_id"),
                    attempts: r.get("attempts"),
                    submitting: r.get::<i64, _>("submitting") != 0,
                    token: token.clone(),
                })
                .collect())
        })
    })
    .await
}

/// Marks the job `submitting` in the caller's transaction, before an outside call that must
/// not be made twice. False when the claim was lost (the lease ran out and another took it).
pub async fn mark_submitting(tx: &mut Tx, job: &Job) -> DbResult<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET submitting = 1, updated_at = $1 WHERE id = $2 AND claim_token = $3",
    )
    .bind(now_ms())
    .bind(&job.id)
    .bind(&job.token)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records what became of a job, if its claim still holds.
pub async fn finish(app: &App, w: &Worker, job: &Job, outcome: Outcome) -> DbResult<()> {
    let cfg = app.config();
    let now = now_ms();
    let outcome = match outcome {
        Outcome::Retry { error, .. } if job.attempts >= (w.max_attempts)(cfg) => {
            let error = format!("gave up after {} attempts: {error}", job.attempts);
            (w.give_up)(app.clone(), job.clone(), error.clone()).await?;
            Outcome::Failed { error }
        }
        o => o,
    };
    // (statement, run_at, error) with the job's id, claim token and now bound after them.
    let (sql, at, error): (&'static str, i64, Option<String>) = match outcome {
        Outcome::Done => ("DELETE FROM jobs WHERE id = $1 AND claim_token = $2", 0, None),
        Outcome::Retry { error, after } => {
            let delay = crate::workers::backoff(cfg.workers.backoff_base, job.attempts)
                .max(after.unwrap_or_default());
            (
                "UPDATE jobs SET state = 'queued', run_at = $4, last_error = $5, submitting = 0, \
                 lease_until = NULL, claim_token = NULL, updated_at = $3 WHERE id = $1 AND claim_token = $2",
                now + delay.as_millis() as i64,
                Some(error),
            )
        }
        Outcome::Later { at } => (
            "UPDATE jobs SET state = 'queued', run_at = $4, attempts = attempts - 1, submitting = 0, \
             lease_until = NULL, claim_token = NULL, updated_at = $3 WHERE id = $1 AND claim_token = $2",
            at,
            None,
        ),
        Outcome::Unknown => (
            "UPDATE jobs SET submitting = 1, lease_until = $4, last_error = $5, updated_at = $3 \
             WHERE id = $1 AND claim_token = $2",
            now,
            Some("no answer; reconciling before any retry".into()),
        ),
        Outcome::Failed { error } => (
            "UPDATE jobs SET state = 'failed', last_error = $5, run_at = $4, lease_until = NULL, \
             claim_token = NULL, updated_at = $3 WHERE id = $1 AND claim_token = $2",
            now,
            Some(error),
        ),
    };
    let (id, token) = (job.id.clone(), job.token.clone());
    app.db()
        .write(move |tx| {
            let (id, token, error) = (id.clone(), token.clone(), error.clone());
            Box::pin(async move {
                let mut q = sqlx::query(sql).bind(id).bind(token).bind(now);
                if sql.contains("$4") {
                    q = q.bind(at);
                }
                if sql.contains("$5") {
                    q = q.bind(error);
                }
                q.execute(&mut **tx).await?;
                Ok(())
            })
        })
        .await
}

/// What one round of work did: how many jobs it handled, and when the next one is due.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub moved: usize,
    pub wake_at: Option<i64>,
}

/// One round of a worker: claims batches and runs them, `w.parallel` at a time, claiming the
/// next batch as soon as there is room, until nothing more is due.
pub async fn work(app: &App, w: &Worker) -> DbResult<Round> {
    let lease = (w.lease)(app.config());
    let mut moved = 0;
    let mut running = tokio::task::JoinSet::new();
    let mut exhausted = false;
    loop {
        let room = w.parallel.max(1) - running.len();
        // Claim in batches: when a quarter of the places are free, or nothing is running.
        let worth = room >= (w.parallel / 4).max(1) || running.is_empty();
        let jobs = if worth && !exhausted {
            let mut w2 = *w;
            w2.batch = w.batch.min(room as i64).max(1);
            claim(app.db(), &w2, lease).await?
        } else {
            Vec::new()
        };
        if jobs.is_empty() {
            // Nothing due now: finish what is in flight, then end the round.
            exhausted = true;
            if running.is_empty() {
                break;
            }
        }
        moved += jobs.len();
        for job in jobs {
            let (app, w) = (app.clone(), *w);
            running.spawn(async move {
                let span = tracing::info_span!("job", kind = w.kind, job_id = %job.id, attempt = job.attempts);
                let outcome =
                    tracing::Instrument::instrument((w.run)(app.clone(), job.clone()), span).await;
                let outcome = match outcome {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(kind = w.kind, job_id = %job.id, error = %e, "job failed on the database; retrying");
                        Outcome::Retry {
                            error: format!("database: {e}"),
                            after: None,
                        }
                    }
                };
                finish(&app, &w, &job, outcome).await
            });
        }
        // Wait for a place to free up before claiming again.
        settle(running.join_next().await)?;
    }
    let wake_at = if moved == 0 {
        next_due(app.db(), w.kind).await?
    } else {
        None
    };
    Ok(Round { moved, wake_at })
}

fn settle(r: Option<Result<DbResult<()>, tokio::task::JoinError>>) -> DbResult<()> {
    match r {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            tracing::error!(error = %e, "a job task panicked");
            Ok(())
        }
        None => Ok(()),
    }
}

/// When the next queued job of `kind` is due.
pub async fn next_due(db: &Db, kind: &str) -> DbResult<Option<i64>> {
    let r = sqlx::query("SELECT MIN(run_at) AS at FROM jobs WHERE kind = $1 AND state = 'queued'")
        .bind(kind)
        .fetch_one(db.pool())
        .await?;
    Ok(r.try_get::<Option<i64>, _>("at").ok().flatten())
}

/// Runs every worker until a whole pass moves nothing: for tests and tools that want the
/// queue's effects now, without waiting on poll intervals. Jobs due later stay queued.
pub async fn drain(app: &App) -> DbResult<usize> {
    let mut total = 0;
    for _ in 0..10_000 {
        let mut moved = 0;
        for w in crate::workers::all() {
            moved += work(app, &w).await?.moved;
        }
        if moved == 0 {
            return Ok(total);
        }
        total += moved;
    }
    Ok(total)
}

/// How many jobs are running or due now (jobs due later do not count).
pub async fn busy(db: &Db) -> DbResult<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM jobs WHERE state = 'running' OR (state = 'queued' AND run_at <= $1)",
    )
    .bind(now_ms())
    .fetch_one(db.pool())
    .await?;
    Ok(r.get("n"))
}

/// Reads the depth and the age of the oldest due job of every kind into the metrics.
pub async fn observe(app: &App) -> DbResult<()> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT kind, COUNT(*) AS n, MIN(CASE WHEN run_at <= $1 THEN run_at END) AS oldest \
         FROM jobs WHERE state IN ('queued', 'running') GROUP BY kind",
    )
    .bind(now)
    .fetch_all(app.db().pool())
    .await?;
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        let kind: String = r.get("kind");
        let oldest: Option<i64> = r.try_get("oldest").ok().flatten();
        let age = oldest
            .map(|t| (now - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        app.metrics().queue(&kind, r.get::<i64, _>("n"), age);
        seen.insert(kind);
    }
    for w in crate::workers::all() {
        if !seen.contains(w.kind) {
            app.metrics().queue(w.kind, 0, 0.0);
        }
    }
    Ok(())
}
