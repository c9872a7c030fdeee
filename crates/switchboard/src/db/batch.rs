//! Batching of one kind of write: items that arrive while the previous batch is committing are
//! written together by one function, so a burst of N webhooks costs a few multi-row statements
//! instead of N times every statement. Each caller still gets its own answer, after the commit.
//! If a batch fails, each of its items is written again alone, so one bad item fails alone.

use super::{BoxFuture, Db, DbError, DbResult, Tx};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Writes `items` in `tx` and returns one output per item, in order.
pub type WriteMany<I, O> = for<'a> fn(&'a mut Tx, &'a [I]) -> BoxFuture<'a, DbResult<Vec<O>>>;

pub struct Batcher<I, O> {
    tx: mpsc::Sender<(I, oneshot::Sender<DbResult<O>>)>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<I, O> Batcher<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    /// Starts `parallel` tasks that take up to `max` items at a time and write them with `run`.
    pub fn start(db: Db, max: usize, parallel: usize, run: WriteMany<I, O>) -> Self {
        let (tx, rx) = mpsc::channel::<(I, oneshot::Sender<DbResult<O>>)>(max * 8);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..parallel.max(1) {
            let (rx, db) = (rx.clone(), db.clone());
            tokio::spawn(async move {
                loop {
                    let Some(batch) = super::writer::take_batch(&rx, max).await else {
                        return;
                    };
                    write_batch(&db, run, batch).await;
                }
            });
        }
        Batcher { tx }
    }

    /// Writes `item` with others that arrive meanwhile; answers once they are committed.
    pub async fn write(&self, item: I) -> DbResult<O> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send((item, done))
            .await
            .map_err(|_| DbError::WriterGone)?;
        rx.await.map_err(|_| DbError::WriterGone)?
    }
}

async fn write_batch<I, O>(
    db: &Db,
    run: WriteMany<I, O>,
    batch: Vec<(I, oneshot::Sender<DbResult<O>>)>,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    let (items, answers): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
    let items = Arc::new(items);
    let all = items.clone();
    let result = db
        .write(move |tx| {
            let items = all.clone();
            Box::pin(async move { run(tx, &items).await })
        })
        .await;
    match result {
        Ok(outs) if outs.len() == answers.len() => {
            for (answer, out) in answers.into_iter().zip(outs) {
                let _ = answer.send(Ok(out));
            }
        }
        _ if answers.len() == 1 => {
            let e = result.err().unwrap_or(DbError::WriterGone);
            let _ = answers.into_iter().next().map(|a| a.send(Err(e)));
        }
        _ => {
            for (i, answer) in answers.into_iter().enumerate() {
                let one = items[i].clone();
                let out = db
                    .write(move |tx| {
                        let one = one.clone();
                        Box::pin(async move {
                            let mut outs = run(tx, std::slice::from_ref(&one)).await?;
                            outs.pop().ok_or(DbError::WriterGone)
                        })
                    })
                    .await;
                let _ = answer.send(out);
            }
        }
    }
}
