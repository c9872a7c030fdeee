//! The test harness: a real server on a random port, on a fresh SQLite file or PostgreSQL
//! database, with the Twilio twin (on its own port) as Twilio.

use serde_json::{json, Value};
use sim::{Delays, Sim};
use std::time::Duration;
use switchboard::config::{Config, WorkerSettings};
use switchboard::crypto::MasterKey;
use switchboard::server::{self, DefaultTenant};
use switchboard::App;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body on both databases: `both!(name)` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await
            }
            // Built as ignored (reported as skipped) when no PostgreSQL is configured; see
            // build.rs. Under CI a missing server fails instead.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "SWITCHBOARD_TEST_DATABASE_URL is not set"
            )]
            async fn postgres() {
                if $crate::harness::postgres_available() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            }
        }
    };
}

/// Whether PostgreSQL tests can run: a missing server fails the test (it is only built to run
/// when one was configured, or under CI).
pub fn postgres_available() -> bool {
    match std::env::var("SWITCHBOARD_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => true,
        _ => panic!("SWITCHBOARD_TEST_DATABASE_URL must name a PostgreSQL server"),
    }
}

/// A test's own database: a SQLite file in a temporary folder, or a PostgreSQL database that
/// is dropped with this.
pub enum TestDb {
    /// Kept for its Drop: the folder goes with the test.
    Sqlite(#[allow(dead_code)] tempfile_dir::Dir),
    Postgres {
        admin: String,
        name: String,
    },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres { admin, name } = self else {
            return;
        };
        let (admin, name) = (admin.clone(), name.clone());
        // Drop runs inside the test's runtime, which must not block on itself.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await
                {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = sqlx::Executor::execute(&mut conn, sql.as_str()).await {
                        eprintln!("could not drop test database {name}: {e}");
                    }
                }
            })
        })
        .join();
    }
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database(backend: Backend) -> (String, TestDb) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile_dir::Dir::new();
            (
                format!("sqlite:{}", dir.path().join("test.db").display()),
                TestDb::Sqlite(dir),
            )
        }
        Backend::Postgres => {
            let admin = std::env::var("SWITCHBOARD_TEST_DATABASE_URL").expect("checked");
            let name = format!("sbtest_{}", random_hex());
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create test database");
            let base = match admin.rfind('/') {
                Some(i)
                    if admin[..i].contains("://")
                        && admin[i..].len() > 1
                        && !admin[..i].ends_with('/') =>
                {
                    &admin[..i]
                }
                _ => admin.trim_end_matches('/'),
            };
            let url = format!("{base}/{name}");
            (url, TestDb::Postgres { admin, name })
        }
    }
}

pub fn random_hex() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

