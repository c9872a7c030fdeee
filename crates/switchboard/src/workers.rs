//! Background work loops: the message dispatcher and the media downloader. Each loop works
//! while there is work, then sleeps until woken or its poll interval passes.

use crate::messaging::dispatch::Round;
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

pub fn spawn(app: App, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        spawn_loop("dispatcher", app.clone(), stop.clone(), |a| {
            Box::pin(async move { crate::messaging::dispatch::work(&a).await })
        }),
        spawn_loop("calls", app.clone(), stop.clone(), |a| {
            Box::pin(async move { crate::voice::outbound::work(&a).await })
        }),
        spawn_loop("recordings", app.clone(), stop.clone(), |a| {
            Box::pin(async move { crate::voice::recordings::work(&a).await })
        }),
        spawn_loop("media", app, stop, |a| {
            Box::pin(async move { crate::messaging::media::work(&a).await })
        }),
    ]
}

type Step = fn(
    App,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = crate::db::DbResult<Round>> + Send>,
>;

fn spawn_loop(
    name: &'static str,
    app: App,
    mut stop: watch::Receiver<bool>,
    step: Step,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let poll = app.config().workers.poll;
        loop {
            if *stop.borrow() {
                return;
            }
            let round = match step(app.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(worker = name, error = %e, "worker step failed");
                    Round::default()
                }
            };
            if round.moved > 0 {
                continue;
            }
            // Sleep until woken, the next known due time, or the poll interval.
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
