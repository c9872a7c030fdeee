//! The background work loops, one per kind of job in the queue (`queue`).

use crate::queue::{Round, Worker};
use crate::App;
use rand::Rng;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Exponential backoff with full jitter: a random wait up to base·2^attempt, at most 5 minutes.
pub fn backoff(base: Duration, attempt: i64) -> Duration {
    let cap = Duration::from_secs(300);
    let exp = base
        .saturating_mul(1u32 << attempt.clamp(0, 16) as u32)
        .min(cap);
    let ms = exp.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

/// Every kind of background job, with the capability that works it.
pub fn all() -> [Worker; 6] {
    [
        crate::messaging::dispatch::WORKER,
        crate::messaging::dispatch::STATUS_POLLS,
        crate::voice::outbound::WORKER,
        crate::messaging::media::WORKER,
        crate::voice::recordings::WORKER,
        crate::voice::recordings::TRANSCRIPTIONS,
    ]
}

/// One loop per kind of job: it works while there is work, then sleeps until woken, the next
/// job is due, or the poll interval passes.
pub fn spawn(app: App, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    all()
        .into_iter()
        .map(|w| spawn_loop(w, app.clone(), stop.clone()))
        .collect()
}

fn spawn_loop(w: Worker, app: App, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let poll = app.config().workers.poll;
        loop {
            if *stop.borrow() {
                return;
            }
            let round = match crate::queue::work(&app, &w).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(worker = w.kind, error = %e, "worker round failed");
                    Round::default()
                }
            };
            if round.moved > 0 {
                continue;
            }
            let until_due = round
                .wake_at
                .map(|at| Duration::from_millis((at - crate::db::now_ms()).max(1) as u64))
                .unwrap_or(poll)
                .min(poll);
            tokio::select! {
                _ = stop.changed() => {}
                _ = app.wait_for_work() => {}
                _ = tokio::time::sleep(until_due) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 0..30 {
            let d = backoff(base, attempt);
            assert!(d <= Duration::from_secs(300));
            assert!(
                d >= base
                    .saturating_mul(1u32 << attempt.min(16) as u32)
                    .min(Duration::from_secs(300))
                    / 2
            );
        }
    }
}
