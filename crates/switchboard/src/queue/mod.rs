//! Background work kept in the database: each kind of job is a row with a status, a next
//! attempt time and a count of attempts. This module reports on every kind at once.

use crate::db::{now_ms, DbResult, Row};
use crate::App;

/// Each kind of queued work: its name in metrics, its table, and what makes a row waiting.
const KINDS: &[(&str, &str, &str)] = &[
    ("message", "messages", "status = 'accepted'"),
    ("call", "calls", "status = 'accepted'"),
    ("media", "media", "status = 'pending'"),
    ("recording", "recordings", "status = 'pending'"),
];

/// Reads the depth and the age of the oldest due job of every kind into the metrics.
pub async fn observe(app: &App) -> DbResult<()> {
    let now = now_ms();
    for (kind, table, waiting) in KINDS {
        let r = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, MIN(CASE WHEN next_attempt_at <= $1 THEN next_attempt_at END) AS oldest \
             FROM {table} WHERE {waiting} AND next_attempt_at IS NOT NULL"
        ))
        .bind(now)
        .fetch_one(app.db().pool())
        .await?;
        let oldest: Option<i64> = r.try_get("oldest").ok().flatten();
        let age = oldest
            .map(|t| (now - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        app.metrics().queue(kind, r.get::<i64, _>("n"), age);
    }
    Ok(())
}
