//! The Twilio twin: a Twilio-compatible REST API, signed webhooks, simulated handsets and
//! scriptable faults, all in memory. It is an axum [`Router`] meant to be mounted at `/sim`
//! (`switchboard dev`) or served alone (`switchboard sim`).
//!
//! A URL `https://{product}.twilio.com/PATH` of real Twilio is served at `{base}/sim/{product}/PATH`,
//! so an official SDK whose host is rewritten to the twin works unchanged. The control API that
//! plays the rest of the world (handsets, carriers, faults) lives under `{base}/sim/control/…`.

mod api;
mod control;
mod error;
pub mod faults;
mod handset;
mod lifecycle;
mod lookups;
pub mod phone;
pub mod state;
pub mod verify;
pub mod voice;
mod webhooks;

pub use error::SimError;
pub use state::{Delays, Delivery, SentWebhook};

use axum::Router;
use chrono::Utc;
use state::{Account, Number, World};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// A handle on one twin. Cheap to clone; all clones share the same world.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    world: Mutex<World>,
    /// Public URL of the twin's mount point, e.g. `http://127.0.0.1:8080/sim`.
    base_url: RwLock<String>,
    http: reqwest::Client,
}

/// Settings of a number created through [`Sim::add_number`].
pub type NumberSettings = twilio::rest::NumberSettings;

impl Sim {
    /// A twin with no accounts, reachable at `base_url` (the URL `/sim` is mounted at).
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent("TwilioProxy/1.1")
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds");
        Sim {
            inner: Arc::new(Inner {
                world: Mutex::new(World::default()),
                base_url: RwLock::new(base_url.into().trim_end_matches('/').to_string()),
                http,
            }),
        }
    }

    pub fn set_base_url(&self, url: impl Into<String>) {
        *self.inner.base_url.write().expect("lock") = url.into().trim_end_matches('/').to_string();
    }

    /// The URL `/sim` is mounted at.
    pub fn base_url(&self) -> String {
        self.inner.base_url.read().expect("lock").clone()
    }

    /// The Twilio base URL template a client uses to reach this twin.
    pub fn twilio_base(&self) -> String {
        format!("{}/{{product}}", self.base_url())
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock cannot leave the world half-written in a way that
        // matters more than refusing all later requests would.
        self.inner.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The routes, relative to the mount point (`/api/…`, `/control/…`).
    pub fn router(&self) -> Router {
        Router::new()
            .nest("/api/2010-04-01", api::router())
            .nest("/verify/v2", verify::router())
            .nest("/lookups/v2", lookups::router())
            .nest("/control", control::router())
            .fallback(|uri: axum::http::Uri| async move { SimError::not_found(uri.path()) })
            .with_state(self.clone())
    }

    /// A whole server for the twin alone: the routes under `/sim`, and `/healthz`.
    pub fn app(&self) -> Router {
        Router::new()
            .nest("/sim", self.router())
            .route("/healthz", axum::routing::get(|| async { "ok" }))
    }

    /// Creates an account (random SID and token unless given).
    pub fn create_account(
        &self,
        sid: Option<String>,
        auth_token: Option<String>,
    ) -> Result<(String, String), SimError> {
        self.insert_account(sid, auth_token, false)
    }

    /// Creates a test-credentials account: Twilio's magic numbers, nothing delivered, no callbacks.
    pub fn create_test_account(
        &self,
        sid: Option<String>,
        auth_token: Option<String>,
    ) -> Result<(String, String), SimError> {
        self.insert_account(sid, auth_token, true)
    }

    fn insert_account(
        &self,
        sid: Option<String>,
        token: Option<String>,
        test: bool,
    ) -> Result<(String, String), SimError> {
        let sid = sid.unwrap_or_else(|| state::new_sid("AC"));
        if !twilio::sid::is_sid(&sid, "AC") {
            return Err(SimError::bad_request(
                20001,
                format!("Account SID {sid:?} must be AC followed by 32 hex digits"),
            ));
        }
        let token = token.unwrap_or_else(state::new_secret);
        if token.is_empty() {
            return Err(SimError::bad_request(20001, "auth token must not be empty"));
        }
        let mut w = self.world();
        if w.accounts.contains_key(&sid) {
            return Err(SimError::new(409, 20001, format!("account {sid} exists")));
        }
        w.accounts.insert(
            sid.clone(),
            Account {
                sid: sid.clone(),
                auth_token: token.clone(),
                friendly_name: if test {
                    "Test Account".into()
                } else {
                    format!("Twin account {}", &sid[..8])
                },
                test,
                created: Utc::now(),
            },
        );
        Ok((sid, token))
    }

    /// Gives an account a number, as buying one does.
    pub fn add_number(
        &self,
        account_sid: &str,
        phone_number: &str,
        settings: &NumberSettings,
    ) -> Result<twilio::rest::IncomingPhoneNumber, SimError> {
        let mut w = self.world();
        let n = api::numbers::create(&mut w, account_sid, phone_number, settings)?;
        Ok(api::numbers::view(&n))
    }

    /// The SID of a number, whichever account owns it.
    pub fn number_sid(&self, phone_number: &str) -> Option<String> {
        self.world()
            .number_by_phone(phone_number)
            .map(|n: &Number| n.sid.clone())
    }

    pub fn set_delays(&self, d: Delays) {
        self.world().delays = d;
    }

    /// What the simulated network delivered to handsets, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.world().deliveries.clone()
    }

    /// Every webhook the twin sent, oldest first.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.world().webhooks.clone()
    }

    /// A handset texts a number: see [`handset::HandsetSms`].
    pub async fn handset_sms(
        &self,
        req: handset::HandsetSms,
    ) -> Result<handset::HandsetSmsResult, SimError> {
        handset::send(self, req).await
    }
}

pub use handset::{HandsetSms, HandsetSmsResult};
pub use voice::{CallReport, PhoneCall};

impl Sim {
    /// A phone calls a number: see [`voice::PhoneCall`]. Returns when the call has ended.
    pub async fn phone_call(&self, req: PhoneCall) -> Result<CallReport, SimError> {
        voice::phone_call(self, req).await
    }

    /// What happened on a call, in order.
    pub fn call_report(&self, sid: &str) -> Option<CallReport> {
        voice::report(self, sid)
    }

    /// How the phone at `number` behaves when called (answers, presses, says).
    pub fn set_phone(&self, number: &str, script: state::CallScript) {
        self.world().phones.insert(number.to_string(), script);
    }
}