/// A temporary folder removed when dropped.
pub mod tempfile_dir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("switchboard-test-{}", super::random_hex()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub const NUMBER: &str = "+14155550100";
pub const NUMBER2: &str = "+14155550101";
pub const HANDSET: &str = "+14155550199";

pub struct TestApp {
    pub url: String,
    pub api_key: String,
    pub sim: Sim,
    pub sim_url: String,
    pub app: App,
    pub account_sid: String,
    pub auth_token: String,
    pub http: reqwest::Client,
    pub database_url: String,
    _db: TestDb,
    _media: tempfile_dir::Dir,
}

/// A twin on its own port with an account owning NUMBER and NUMBER2.
pub async fn start_twin() -> (Sim, String, String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sim = Sim::new(format!("{url}/sim"));
    sim.set_delays(Delays {
        sending_ms: 10,
        sent_ms: 10,
        delivered_ms: 10,
    });
    let (sid, token) = sim.create_account(None, None).unwrap();
    for n in [NUMBER, NUMBER2] {
        sim.add_number(&sid, n, &Default::default()).unwrap();
    }
    let app = sim.app();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (sim, url, sid, token)
}

pub fn test_config(
    database_url: &str,
    public_url: &str,
    twin_url: &str,
    media: &std::path::Path,
) -> Config {
    let mut c = Config::new(
        database_url.to_string(),
        public_url.to_string(),
        MasterKey::generate(),
        twilio::BaseUrl::new(format!("{twin_url}/sim/{{product}}")).unwrap(),
        media.to_path_buf(),
    );
    c.workers = WorkerSettings {
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(50),
        ..Default::default()
    };
    c.default_segments_per_second = 100.0;
    c.max_media_bytes = 1 << 20;
    c.twilio_timeout = Duration::from_secs(2);
    c.shutdown_grace = Duration::from_secs(5);
    // Tests run the apps they call on this machine.
    c.allow_private_urls = true;
    c
}

/// Another tenant's key and Twilio account.
pub struct Other {
    pub api_key: String,
    pub account_sid: String,
    pub auth_token: String,
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (database_url, dir) = fresh_database(backend).await;
        let (sim, sim_url, account_sid, auth_token) = start_twin().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let media = tempfile_dir::Dir::new();
        let mut config = test_config(&database_url, &url, &sim_url, media.path());
        tweak(&mut config);
        let app = server::build(config).await.unwrap();
        let api_key = format!("sk_test_{}", random_hex());
        server::ensure_tenant(
            &app,
            &DefaultTenant {
                name: "acme".into(),
                api_key: api_key.clone(),
                account_sid: account_sid.clone(),
                auth_token: auth_token.clone(),
                numbers: vec![NUMBER.into(), NUMBER2.into()],
                segments_per_second: Some(100.0),
                verify_service_sid: None,
            },
        )
        .await
        .unwrap();
        tokio::spawn(
            app.clone()
                .run(Some(listener), None, std::future::pending()),
        );
        TestApp {
            url,
            api_key,
            sim,
            sim_url,
            app,
            account_sid,
            auth_token,
            http: reqwest::Client::new(),
            database_url,
            _db: dir,
            _media: media,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &self.api_key, None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, &self.api_key, Some(body))
            .await
    }

    /// Runs the queue until no job is running or due: whatever the work so far was going to do
    /// has been done, so a test can check that something did *not* happen.
    pub async fn settle(&self) {
        for _ in 0..500 {
            switchboard::queue::drain(&self.app).await.unwrap();
            if switchboard::queue::busy(self.app.db()).await.unwrap() == 0 {
                return;
            }
            // Jobs the server's own workers hold are finishing.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the queue never settled");
    }

    /// Sends and asserts 202.
    pub async fn send(&self, body: Value) -> Value {
        let (s, v) = self.post("/v1/messages", body).await;
        assert_eq!(s, 202, "send failed: {v}");
        v
    }

    /// Polls (bounded) until the message reaches `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let (s, v) = self.get(&format!("/v1/messages/{id}")).await;
            assert_eq!(s, 200, "{v}");
            if v["status"] == status {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("message {id} never reached {status}: {last}");
    }

    /// A handset texts a number through the twin.
    pub async fn handset_sms(&self, from: &str, to: &str, body: &str, media: &[&str]) -> Value {
        let r = self
            .http
            .post(format!("{}/sim/control/sms", self.sim_url))
            .json(&json!({"from": from, "to": to, "body": body, "media_urls": media}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{v}");
        v
    }

    pub async fn fault(&self, f: Value) {
        let r = self
            .http
            .post(format!("{}/sim/control/faults", self.sim_url))
            .json(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    /// Polls (bounded) until `check` holds.
    pub async fn eventually<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..600 {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Creates a second tenant with its own key, Twilio account and number.
    pub async fn second_tenant(&self, number: &str) -> String {
        self.other_tenant(number).await.api_key
    }

    /// A second tenant with its own key, Twilio account and number, and what it knows.
    pub async fn other_tenant(&self, number: &str) -> Other {
        let (sid, token) = self.sim.create_account(None, None).unwrap();
        self.sim
            .add_number(&sid, number, &Default::default())
            .unwrap();
        let key = format!("sk_other_{}", random_hex());
        server::ensure_tenant(
            &self.app,
            &DefaultTenant {
                name: format!("other-{}", random_hex()),
                api_key: key.clone(),
                account_sid: sid.clone(),
                auth_token: token.clone(),
                numbers: vec![number.into()],
                segments_per_second: Some(100.0),
                verify_service_sid: None,
            },
        )
        .await
        .unwrap();
        Other {
            api_key: key,
            account_sid: sid,
            auth_token: token,
        }
    }

    /// Changes one of the tenant's numbers (by phone) with `PATCH /v1/numbers/{id}`.
    pub async fn patch_number(&self, phone: &str, change: Value) -> Value {
        let (_, nums) = self.get("/v1/numbers").await;
        let id = nums["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["phone_number"] == phone)
            .unwrap_or_else(|| panic!("no number {phone}: {nums}"))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, v) = self
            .call(
                reqwest::Method::PATCH,
                &format!("/v1/numbers/{id}"),
                &self.api_key,
                Some(change),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// POSTs a webhook to `path` signed with `token`, as Twilio would for that account.
    pub async fn signed(
        &self,
        token: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let url = format!("{}{path}", self.url);
        let sig = twilio::signature::sign(token, &url, form);
        self.http
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The value of one series of `/metrics`, e.g.
    /// `switchboard_webhooks_total{kind="messaging/status",outcome="duplicate"}` (0 if absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn deliveries_to(&self, to: &str) -> Vec<sim::Delivery> {
        self.sim
            .deliveries()
            .into_iter()
            .filter(|d| d.to == to)
            .collect()
    }
}
