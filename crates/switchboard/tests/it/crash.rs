//! Kill -9 in the middle of a burst: after a restart every message is delivered exactly once.
//! The server and the twin run as separate processes, as in production.

use crate::both;
use crate::harness::{fresh_database, random_hex, tempfile_dir, Backend};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BURST: usize = 300;
const SID: &str = "AC00000000000000000000000000c4a5e1";
const TOKEN: &str = "crash-test-token";
const NUMBER: &str = "+14155550100";

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

fn start_twin() -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "sim",
            "--port",
            "0",
            "--account-sid",
            SID,
            "--auth-token",
            TOKEN,
            "--number",
            NUMBER,
        ])
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let base = first
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches("/sim")
        .to_string();
    (Proc(child), base)
}

fn start_server(env: &[(String, String)], port: u16) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["serve", "--port", &port.to_string(), "--host", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().unwrap())
}

async fn wait_healthy(http: &reqwest::Client, url: &str) {
    for _ in 0..300 {
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
    panic!("server at {url} never became healthy");
}

/// A field (`body`, `to`) of each message the network delivered, one entry per delivery.
async fn delivered(http: &reqwest::Client, twin: &str, field: &str) -> Vec<String> {
    let v: Value = http
        .get(format!("{twin}/sim/control/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "delivered")
        .map(|m| m[field].as_str().unwrap().to_string())
        .collect()
}

async fn delivered_bodies(http: &reqwest::Client, twin: &str) -> Vec<String> {
    delivered(http, twin, "body").await
}

/// Polls `done` every 50 ms until it holds, for at most 30 s.
async fn until(mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `serve`'s environment for these tests: fast pacing, short Twilio timeouts, quick polls.
fn server_env(
    database_url: &str,
    url: &str,
    twin: &str,
    media: &tempfile_dir::Dir,
    key: &str,
) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database_url),
        ("SWITCHBOARD_PUBLIC_URL", url),
        (
            "SWITCHBOARD_MASTER_KEY",
            "6b1d7c3f0e2a4b5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f",
        ),
        (
            "SWITCHBOARD_TWILIO_BASE",
            &format!("{twin}/sim/{{product}}"),
        ),
        (
            "SWITCHBOARD_STORAGE_URL",
            &format!("file://{}", media.path().display()),
        ),
        ("SWITCHBOARD_DEFAULT_SEGMENTS_PER_SECOND", "150"),
        ("SWITCHBOARD_TWILIO_TIMEOUT_SECS", "1"),
        // Callbacks sent while the server was down are lost, as with Twilio: polling recovers them.
        ("SWITCHBOARD_STATUS_POLL_SECS", "1"),
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_PHONE_NUMBER", NUMBER),
        ("SWITCHBOARD_API_KEY", key),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn kill_during_burst_loses_nothing_and_sends_nothing_twice(b: Backend) {
    let (database_url, _dir) = fresh_database(b).await;
    let (_twin, twin) = start_twin();
    let http = reqwest::Client::new();
    http.post(format!("{twin}/sim/control/config"))
        .json(&json!({"delays": {"sending_ms": 5, "sent_ms": 5, "delivered_ms": 5}}))
        .send()
        .await
        .unwrap();
    // A few slow answers make it likely that the kill lands while a call to Twilio is open.
    http.post(format!("{twin}/sim/control/faults"))
        .json(&json!({"kind": "slow", "ms": 400, "times": 6}))
        .send()
        .await
        .unwrap();
    let media = tempfile_dir::Dir::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let key = format!("sk_crash_{}", random_hex());
    let env = server_env(&database_url, &url, &twin, &media, &key);
    let mut server = start_server(&env, port);
    wait_healthy(&http, &url).await;

    let mut ids = Vec::new();
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        pending.spawn(async move {
            let r = http
                .post(format!("{url}/v1/messages"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("burst-{i}"))
                .json(&json!({"to": format!("+1415555{:04}", 2000 + i), "body": format!("burst message {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        });
        if pending.len() >= 8 {
            ids.push(pending.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(id) = pending.join_next().await {
        ids.push(id.unwrap());
    }
    assert_eq!(ids.len(), BURST, "every send was acknowledged");

    // Kill the server hard while it is dispatching.
    for _ in 0..400 {
        if delivered_bodies(&http, &twin).await.len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    let at_kill = delivered_bodies(&http, &twin).await.len();
    assert!(
        at_kill < BURST,
        "the kill came before the burst was through ({at_kill} delivered)"
    );

    let _server = start_server(&env, port);
    wait_healthy(&http, &url).await;
    until(async || delivered_bodies(&http, &twin).await.len() >= BURST).await;
    // Once no message job is left, nothing more can be sent: the ledger below is final.
    until(async || jobs(&http, &url, "message").await == 0).await;
    assert_eq!(jobs(&http, &url, "message").await, 0);
    let mut bodies = delivered_bodies(&http, &twin).await;
    let total = bodies.len();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        BURST,
        "every message delivered ({at_kill} before the kill)"
    );
    assert_eq!(total, BURST, "no message delivered twice");
    // Our side catches up too: every message ends delivered (callbacks, or polls for the
    // callbacks lost while the server was down).
    for id in &ids {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = http
                .get(format!("{url}/v1/messages/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if last["status"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "delivered", "{last}");
    }
}
both!(kill_during_burst_loses_nothing_and_sends_nothing_twice);

const REPLIES: usize = 150;

/// A burst of texts answered by an auto-reply, then SIGTERM while the replies go out: the server
/// stops within its grace period, and after a restart every text is stored once and every reply
/// delivered once.
async fn sigterm_after_an_auto_reply_burst_stops_promptly_and_loses_nothing(b: Backend) {
    let (database_url, _dir) = fresh_database(b).await;
    let (_twin, twin) = start_twin();
    let http = reqwest::Client::new();
    http.post(format!("{twin}/sim/control/config"))
        .json(&json!({"delays": {"sending_ms": 5, "sent_ms": 5, "delivered_ms": 5}}))
        .send()
        .await
        .unwrap();
    let media = tempfile_dir::Dir::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let key = format!("sk_term_{}", random_hex());
    let env = server_env(&database_url, &url, &twin, &media, &key);
    let mut server = start_server(&env, port);
    wait_healthy(&http, &url).await;
    let nums: Value = http
        .get(format!("{url}/v1/numbers"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number_id = nums["data"][0]["id"].as_str().unwrap().to_string();
    let r = http
        .patch(format!("{url}/v1/numbers/{number_id}"))
        .bearer_auth(&key)
        .json(&json!({"auto_reply": "Thanks, we got your message."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut pending = tokio::task::JoinSet::new();
    for i in 0..REPLIES {
        let (http, url) = (http.clone(), url.clone());
        pending.spawn(async move {
            let hook = format!("{url}/twilio/messaging");
            let sid = format!("SM{:032x}", 0x7e_0000 + i);
            let form: Vec<(String, String)> = [
                ("MessageSid", sid.as_str()),
                ("AccountSid", SID),
                ("From", &format!("+1415555{:04}", 3000 + i)),
                ("To", NUMBER),
                ("Body", "hello"),
                ("NumMedia", "0"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let sig = twilio::signature::sign(TOKEN, &hook, &form);
            let r = http
                .post(&hook)
                .header("X-Twilio-Signature", sig)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
        if pending.len() >= 16 {
            pending.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = pending.join_next().await {
        r.unwrap();
    }

    // SIGTERM while the replies are being dispatched.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut exited = None;
    for _ in 0..300 {
        if let Some(s) = server.0.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.expect("the server stopped within 15 s of SIGTERM");
    assert!(status.success(), "a clean exit: {status}");

    let _server = start_server(&env, port);
    wait_healthy(&http, &url).await;
    until(async || delivered(&http, &twin, "to").await.len() >= REPLIES).await;
    until(async || jobs(&http, &url, "message").await == 0).await;
    assert_eq!(jobs(&http, &url, "message").await, 0);
    let mut to = delivered(&http, &twin, "to").await;
    let total = to.len();
    to.sort();
    to.dedup();
    assert_eq!((to.len(), total), (REPLIES, REPLIES), "each reply once");
    let mut inbound = 0;
    let mut cursor = String::new();
    loop {
        let v: Value = http
            .get(format!(
                "{url}/v1/messages?direction=inbound&limit=100{cursor}"
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        inbound += v["data"].as_array().unwrap().len();
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(inbound, REPLIES, "every text stored once");
}
both!(sigterm_after_an_auto_reply_burst_stops_promptly_and_loses_nothing);

const CALLS: usize = 30;

/// Jobs of `kind` queued or running, from `/metrics`.
async fn jobs(http: &reqwest::Client, url: &str, kind: &str) -> i64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!(r#"switchboard_queue_depth{{kind="{kind}"}} "#)))
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

/// Calls placed while Twilio answers slowly (so the server times out not knowing whether the
/// call exists) and the server is killed mid-burst: after a restart every call is placed exactly
/// once and linked to Twilio's call, found by reconciliation rather than placed again.
async fn kill_during_slow_call_placement_places_each_call_once(b: Backend) {
    let (database_url, _dir) = fresh_database(b).await;
    let (_twin, twin) = start_twin();
    let http = reqwest::Client::new();
    // The answer comes after our 1 s timeout: the call exists at Twilio, we do not know it.
    http.post(format!("{twin}/sim/control/faults"))
        .json(&json!({"kind": "slow", "ms": 1500, "times": 5}))
        .send()
        .await
        .unwrap();
    let media = tempfile_dir::Dir::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let key = format!("sk_calls_{}", random_hex());
    let env = server_env(&database_url, &url, &twin, &media, &key);
    let mut server = start_server(&env, port);
    wait_healthy(&http, &url).await;
    let mut ids = Vec::new();
    for i in 0..CALLS {
        let r = http
            .post(format!("{url}/v1/calls"))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("call-{i}"))
            .json(&json!({"to": format!("+1415555{:04}", 4000 + i), "say": "Your order is ready."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let twilio = twilio::Client::new(
        twilio::Credentials::AuthToken {
            account_sid: SID.into(),
            auth_token: TOKEN.into(),
        },
        twilio::BaseUrl::new(format!("{twin}/sim/{{product}}")).unwrap(),
    )
    .unwrap();
    let placed = async || {
        let page = twilio
            .list_calls(&twilio::rest::ListCalls {
                page_size: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap();
        page.items
            .into_iter()
            .map(|c| c.to.unwrap_or_default())
            .collect::<Vec<String>>()
    };
    for _ in 0..400 {
        if placed().await.len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.0.kill().unwrap(); // SIGKILL, with slow creates in flight
    server.0.wait().unwrap();
    let _server = start_server(&env, port);
    wait_healthy(&http, &url).await;
    let mut linked = 0;
    for _ in 0..600 {
        linked = 0;
        for id in &ids {
            let v: Value = http
                .get(format!("{url}/v1/calls/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["twilio_sid"].as_str().is_some() {
                linked += 1;
            }
        }
        // Every job finished too, so nothing more will be placed: the count below is final.
        if linked == CALLS && jobs(&http, &url, "call").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(linked, CALLS, "every call linked to Twilio's");
    assert_eq!(jobs(&http, &url, "call").await, 0, "no call left to place");
    let mut to = placed().await;
    let total = to.len();
    to.sort();
    to.dedup();
    assert_eq!((to.len(), total), (CALLS, CALLS), "each call placed once");
}
both!(kill_during_slow_call_placement_places_each_call_once);
