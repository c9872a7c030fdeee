//! The database: one pool over SQLite or PostgreSQL, chosen by `DATABASE_URL`. Queries are
//! written once with `$N` placeholders and portable types (text ids, i64 millisecond times,
//! JSON as text); the few statements that differ per backend say so where they are.

pub mod batch;
mod migrate;
pub mod writer;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use std::time::Duration;

pub use sqlx::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    /// Reads (and, on PostgreSQL, writes).
    pool: AnyPool,
    /// Write transactions. On SQLite one connection: writers queue for it instead of
    /// sleeping on a busy lock.
    write_pool: AnyPool,
    backend: Backend,
    writer: writer::Writer,
}

/// How SQLite makes a commit durable (`SWITCHBOARD_SQLITE_SYNC`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// Every acknowledged commit survives a power cut (`synchronous=FULL`).
    #[default]
    Full,
    /// Commits survive a crash of the process, not of the machine (`synchronous=NORMAL`).
    Normal,
}

impl std::str::FromStr for SqliteSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(SqliteSync::Full),
            "normal" => Ok(SqliteSync::Normal),
            _ => Err(format!("{s:?}: use full or normal")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported DATABASE_URL {0:?}: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// Whether the database could not be reached or dropped the connection (a restart, a
    /// failover, `pg_terminate_backend`): nothing was committed by this statement, and trying
    /// again on a fresh connection is the remedy.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Sqlx(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_),
            ) => true,
            DbError::Sqlx(sqlx::Error::Database(e)) => e.code().is_some_and(|c| {
                // Connection exceptions, and the server shutting down or refusing for now.
                c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
            }),
            DbError::Sqlx(sqlx::Error::Protocol(m)) => m.contains("closed") || m.contains("reset"),
            _ => false,
        }
    }

    pub fn is_foreign_key_violation(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::Database(e)) => e.is_foreign_key_violation(),
            _ => false,
        }
    }

    /// Whether this is a unique-constraint violation (a duplicate that the caller may treat as
    /// "already there").
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

impl Db {
    /// Connects to `url` (`sqlite:PATH`, `sqlite::memory:`, `postgres://…`) with full durability.
    pub async fn connect(url: &str) -> DbResult<Db> {
        Self::connect_with(url, SqliteSync::Full).await
    }

    pub async fn connect_with(url: &str, sync: SqliteSync) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(url.to_string()));
        };
        let url = match backend {
            // Create the file when missing.
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = |max: u32, checkpoints: bool| {
            let opts = AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30));
            if backend != Backend::Sqlite {
                // A transaction left open (a bug, or a task stopped mid-way) must not hold its
                // locks for ever: PostgreSQL ends it after a minute.
                return opts.after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute("SET idle_in_transaction_session_timeout = '60s'")
                            .await?;
                        Ok(())
                    })
                });
            }
            let sync = match sync {
                SqliteSync::Full => "PRAGMA synchronous=FULL",
                SqliteSync::Normal => "PRAGMA synchronous=NORMAL",
            };
            opts.after_connect(move |conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    // WAL lets readers run beside the writer; FULL sync makes every commit
                    // durable before it is acknowledged.
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute(sync).await?;
                    conn.execute("PRAGMA busy_timeout=10000").await?;
                    conn.execute("PRAGMA foreign_keys=ON").await?;
                    if !checkpoints {
                        // The writer never stops to copy the log into the database: a
                        // background task does (see `checkpoint`).
                        conn.execute("PRAGMA wal_autocheckpoint=0").await?;
                    }
                    Ok(())
                })
            })
        };
        let (pool, write_pool) = match backend {
            // One in-memory database is one connection.
            Backend::Sqlite if url.contains(":memory:") => {
                let pool = options(1, true).connect(&url).await?;
                (pool.clone(), pool)
            }
            Backend::Sqlite => {
                let write_pool = options(1, false).connect(&url).await?;
                let pool = options(6, true).connect(&url).await?;
                tokio::spawn(checkpoint(pool.clone()));
                (pool, write_pool)
            }
            Backend::Postgres => {
                let pool = options(32, true).connect(&url).await?;
                (pool.clone(), pool)
            }
        };
        let begin: writer::Begin = {
            let write_pool = write_pool.clone();
            std::sync::Arc::new(move || {
                let write_pool = write_pool.clone();
                Box::pin(async move { begin_on(&write_pool, backend).await })
            })
        };
        // SQLite has one writer by design, and batches; PostgreSQL takes many writes at once,
        // each in its own transaction.
        let (writers, max_batch) = match backend {
            Backend::Sqlite => (1, writer::SQLITE_BATCH),
            Backend::Postgres => (0, 1),
        };
        let writer = writer::Writer::start(writers, max_batch, begin);
        Ok(Db {
            pool,
            write_pool,
            backend,
            writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn migrate(&self) -> DbResult<()> {
        migrate::run(self).await
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so that two transactions never deadlock upgrading a read to a write.
    /// A transaction of its own never waits on anything outside the database while open.
    pub async fn begin(&self) -> DbResult<Tx> {
        begin_on(&self.write_pool, self.backend).await
    }

    /// Runs `work` in a transaction shared with other concurrent writes (group commit) and
    /// returns once it is committed. `work` may run twice: it must only touch its transaction.
    pub async fn write<T, F>(&self, work: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&'a mut Tx) -> BoxFuture<'a, DbResult<T>> + Send + 'static,
    {
        self.writer.write(work).await
    }

    pub fn writer_stats(&self) -> &writer::WriterStats {
        &self.writer.stats
    }

    pub async fn close(&self) {
        self.write_pool.close().await;
        self.pool.close().await
    }
}

pub use writer::{BoxFuture, Tx};

/// Copies SQLite's write-ahead log into the database a few times a second, beside the writer
/// rather than inside its commits (`PASSIVE` never waits on it). Ends when the pool closes.
async fn checkpoint(pool: AnyPool) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

async fn begin_on(pool: &AnyPool, backend: Backend) -> DbResult<Tx> {
    Ok(match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    })
}

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` values: the VALUES of a multi-row insert on
/// `conn`'s backend. SQLite gets anonymous `?`s: it resolves a numbered parameter by a linear
/// search, which makes binding thousands of them quadratic.
pub fn placeholders(conn: &sqlx::AnyConnection, rows: usize, cols: usize) -> String {
    let numbered = conn.backend_name() != "SQLite";
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            if numbered {
                out.push('$');
                out.push_str(&(r * cols + c + 1).to_string());
            } else {
                out.push('?');
            }
        }
        out.push(')');
    }
    out
}

/// Milliseconds since the Unix epoch: how every time is stored.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Reads an optional text column.
pub fn opt_str(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}
