//! Benchmarks a real Switchboard: the server and the Twilio twin run as their own processes
//! (the release `switchboard` binary), this process generates the load and measures.
//!
//! 1. signed inbound-message webhooks per second, with p50/p99 latency;
//! 2. accepted sends per second through `POST /v1/messages` (API role only, nothing dispatched);
//! 3. dispatch rate to the twin (a worker-role process drains the queue);
//! 4. history query latency with the tenant's table grown to `--history-rows` messages.

use clap::Parser;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, Row};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SID: &str = "AC0000000000000000000000000000be9c";
const TOKEN: &str = "bench-token";
const KEY: &str = "sk_bench_0123456789abcdef";
const MASTER: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[derive(Parser, Debug)]
struct Args {
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Admin URL of the PostgreSQL server (a database is created for the run).
    #[arg(
        long,
        env = "SWITCHBOARD_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_url: String,
    /// The switchboard binary to run.
    #[arg(long, default_value = "target/release/switchboard")]
    bin: String,
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 1_000_000)]
    history_rows: i64,
    /// Sender numbers (each paced separately).
    #[arg(long, default_value_t = 20)]
    numbers: usize,
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1415555{:04}", 100 + i)).collect()
}

fn handset(i: usize) -> String {
    format!("+1628555{:04}", i % 10_000)
}

/// A POST to make: URL, headers, body.
type Request = (String, Vec<(String, String)>, String);

struct Stats {
    n: usize,
    wall: Duration,
    lat: Vec<Duration>,
    errors: usize,
}

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        if self.lat.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
        self.lat[i]
    }
    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} requests in {:.2}s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; errors {}",
            self.n,
            self.wall.as_secs_f64(),
            self.n as f64 / self.wall.as_secs_f64(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
            self.lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            self.errors
        )
    }
}

async fn queued(db: &mut sqlx::AnyConnection) -> i64 {
    let q = "SELECT COUNT(*) AS n FROM messages WHERE status IN ('accepted', 'submitting')";
    db.fetch_one(q).await.unwrap().get::<i64, _>("n")
}

/// Runs `reqs` with `c` in flight; each is (url, headers, body).
async fn load(http: &reqwest::Client, reqs: Vec<Request>, c: usize, ok: u16) -> Stats {
    let reqs = Arc::new(reqs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (reqs, next, http) = (reqs.clone(), next.clone(), http.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((url, headers, body)) = reqs.get(i) else {
                    break;
                };
                let mut rb = http.post(url).body(body.clone());
                for (k, v) in headers {
                    rb = rb.header(k, v);
                }
                let t = Instant::now();
                match rb.send().await {
                    Ok(r) if r.status().as_u16() == ok => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        });
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r.unwrap();
        lat.extend(l);
        errors += e;
    }
    let wall = start.elapsed();
    lat.sort();
    Stats {
        n: reqs.len(),
        wall,
        lat,
        errors,
    }
}

async fn get_latency(http: &reqwest::Client, url: &str, times: usize) -> Stats {
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut errors = 0;
    for _ in 0..times {
        let t = Instant::now();
        match http.get(url).bearer_auth(KEY).send().await {
            Ok(r) if r.status() == 200 => {
                let _ = r.bytes().await;
                lat.push(t.elapsed());
            }
            _ => errors += 1,
        }
    }
    let wall = start.elapsed();
    lat.sort();
    Stats {
        n: times,
        wall,
        lat,
        errors,
    }
}

