//! The API's JSON bodies, fuzzed over HTTP against the real server: any JSON (or none) sent
//! to any route that takes a body gets a 2xx or a 4xx in our error shape, never a 5xx.
//! Cases per route: `PROPTEST_CASES` (at most 256 here; 96 by default).

use crate::both;
use crate::harness::{Backend, TestApp, HANDSET};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

/// Field names the API knows, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "to", "from", "body", "media_urls", "template", "variables", "name", "phone",
            "attributes", "start", "steps", "type", "say", "text", "next", "flow", "numbers",
            "phone_number", "segments_per_second", "auto_reply", "metadata", "validity_period",
            "messaging_service_sid", "record", "twiml_url", "caller", "at", "choices", "prompt",
            "status", "account_sid", "auth_token", "url", "timeout_ms", "fallback", "opted_out",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\+1[0-9]{10}".prop_map(Value::String),
        "(msg|call|flow|tpl|con)_[0-9a-z]{26}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        Just(Value::String("x".repeat(70_000))),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly objects, as the API expects, sometimes anything.
fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map(key(), json_value(), 0..10)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        1 => json_value(),
    ]
}

fn cases() -> usize {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(96usize)
        .min(256)
}

async fn api_bodies_never_cause_a_server_error(b: Backend) {
    let t = TestApp::start_with(b, |c| c.limits.rate_per_key = 0.0).await;
    let (_, tpl) = t
        .post(
            "/v1/templates",
            json!({"name": "hello", "body": "Hi {{name}}"}),
        )
        .await;
    let flow = json!({"name": "f", "start": "a", "steps": {"a": {"type": "say", "text": "hi"}}});
    let (_, fl) = t.post("/v1/flows", flow).await;
    let (_, contact) = t.post("/v1/contacts", json!({"phone": HANDSET})).await;
    let (_, nums) = t.get("/v1/numbers").await;
    let number = nums["data"][0]["id"].as_str().unwrap().to_string();
    let routes: Vec<(reqwest::Method, String)> = vec![
        (reqwest::Method::POST, "/v1/messages".into()),
        (reqwest::Method::POST, "/v1/calls".into()),
        (reqwest::Method::POST, "/v1/contacts".into()),
        (reqwest::Method::POST, "/v1/templates".into()),
        (reqwest::Method::POST, "/v1/flows".into()),
        (reqwest::Method::POST, "/v1/numbers".into()),
        (
            reqwest::Method::POST,
            format!("/v1/templates/{}/preview", tpl["id"].as_str().unwrap()),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/flows/{}/preview", fl["id"].as_str().unwrap()),
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/flows/{}", fl["id"].as_str().unwrap()),
        ),
        (reqwest::Method::PATCH, format!("/v1/numbers/{number}")),
        (
            reqwest::Method::PATCH,
            format!("/v1/contacts/{}", contact["id"].as_str().unwrap()),
        ),
    ];
    let mut runner = TestRunner::new(Config::default());
    let strategy = body();
    let garbage = any::<Vec<u8>>();
    for (method, path) in &routes {
        for i in 0..cases() {
            let request = || {
                t.http
                    .request(method.clone(), format!("{}{path}", t.url))
                    .bearer_auth(&t.api_key)
                    .header("Content-Type", "application/json")
            };
            let bytes = if i % 8 == 7 {
                // Not JSON at all.
                garbage.new_tree(&mut runner).unwrap().current()
            } else {
                let v = strategy.new_tree(&mut runner).unwrap().current();
                serde_json::to_vec(&v).unwrap()
            };
            let size = bytes.len();
            let sent: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            let r = match request().body(bytes.clone()).send().await {
                Ok(r) => r,
                // Past the body limit the server answers 413 and closes the connection,
                // which may reach the client while it is still writing.
                Err(_) if size > switchboard::http::MAX_BODY_BYTES => continue,
                // A pooled connection the server closed after such an answer: once more on
                // a new one.
                Err(_) => request()
                    .body(bytes)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path} with {sent}: {e}")),
            };
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status < 500, "{method} {path} with {sent}: {status} {text}");
            if status >= 400 {
                let e: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(
                    e["error"]["code"].is_string(),
                    "{method} {path} with {sent}: {status} {text}"
                );
            }
        }
    }
}
both!(api_bodies_never_cause_a_server_error);
