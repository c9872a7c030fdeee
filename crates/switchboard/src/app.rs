//! The running application: shared state, and starting the HTTP server and the workers on a
//! listener the caller bound (so tests run the real server on port 0).

use crate::config::Config;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::storage::Storage;
use crate::tenants::TwilioAccount;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;
use twilio::{Client, Credentials};

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: Config,
    storage: Storage,
    http: reqwest::Client,
    /// For URLs a tenant gives: public addresses only, unless allowed.
    tenant_http: reqwest::Client,
    /// Woken when work is queued, so workers need not wait for their next poll.
    work: Notify,
    directory: crate::tenants::directory::Directory,
    metrics: crate::telemetry::Metrics,
    rate_limits: crate::http::limits::RateLimits,
    clock: crate::clock::Clock,
    inbound: InboundWriter,
    /// `/healthz` answers 200 only once this is set.
    ready: std::sync::atomic::AtomicBool,
    /// Set when whoever runs the app marks it ready itself (after its own setup).
    hold_ready: std::sync::atomic::AtomicBool,
}

/// Inbound texts, written in batches.
pub type InboundWriter = crate::db::batch::Batcher<
    Arc<crate::messaging::inbound::Received>,
    crate::messaging::inbound::Receipt,
>;

impl App {
    pub fn new(db: Db, config: Config, storage: Storage) -> Result<Self, String> {
        let http =
            Client::http_client(twilio::rest::Timeouts::default()).map_err(|e| e.to_string())?;
        let tenant_http = crate::egress::client(config.allow_private_urls)?;
        Ok(App {
            inner: Arc::new(Inner {
                tenant_http,
                metrics: crate::telemetry::Metrics::new(&db),
                rate_limits: crate::http::limits::RateLimits::new(&config.limits),
                clock: Default::default(),
                inbound: InboundWriter::start(
                    db.clone(),
                    256,
                    match db.backend() {
                        crate::db::Backend::Sqlite => 1,
                        crate::db::Backend::Postgres => 3,
                    },
                    crate::messaging::inbound::record_many,
                ),
                db,
                config,
                storage,
                http,
                work: Notify::new(),
                ready: Default::default(),
                hold_ready: Default::default(),
                directory: Default::default(),
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }
    /// The shared HTTP client (Twilio's timeouts; set a shorter one per request where needed).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The client for URLs a tenant gives; check them with `egress::check_url` first.
    pub fn tenant_http(&self) -> &reqwest::Client {
        &self.inner.tenant_http
    }

    pub fn work_queued(&self) {
        self.inner.work.notify_waiters();
    }
    pub async fn wait_for_work(&self) {
        self.inner.work.notified().await
    }

    /// Numbers, credentials and API keys as every request looks them up (cached).
    pub fn directory(&self) -> &crate::tenants::directory::Directory {
        &self.inner.directory
    }

    /// Whether the server is ready for traffic (`/healthz`).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn mark_ready(&self) {
        self.inner
            .ready
            .store(true, std::sync::atomic::Ordering::Release)
    }

    /// `run` will not mark the app ready: the caller does once its setup is done.
    pub fn hold_readiness(&self) {
        self.inner
            .hold_ready
            .store(true, std::sync::atomic::Ordering::Release)
    }

    /// The clock rules are judged by (tests move it forward).
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.inner.clock
    }

    pub fn rate_limits(&self) -> &crate::http::limits::RateLimits {
        &self.inner.rate_limits
    }

    pub fn inbound_writer(&self) -> &InboundWriter {
        &self.inner.inbound
    }

    pub fn metrics(&self) -> &crate::telemetry::Metrics {
        &self.inner.metrics
    }

    /// The tenant's Twilio credentials, opened.
    pub async fn twilio_account(&self, tenant_id: &str) -> ApiResult<Option<TwilioAccount>> {
        Ok(self
            .directory()
            .twilio_account(self.db(), &self.config().master_key, tenant_id)
            .await?)
    }

    /// A REST client acting for the tenant.
    pub async fn twilio(&self, tenant_id: &str) -> ApiResult<Client> {
        let acct = self.twilio_account(tenant_id).await?.ok_or_else(|| {
            ApiError::unprocessable(
                "twilio_not_configured",
                "this tenant has no Twilio credentials",
            )
        })?;
        let app = self.clone();
        Ok(Client::with_http(
            self.inner.http.clone(),
            Credentials::AuthToken {
                account_sid: acct.account_sid,
                auth_token: acct.auth_token,
            },
            self.config().twilio_base.clone(),
        )
        .observed(std::sync::Arc::new(move |x| app.metrics().twilio(x))))
    }

    /// Serves HTTP on `listener` (for the api role) and runs the workers (for the worker role)
    /// until `shutdown` resolves. Then it stops taking requests and work, and waits for what is
    /// in flight at most `shutdown_grace`: whatever was not committed by then is redone after a
    /// restart, exactly as after a crash.
    pub async fn run(
        self,
        listener: Option<tokio::net::TcpListener>,
        extra_routes: Option<axum::Router>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if !self
            .inner
            .hold_ready
            .load(std::sync::atomic::Ordering::Acquire)
        {
            self.mark_ready();
        }
        let mut tasks = tokio::task::JoinSet::new();
        if self.config().role.runs_workers() {
            for w in crate::workers::spawn(self.clone(), stop_rx.clone()) {
                tasks.spawn(async move {
                    let _ = w.await;
                    Ok(())
                });
            }
        }
        if let Some(listener) = listener.filter(|_| self.config().role.serves_http()) {
            let mut router = crate::routes::router(self.clone());
            if let Some(extra) = extra_routes {
                router = router.merge(extra);
            }
            let (stopping, limits) = (stop_rx.clone(), self.config().limits.clone());
            tasks.spawn(async move {
                crate::http::serve::serve(listener, router, &limits, stopping).await
            });
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let grace = self.config().shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            let mut result = Ok(());
            while let Some(r) = tasks.join_next().await {
                if let Ok(Err(e)) = r {
                    result = Err(e);
                }
            }
            result
        })
        .await;
        match drained {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    left = tasks.len(),
                    "requests or workers still running after the shutdown grace; leaving them"
                );
                tasks.abort_all();
                Ok(())
            }
        }
    }
}