async fn wait_healthy(http: &reqwest::Client, url: &str) {
    for _ in 0..600 {
        if http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became healthy");
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    sqlx::any::install_default_drivers();
    let tmp = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let database_url = match args.db.as_str() {
        "sqlite" => format!("sqlite:{}", tmp.join("bench.db").display()),
        "postgres" => {
            let name = format!("sbbench_{}", std::process::id());
            let mut c = sqlx::AnyConnection::connect(&args.pg_url)
                .await
                .expect("PostgreSQL");
            c.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let base = &args.pg_url[..args.pg_url.rfind('/').unwrap()];
            format!("{base}/{name}")
        }
        other => panic!("--db sqlite|postgres, not {other}"),
    };
    let nums = numbers(args.numbers);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()
        .unwrap();

    // The twin, as its own process.
    let mut cmd = Command::new(&args.bin);
    cmd.args([
        "sim",
        "--port",
        "0",
        "--account-sid",
        SID,
        "--auth-token",
        TOKEN,
    ]);
    for n in &nums {
        cmd.args(["--number", n]);
    }
    let mut twin = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the switchboard binary (cargo build --release)");
    let mut lines = BufReader::new(twin.stdout.take().unwrap()).lines();
    let twin_url = lines
        .next()
        .unwrap()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches("/sim")
        .to_string();
    std::thread::spawn(move || lines.for_each(drop));
    let _twin = Proc(twin);
    http.post(format!("{twin_url}/sim/control/config"))
        .json(&json!({"delays": {"sending_ms": 1, "sent_ms": 1, "delivered_ms": 1}}))
        .send()
        .await
        .unwrap();

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", database_url.clone()),
        ("SWITCHBOARD_PUBLIC_URL", url.clone()),
        ("SWITCHBOARD_MASTER_KEY", MASTER.into()),
        (
            "SWITCHBOARD_TWILIO_BASE",
            format!("{twin_url}/sim/{{product}}"),
        ),
        (
            "SWITCHBOARD_STORAGE_URL",
            format!("file://{}", tmp.join("media").display()),
        ),
        ("SWITCHBOARD_DEFAULT_SEGMENTS_PER_SECOND", "1000".into()),
        ("TWILIO_ACCOUNT_SID", SID.into()),
        ("TWILIO_AUTH_TOKEN", TOKEN.into()),
        ("TWILIO_PHONE_NUMBER", nums.join(",")),
        ("SWITCHBOARD_API_KEY", KEY.into()),
        // The load comes from one key and one address, far above any client's fair share.
        ("SWITCHBOARD_RATE_PER_KEY", "0".into()),
        ("SWITCHBOARD_RATE_PER_IP", "0".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let spawn = |role: &str| {
        let mut c = Command::new(&args.bin);
        c.args([
            "serve",
            "--role",
            role,
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
        ])
        .stdout(Stdio::null());
        for (k, v) in &env {
            c.env(k, v);
        }
        Proc(c.spawn().unwrap())
    };
    let mut api = spawn("api");
    wait_healthy(&http, &url).await;
    println!(
        "database: {} | concurrency {} | {} requests per load test",
        args.db, args.concurrency, args.requests
    );

    // 1. Signed inbound webhooks.
    let hook = format!("{url}/twilio/messaging");
    let reqs: Vec<_> = (0..args.requests)
        .map(|i| {
            let form = twilio::Form(vec![
                ("MessageSid".into(), format!("SM{:032x}", i + 1)),
                ("AccountSid".into(), SID.into()),
                ("From".into(), handset(i)),
                ("To".into(), nums[i % nums.len()].clone()),
                ("Body".into(), format!("inbound benchmark message {i}")),
                ("NumMedia".into(), "0".into()),
                ("NumSegments".into(), "1".into()),
                ("SmsStatus".into(), "received".into()),
                ("ApiVersion".into(), "2010-04-01".into()),
            ]);
            let sig = twilio::signature::sign(TOKEN, &hook, form.pairs());
            let headers = vec![
                (
                    "Content-Type".to_string(),
                    "application/x-www-form-urlencoded".to_string(),
                ),
                ("X-Twilio-Signature".to_string(), sig),
            ];
            (hook.clone(), headers, form.encode())
        })
        .collect();
    let s = load(&http, reqs, args.concurrency, 200).await;
    println!("{}", s.line("inbound webhooks (signed)"));

    // 2. Accepted sends.
    let reqs: Vec<_> = (0..args.requests)
        .map(|i| {
            let body = json!({"to": handset(i + 5000), "from": nums[i % nums.len()], "body": format!("outbound benchmark message {i}")});
            let headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Authorization".to_string(), format!("Bearer {KEY}")),
            ];
            (format!("{url}/v1/messages"), headers, body.to_string())
        })
        .collect();
    let s = load(&http, reqs, args.concurrency, 202).await;
    println!("{}", s.line("accepted sends (POST /v1/messages)"));

    // 3. Dispatch: a worker drains the queue to the twin.
    let mut db = sqlx::AnyConnection::connect(&database_url).await.unwrap();
    let before = queued(&mut db).await;
    // SQLite has one writer: its deployment is one process (`--role all`), so the dispatcher
    // and the callbacks it causes share one. PostgreSQL runs a worker beside the API.
    let t = Instant::now();
    let worker = if args.db == "sqlite" {
        drop(api);
        api = spawn("all");
        wait_healthy(&http, &url).await;
        None
    } else {
        Some(spawn("worker"))
    };
    while queued(&mut db).await > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if t.elapsed() > Duration::from_secs(600) {
            panic!("dispatch did not finish");
        }
    }
    let wall = t.elapsed();
    drop(worker);
    println!(
        "dispatch to the twin: {before} messages in {:.2}s = {:.0}/s ({} senders at 1000 segments/s each)",
        wall.as_secs_f64(),
        before as f64 / wall.as_secs_f64(),
        nums.len()
    );

    // 4. History on a large table.
    let tenant: String = db
        .fetch_one("SELECT id FROM tenants WHERE name = 'default'")
        .await
        .unwrap()
        .get("id");
    let have: i64 = db
        .fetch_one("SELECT COUNT(*) AS n FROM messages")
        .await
        .unwrap()
        .get("n");
    let add = (args.history_rows - have).max(0);
    let t = Instant::now();
    let cols = "id, tenant_id, direction, from_number, to_number, body, media_urls, status, status_rank, encoding, segments, created_at, updated_at";
    let sql = if args.db == "sqlite" {
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {add}) \
             INSERT INTO messages ({cols}) SELECT 'msg_bulk' || printf('%018d', n), '{tenant}', \
             CASE WHEN n % 2 = 0 THEN 'inbound' ELSE 'outbound' END, '+14155550100', \
             '+1650555' || printf('%04d', n % 10000), 'bulk history message ' || n, '[]', \
             CASE WHEN n % 2 = 0 THEN 'received' ELSE 'delivered' END, 5, 'GSM-7', 1, \
             1600000000000 + n * 10, 1600000000000 + n * 10 FROM seq"
        )
    } else {
        format!(
            "INSERT INTO messages ({cols}) SELECT 'msg_bulk' || lpad(n::text, 18, '0'), '{tenant}', \
             CASE WHEN n % 2 = 0 THEN 'inbound' ELSE 'outbound' END, '+14155550100', \
             '+1650555' || lpad((n % 10000)::text, 4, '0'), 'bulk history message ' || n, '[]', \
             CASE WHEN n % 2 = 0 THEN 'received' ELSE 'delivered' END, 5, 'GSM-7', 1, \
             1600000000000 + n * 10, 1600000000000 + n * 10 FROM generate_series(1, {add}) AS n"
        )
    };
    if add > 0 {
        db.execute(sql.as_str()).await.unwrap();
        if args.db == "postgres" {
            db.execute("ANALYZE messages").await.unwrap();
        } else {
            db.execute("ANALYZE").await.unwrap();
        }
    }
    let total: i64 = db
        .fetch_one("SELECT COUNT(*) AS n FROM messages")
        .await
        .unwrap()
        .get("n");
    println!(
        "history table: {total} messages (bulk insert of {add} took {:.1}s)",
        t.elapsed().as_secs_f64()
    );
    let first: Value = http
        .get(format!("{url}/v1/messages?limit=50"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (what, path) in [
        (
            "newest page (limit 50)",
            "/v1/messages?limit=50".to_string(),
        ),
        (
            "next page by cursor",
            format!("/v1/messages?limit=50&cursor={cursor}"),
        ),
        (
            "one phone's messages",
            "/v1/messages?phone=%2B16505551234&limit=50".to_string(),
        ),
        (
            "outbound delivered filter",
            "/v1/messages?direction=outbound&status=delivered&limit=50".to_string(),
        ),
        (
            "time range",
            "/v1/messages?since=2020-09-13T12:26:40Z&until=2020-09-13T12:30:00Z&limit=50"
                .to_string(),
        ),
    ] {
        let s = get_latency(&http, &format!("{url}{path}"), 200).await;
        println!("{}", s.line(&format!("history: {what}")));
    }

    // 5. Inbound calls answered with an IVR flow (the law-office example).
    let flow: Value = serde_json::from_str(
        &std::fs::read_to_string("examples/ivr-law-office.json")
            .expect("run from the repository root"),
    )
    .unwrap();
    let r = http
        .post(format!("{url}/v1/flows"))
        .bearer_auth(KEY)
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "flow: {}",
        r.text().await.unwrap_or_default()
    );
    let numbers: Value = http
        .get(format!("{url}/v1/numbers"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number_id = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["phone_number"] == nums[0].as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .patch(format!("{url}/v1/numbers/{number_id}"))
        .bearer_auth(KEY)
        .json(&json!({"flow": "law office"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let voice = format!("{url}/twilio/voice");
    let reqs: Vec<_> = (0..args.requests)
        .map(|i| {
            let form = twilio::Form(vec![
                ("AccountSid".into(), SID.into()),
                ("ApiVersion".into(), "2010-04-01".into()),
                ("CallSid".into(), format!("CA{:032x}", i + 1)),
                ("CallStatus".into(), "ringing".into()),
                ("Direction".into(), "inbound".into()),
                ("From".into(), handset(i)),
                ("To".into(), nums[0].clone()),
            ]);
            let sig = twilio::signature::sign(TOKEN, &voice, form.pairs());
            let headers = vec![
                (
                    "Content-Type".to_string(),
                    "application/x-www-form-urlencoded".to_string(),
                ),
                ("X-Twilio-Signature".to_string(), sig),
            ];
            (voice.clone(), headers, form.encode())
        })
        .collect();
    let s = load(&http, reqs, args.concurrency, 200).await;
    println!("{}", s.line("inbound call webhooks (IVR menu TwiML)"));

    drop(api);
    let _ = std::fs::remove_dir_all(&tmp);
}
