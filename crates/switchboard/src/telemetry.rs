//! Logs, spans and metrics. Every request gets a span with a request id (sent back as
//! `X-Request-Id`); `/metrics` serves Prometheus' text format: HTTP requests by route and status
//! with latency, webhooks by kind and outcome, queue depth and age, Twilio API calls, commits
//! and batch sizes. Secrets never reach either: handlers log ids, never tokens or bodies.

use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::io::IsTerminal;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Logs to stderr: human-readable (coloured only on a terminal), or JSON lines with
/// `SWITCHBOARD_LOG_FORMAT=json`. `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("SWITCHBOARD_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

type Labels = Vec<(&'static str, String)>;

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<Labels, Counter>,
    http_latency: Family<Labels, Histogram>,
    webhooks: Family<Labels, Counter>,
    twilio_requests: Family<Labels, Counter>,
    twilio_latency: Family<Labels, Histogram>,
    queue_depth: Family<Labels, Gauge>,
    queue_age: Family<Labels, Gauge<f64, AtomicU64>>,
    pub db_unavailable: Counter,
    rate_limited: Family<Labels, Counter>,
    verifications: Family<Labels, Counter>,
    verification_blocks: Family<Labels, Counter>,
}

impl Metrics {
    /// The metrics of a server whose database is `db` (its writer's counters included).
    pub fn new(db: &crate::db::Db) -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let http_requests = Family::<Labels, Counter>::default();
        let http_latency =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        let webhooks = Family::<Labels, Counter>::default();
        let twilio_requests = Family::<Labels, Counter>::default();
        let twilio_latency =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        let w = db.writer_stats();
        let (commits, batched_writes) = (w.commits.clone(), w.writes.clone());
        let (replayed_writes, batch_size) = (w.replays.clone(), w.batch_size.clone());
        let queue_depth = Family::<Labels, Gauge>::default();
        let queue_age = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let db_unavailable = Counter::default();
        let rate_limited = Family::<Labels, Counter>::default();
        let verifications = Family::<Labels, Counter>::default();
        let verification_blocks = Family::<Labels, Counter>::default();
        registry.register(
            "verifications",
            "Verification codes by engine and outcome (sent, resent, approved, wrong_code, ...)",
            verifications.clone(),
        );
        registry.register(
            "verification_blocks",
            "Verification codes not sent, by the limit that stopped them",
            verification_blocks.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests answered 429, by what was limited (ip, api_key)",
            rate_limited.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method",
            http_latency.clone(),
        );
        registry.register(
            "webhooks",
            "Twilio webhooks by kind and outcome (accepted, duplicate, bad_signature, invalid)",
            webhooks.clone(),
        );
        registry.register(
            "twilio_requests",
            "Requests to Twilio's API by resource, method and outcome",
            twilio_requests.clone(),
        );
        registry.register(
            "twilio_request_duration_seconds",
            "Time Twilio's API took to answer, by resource and method",
            twilio_latency.clone(),
        );
        registry.register(
            "db_commits",
            "Write transactions committed by the group-commit writer",
            commits.clone(),
        );
        registry.register(
            "db_writes",
            "Writes handed to the group-commit writer",
            batched_writes.clone(),
        );
        registry.register(
            "db_replayed_writes",
            "Writes run again alone after their batch failed",
            replayed_writes.clone(),
        );
        registry.register(
            "db_batch_size",
            "Writes committed together in one transaction",
            batch_size.clone(),
        );
        registry.register("queue_depth", "Jobs waiting, by kind", queue_depth.clone());
        registry.register(
            "queue_oldest_age_seconds",
            "How long the oldest due job of each kind has waited",
            queue_age.clone(),
        );
        registry.register(
            "db_unavailable",
            "Requests answered 503 because the database could not be reached",
            db_unavailable.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_latency,
            webhooks,
            twilio_requests,
            twilio_latency,
            queue_depth,
            queue_age,
            db_unavailable,
            rate_limited,
            verifications,
            verification_blocks,
        }
    }
}

impl Metrics {
    /// A webhook of `kind` (its route) ended with `outcome`.
    pub fn webhook(&self, kind: &str, outcome: &'static str) {
        self.webhooks
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// A verification step of `engine` ended with `outcome`.
    pub fn verification(&self, engine: &str, outcome: &str) {
        self.verifications
            .get_or_create(&vec![
                ("engine", engine.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// A code was not sent because of `reason`.
    pub fn verification_blocked(&self, reason: &str) {
        self.verification_blocks
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// A request was refused by the rate limit on `what`.
    pub fn rate_limited(&self, what: &str) {
        self.rate_limited
            .get_or_create(&vec![("limit", what.to_string())])
            .inc();
    }

    /// A request to Twilio's API went as `x` says.
    pub fn twilio(&self, x: &twilio::rest::Exchange<'_>) {
        let outcome = match x.status {
            None => "no_answer",
            Some(s) if (200..300).contains(&s) => "ok",
            Some(429) => "rate_limited",
            Some(s) if s >= 500 => "server_error",
            Some(_) => "client_error",
        };
        let base = vec![
            ("resource", x.resource.to_string()),
            ("method", x.method.to_string()),
        ];
        self.twilio_latency
            .get_or_create(&base)
            .observe(x.elapsed.as_secs_f64());
        let mut labels = base;
        labels.push(("outcome", outcome.to_string()));
        self.twilio_requests.get_or_create(&labels).inc();
    }

    /// Sets the depth and oldest age of one kind of queued work.
    pub fn queue(&self, kind: &str, depth: i64, oldest_age_secs: f64) {
        let labels = vec![("kind", kind.to_string())];
        self.queue_depth.get_or_create(&labels).set(depth);
        self.queue_age.get_or_create(&labels).set(oldest_age_secs);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A request id: the caller's if it sent a sane one, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::ids::new_id("req"))
}

/// The middleware every request passes: a span with its id, route and status, metrics, and
/// `X-Request-Id` on the answer.
pub async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route, status = tracing::field::Empty);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.record("status", status);
    if status >= 500 {
        span.in_scope(|| tracing::warn!(status, "request failed"));
    }
    let m = app.metrics();
    let base = vec![("route", route), ("method", method)];
    m.http_latency
        .get_or_create(&base)
        .observe(started.elapsed().as_secs_f64());
    let mut labels = base;
    labels.push(("status", status.to_string()));
    m.http_requests.get_or_create(&labels).inc();
    if resp.extensions().get::<DatabaseUnavailable>().is_some() {
        m.db_unavailable.inc();
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Marks a response that is a 503 because the database could not be reached.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnavailable;

/// `GET /metrics`.
pub async fn metrics(State(app): State<App>) -> Response {
    if let Err(e) = crate::queue::observe(&app).await {
        tracing::warn!(error = %e, "queue depths could not be read");
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics().encode(),
    )
        .into_response()
}
