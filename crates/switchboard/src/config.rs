//! Configuration, from flags and the environment, validated at start with the key named.

use crate::crypto::MasterKey;
use std::path::PathBuf;
use std::time::Duration;
use twilio::BaseUrl;

/// Which loops a process runs: the HTTP API and webhooks, the background workers, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Api,
    Worker,
    All,
}

impl Role {
    pub fn serves_http(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

/// Dispatcher and worker timing.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often idle workers look for due work (they are also woken on new work).
    pub poll: Duration,
    /// Sends are given up (failed) after this many attempts.
    pub max_attempts: i64,
    /// Base of the exponential retry backoff.
    pub backoff_base: Duration,
    /// Default validity period of a message, after which an unsent one fails.
    pub default_validity: Duration,
    /// Media downloads are given up after this many attempts.
    pub media_max_attempts: i64,
    /// A sent message with no final status by then is polled at Twilio (callbacks can be lost).
    pub status_poll_after: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            poll: Duration::from_millis(250),
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            default_validity: Duration::from_secs(4 * 3600),
            media_max_attempts: 8,
            status_poll_after: Duration::from_secs(600),
        }
    }
}

/// What one client may take of the server: read timeouts, connections, and request rates.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send a request's headers (`SWITCHBOARD_HEADER_TIMEOUT_SECS`, default 10).
    pub header_timeout: Duration,
    /// Time to send a request's body (`SWITCHBOARD_BODY_TIMEOUT_SECS`, default 30).
    pub body_timeout: Duration,
    /// Open connections at most; more are closed at once (`SWITCHBOARD_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// API requests per second per API key, bursts of twice that (`SWITCHBOARD_RATE_PER_KEY`;
    /// 0 turns it off).
    pub rate_per_key: f64,
    /// Requests per second per client IP, Twilio's webhooks aside (`SWITCHBOARD_RATE_PER_IP`;
    /// 0 turns it off).
    pub rate_per_ip: f64,
    /// Proxies whose `X-Forwarded-For` names the client (`SWITCHBOARD_TRUSTED_PROXIES`: IPs or
    /// CIDRs, comma-separated). Without them the peer address is the client.
    pub trusted_proxies: Vec<crate::http::limits::Cidr>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            rate_per_key: 1000.0,
            rate_per_ip: 2000.0,
            trusted_proxies: vec![],
        }
    }
}

impl Limits {
    /// The defaults, overridden by whatever of `SWITCHBOARD_*` the environment sets.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
        let mut l = Limits::default();
        let secs = |key: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match env(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| config_error(key, "whole seconds from 1 to 3600")),
            }
        };
        let rate = |key: &'static str, default: f64| -> Result<f64, ConfigError> {
            match env(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| config_error(key, "requests per second (0 turns it off)")),
            }
        };
        l.header_timeout = secs("SWITCHBOARD_HEADER_TIMEOUT_SECS", l.header_timeout)?;
        l.body_timeout = secs("SWITCHBOARD_BODY_TIMEOUT_SECS", l.body_timeout)?;
        l.rate_per_key = rate("SWITCHBOARD_RATE_PER_KEY", l.rate_per_key)?;
        l.rate_per_ip = rate("SWITCHBOARD_RATE_PER_IP", l.rate_per_ip)?;
        if let Some(v) = env("SWITCHBOARD_MAX_CONNECTIONS") {
            l.max_connections =
                v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    config_error("SWITCHBOARD_MAX_CONNECTIONS", "a positive number")
                })?;
        }
        if let Some(v) = env("SWITCHBOARD_TRUSTED_PROXIES") {
            l.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse().map_err(|e: String| {
                        config_error("SWITCHBOARD_TRUSTED_PROXIES", format!("{p:?}: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(l)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// How SQLite makes commits durable (`SWITCHBOARD_SQLITE_SYNC`, default full).
    pub sqlite_sync: crate::db::SqliteSync,
    /// The URL Twilio reaches us at (no trailing slash); webhook signatures are checked against it.
    pub public_url: String,
    pub master_key: MasterKey,
    pub twilio_base: BaseUrl,
    pub storage_dir: PathBuf,
    pub default_region: String,
    pub role: Role,
    pub workers: WorkerSettings,
    /// Segments per second for numbers added without a rate.
    pub default_segments_per_second: f64,
    /// Largest media file kept.
    pub max_media_bytes: usize,
    /// How long a request to Twilio may take before its outcome is treated as unknown.
    pub twilio_timeout: Duration,
    /// How long a stopping server waits for requests and workers in flight before it leaves
    /// them (`SWITCHBOARD_SHUTDOWN_SECS`, default 10). What they had not committed is redone
    /// after a restart, as after a crash.
    pub shutdown_grace: Duration,
    /// An OpenAI-compatible speech-to-text endpoint for voicemails (Twilio's otherwise).
    pub stt: Option<Stt>,
    /// Delete recordings at Twilio once they are copied into storage.
    pub delete_recordings_at_twilio: bool,
    /// Timeouts, connections and request rates.
    pub limits: Limits,
    /// Let URLs a tenant gives (an `ask_app` step's app) reach private, loopback and
    /// link-local addresses (`SWITCHBOARD_ALLOW_PRIVATE_URLS`; off for `serve`, on for `dev`).
    pub allow_private_urls: bool,
}

/// Speech to text: `POST {url}/audio/transcriptions` as OpenAI's API (and self-hosted Whisper
/// servers) take it.
#[derive(Clone)]
pub struct Stt {
    pub url: String,
    pub api_key: Option<String>,
    pub model: String,
}

impl std::fmt::Debug for Stt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stt")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

impl Config {
    /// The defaults every way of starting shares (`serve`, `dev`, the commands, tests),
    /// declared once; what the environment, flags or a test sets goes on top.
    pub fn new(
        database_url: String,
        public_url: String,
        master_key: MasterKey,
        twilio_base: BaseUrl,
        storage_dir: PathBuf,
    ) -> Config {
        Config {
            database_url,
            sqlite_sync: Default::default(),
            public_url,
            master_key,
            twilio_base,
            storage_dir,
            default_region: "US".into(),
            role: Role::All,
            workers: WorkerSettings::default(),
            default_segments_per_second: crate::numbers::DEFAULT_SEGMENTS_PER_SECOND,
            max_media_bytes: 20 * 1024 * 1024,
            twilio_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            stt: None,
            delete_recordings_at_twilio: false,
            limits: Limits::default(),
            allow_private_urls: false,
        }
    }

    /// How long a claimed message may stay `submitting` before it is reconciled with Twilio.
    /// Longer than any Twilio call can take, so a live call is never reconciled (and possibly
    /// sent again) under the feet of the worker that made it.
    pub fn submit_lease(&self) -> Duration {
        self.twilio_timeout * 2 + Duration::from_secs(1)
    }
}

pub fn config_error(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        message: message.into(),
    }
}

/// Checks a public URL: http(s), no query or fragment; returns it without a trailing slash.
pub fn parse_public_url(key: &'static str, s: &str) -> Result<String, ConfigError> {
    let u =
        url::Url::parse(s).map_err(|e| config_error(key, format!("{s:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(config_error(key, format!("{s:?} must be an http(s) URL")));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(config_error(
            key,
            format!("{s:?} must not have a query or fragment"),
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}
