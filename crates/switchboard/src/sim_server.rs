//! `switchboard sim`: the Twilio twin served alone.

use sim::{NumberSettings, Sim};
use std::future::Future;
use tokio::net::TcpListener;

/// What a twin was seeded with, to print or to hand to tests.
#[derive(Debug, Clone)]
pub struct SimSeed {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub numbers: Vec<String>,
}

/// Seeds a twin on `listener` and serves it until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    account_sid: Option<String>,
    auth_token: Option<String>,
    numbers: &[String],
    on_ready: impl FnOnce(&SimSeed),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = format!("http://{addr}/sim");
    let sim = Sim::new(&base_url);
    let (sid, token) = sim
        .create_account(account_sid, auth_token)
        .map_err(|e| e.0.message)?;
    for n in numbers {
        sim.add_number(&sid, n, &NumberSettings::default())
            .map_err(|e| format!("--number {n}: {}", e.0.message))?;
    }
    on_ready(&SimSeed {
        base_url,
        account_sid: sid,
        auth_token: token,
        numbers: numbers.to_vec(),
    });
    axum::serve(listener, sim.app())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())
}
