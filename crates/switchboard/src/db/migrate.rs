//! Schema migrations, applied in order under a lock so that replicas starting together apply
//! each one once. The SQL is written in the dialect both backends accept (TEXT, BIGINT,
//! DOUBLE PRECISION); a migration that needs per-backend SQL gives both.

use super::{now_ms, Backend, Db, DbResult};
use sqlx::Executor;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// Replaces `sql` on PostgreSQL when the dialects differ.
    postgres: Option<&'static str>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "messaging",
        sql: include_str!("../../migrations/0001_messaging.sql"),
        postgres: None,
    },
    Migration {
        version: 2,
        name: "keyword_log",
        sql: include_str!("../../migrations/0002_keyword_log.sql"),
        postgres: None,
    },
    Migration {
        version: 3,
        name: "voice",
        sql: include_str!("../../migrations/0003_voice.sql"),
        postgres: None,
    },
    Migration {
        version: 4,
        name: "recordings",
        sql: include_str!("../../migrations/0004_recordings.sql"),
        postgres: None,
    },
    Migration {
        version: 5,
        name: "outbound_calls",
        sql: include_str!("../../migrations/0005_outbound_calls.sql"),
        postgres: None,
    },
    Migration {
        version: 6,
        name: "idempotency",
        sql: include_str!("../../migrations/0006_idempotency.sql"),
        postgres: None,
    },
    Migration {
        version: 7,
        name: "jobs",
        sql: include_str!("../../migrations/0007_jobs.sql"),
        postgres: None,
    },
    Migration {
        version: 8,
        name: "tenant_scoped_sids",
        sql: include_str!("../../migrations/0008_tenant_scoped_sids.sql"),
        postgres: Some(include_str!(
            "../../migrations/0008_tenant_scoped_sids.postgres.sql"
        )),
    },
    Migration {
        version: 9,
        name: "api_key_ids",
        sql: include_str!("../../migrations/0009_api_key_ids.sql"),
        postgres: None,
    },
    Migration {
        version: 10,
        name: "verifications",
        sql: include_str!("../../migrations/0010_verifications.sql"),
        postgres: None,
    },
];

/// An arbitrary constant naming our advisory lock.
const PG_LOCK: i64 = 0x5357_4254_4348;

pub async fn run(db: &Db) -> DbResult<()> {
    let mut conn = db.pool().acquire().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query(&format!("SELECT pg_advisory_lock({PG_LOCK})"))
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(db.backend(), &mut conn).await;
    if db.backend() == Backend::Postgres {
        let _ = sqlx::query(&format!("SELECT pg_advisory_unlock({PG_LOCK})"))
            .execute(&mut *conn)
            .await;
    }
    result
}

async fn apply(backend: Backend, conn: &mut sqlx::AnyConnection) -> DbResult<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    for m in MIGRATIONS {
        let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if done {
            continue;
        }
        let sql = match (backend, m.postgres) {
            (Backend::Postgres, Some(pg)) => pg,
            _ => m.sql,
        };
        // SQLite rebuilds a table to change its constraints, which its foreign keys would
        // refuse mid-way: they are off during the migration (a pragma a transaction cannot
        // change) and checked before it commits.
        if backend == Backend::Sqlite {
            conn.execute("PRAGMA foreign_keys=OFF").await?;
            let result = apply_one(conn, backend, m, sql).await;
            conn.execute("PRAGMA foreign_keys=ON").await?;
            result?;
        } else {
            apply_one(conn, backend, m, sql).await?;
        }
    }
    Ok(())
}

/// One migration and its record, in one transaction.
async fn apply_one(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    m: &Migration,
    sql: &str,
) -> DbResult<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tx.execute(sql).await?;
    if backend == Backend::Sqlite {
        let broken = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut *tx)
            .await?;
        if !broken.is_empty() {
            return Err(super::DbError::Other(format!(
                "migration {} would break {} foreign keys",
                m.version,
                broken.len()
            )));
        }
    }
    sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(version = m.version, name = m.name, "applied migration");
    Ok(())
}
