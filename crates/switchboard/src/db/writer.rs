//! Group commit: writes from many requests share one transaction and one flush.
//!
//! A request hands its write (a closure over a transaction) to a writer task and waits. The
//! writer takes everything that arrived while the previous commit was flushing, runs it in one
//! transaction, commits once and only then answers each request: acknowledged still means on
//! disk, but a burst of N webhooks costs one fsync instead of N, and on SQLite no two
//! connections ever fight over the write lock.
//!
//! On PostgreSQL each write keeps a transaction of its own (`max_batch` 1) on one of several
//! writers: PostgreSQL already flushes concurrent commits together, and unrelated writes
//! sharing a transaction would lock rows in no common order and deadlock each other.
//!
//! Writes are run optimistically together. If one fails (or the commit does), the batch is
//! rolled back and every write in it is run again alone, so one bad write never takes the
//! others down with it: writes must therefore be safe to run a second time after a rollback,
//! which any closure that only touches its transaction is.

use super::{DbError, DbResult};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Output = DbResult<Box<dyn Any + Send>>;
type Work = Box<dyn for<'a> FnMut(&'a mut Tx) -> BoxFuture<'a, Output> + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Output>,
}

/// Most writes one transaction takes on SQLite: enough to amortise a flush, few enough that a
/// failed batch is cheap to replay one by one.
pub const SQLITE_BATCH: usize = 256;

/// What the writers did, for `/metrics`.
pub struct WriterStats {
    pub commits: Counter,
    pub writes: Counter,
    pub replays: Counter,
    pub batch_size: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commits: Counter::default(),
            writes: Counter::default(),
            replays: Counter::default(),
            batch_size: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        }
    }
}

#[derive(Clone)]
pub struct Writer {
    /// Batched writers' queue; None when each write runs on its own.
    tx: Option<mpsc::Sender<Job>>,
    begin: Begin,
    pub stats: Arc<WriterStats>,
}

/// Opens a write transaction on a connection of the write pool.
pub type Begin = Arc<dyn Fn() -> BoxFuture<'static, DbResult<Tx>> + Send + Sync>;

impl Writer {
    /// Starts `writers` writer tasks that take jobs from one queue, each beginning its
    /// transactions with `begin` and putting at most `max_batch` writes in one.
    pub fn start(writers: usize, max_batch: usize, begin: Begin) -> Writer {
        let stats = Arc::new(WriterStats::default());
        if max_batch <= 1 {
            // Nothing to batch: each write runs in a task of its own as it comes.
            return Writer {
                tx: None,
                begin,
                stats,
            };
        }
        let (tx, rx) = mpsc::channel::<Job>(SQLITE_BATCH * 16);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let rx = rx.clone();
            let begin = begin.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                loop {
                    let Some(batch) = take_batch(&rx, max_batch.max(1)).await else {
                        return;
                    };
                    run_batch(&begin, batch, &stats).await;
                }
            });
        }
        Writer {
            tx: Some(tx),
            begin,
            stats,
        }
    }

    /// Runs `work` in a transaction shared with other writes and returns its result once
    /// that transaction has committed. `work` may run twice (see the module's notes).
    pub async fn write<T, F>(&self, mut work: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&'a mut Tx) -> BoxFuture<'a, DbResult<T>> + Send + 'static,
    {
        let (done, rx) = oneshot::channel();
        let mut work: Work = Box::new(move |tx| {
            let fut = work(tx);
            Box::pin(async move { fut.await.map(|v| Box::new(v) as Box<dyn Any + Send>) })
        });
        match &self.tx {
            Some(queue) => queue
                .send(Job { work, done })
                .await
                .map_err(|_| DbError::WriterGone)?,
            None => {
                // A task of its own, so a caller that goes away (a client hanging up) never
                // leaves the transaction half-done.
                let (begin, stats) = (self.begin.clone(), self.stats.clone());
                tokio::spawn(async move {
                    stats.writes.inc();
                    stats.batch_size.observe(1.0);
                    let out = run_alone(&begin, &mut work).await;
                    stats.commits.inc();
                    let _ = done.send(out);
                });
            }
        }
        let out = rx.await.map_err(|_| DbError::WriterGone)??;
        Ok(*out
            .downcast::<T>()
            .expect("a write returns the type it was given"))
    }
}

/// Waits for one item, then takes whatever else is already waiting, up to `max`. None once
/// every sender is gone.
pub(super) async fn take_batch<T>(rx: &Mutex<mpsc::Receiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(x) => batch.push(x),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn run_batch(begin: &Begin, mut batch: Vec<Job>, stats: &WriterStats) {
    let n = batch.len();
    stats.writes.inc_by(n as u64);
    stats.batch_size.observe(n as f64);
    if n > 1 {
        match try_together(begin, &mut batch).await {
            Ok(outputs) => {
                stats.commits.inc();
                for (job, out) in batch.into_iter().zip(outputs) {
                    let _ = job.done.send(Ok(out));
                }
                return;
            }
            Err(_) => {
                // Something in the batch failed: nothing of it was kept; run each alone.
                stats.replays.inc_by(n as u64);
            }
        }
    }
    for mut job in batch {
        let out = run_alone(begin, &mut job.work).await;
        stats.commits.inc();
        let _ = job.done.send(out);
    }
}

async fn try_together(begin: &Begin, batch: &mut [Job]) -> DbResult<Vec<Box<dyn Any + Send>>> {
    let mut tx = begin().await?;
    let mut outputs = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        outputs.push((job.work)(&mut tx).await?);
    }
    tx.commit().await?;
    Ok(outputs)
}

/// Runs one write in its own transaction. When the connection is lost before the commit is
/// sent (a database restart, `pg_terminate_backend`), nothing of it was kept, so it runs once
/// more on a fresh connection; a loss during the commit is left to the caller (503), since the
/// commit may have happened.
async fn run_alone(begin: &Begin, work: &mut Work) -> Output {
    let mut tried = false;
    loop {
        let mut tx = match begin().await {
            Ok(tx) => tx,
            Err(e) if e.is_unavailable() && !tried => {
                tried = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        match work(&mut tx).await {
            Ok(out) => {
                tx.commit().await?;
                return Ok(out);
            }
            Err(e) if e.is_unavailable() && !tried => {
                tried = true;
                drop(tx);
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}
