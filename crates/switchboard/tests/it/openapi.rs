//! The committed OpenAPI document and the routes in the code stay in step, both ways.

use std::collections::BTreeSet;

/// Every `.route("…", …)` path in the product's source.
fn routes_in_source() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split(".route(").skip(1) {
                    let part = part.trim_start();
                    if let Some(rest) = part.strip_prefix('"') {
                        out.insert(rest.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn openapi_documents_exactly_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(switchboard::http::OPENAPI).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let mut routes = routes_in_source();
    // Served pages, not API.
    routes.remove("/");
    routes.remove("/openapi.json");
    assert_eq!(documented, routes, "openapi.json and the router disagree");
}

use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER};
use serde_json::{json, Value};

/// The documented properties of schema `name`.
fn documented(name: &str) -> BTreeSet<String> {
    let doc: Value = serde_json::from_str(switchboard::http::OPENAPI).unwrap();
    doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect()
}

/// Every field the API answered is documented, and every documented field is answered
/// (but those in `sometimes`, which only some answers carry).
fn matches_schema(v: &Value, name: &str, sometimes: &[&str]) {
    let got: BTreeSet<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    let want = documented(name);
    let undocumented: Vec<&String> = got.difference(&want).collect();
    assert!(
        undocumented.is_empty(),
        "{name}: undocumented fields {undocumented:?} in {v}"
    );
    let missing: Vec<&String> = want
        .difference(&got)
        .filter(|k| !sometimes.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: documented but not answered {missing:?} in {v}"
    );
}

async fn responses_match_their_documented_schemas(b: Backend) {
    let t = TestApp::start(b).await;
    let m = t.send(json!({"to": HANDSET, "body": "documented"})).await;
    matches_schema(&m, "Message", &["events", "media"]);
    let id = m["id"].as_str().unwrap();
    let fetched = t.wait_status(id, "delivered").await;
    matches_schema(&fetched, "Message", &[]);
    let (_, list) = t.get("/v1/messages").await;
    matches_schema(&list["data"][0], "Message", &["events", "media"]);
    matches_schema(&fetched["events"][0], "Event", &[]);
    let (_, convs) = t.get("/v1/conversations").await;
    matches_schema(&convs["data"][0], "Conversation", &[]);
    let (_, nums) = t.get("/v1/numbers").await;
    matches_schema(&nums["data"][0], "Number", &[]);
    let (s, tpl) = t
        .post("/v1/templates", json!({"name": "hi", "body": "Hi {name}"}))
        .await;
    assert_eq!(s, 201, "{tpl}");
    matches_schema(&tpl, "Template", &[]);
    let (s, c) = t
        .post(
            "/v1/contacts",
            json!({"phone": HANDSET, "name": "Ann", "attributes": {"stall": 4}}),
        )
        .await;
    assert!(s == 200 || s == 201, "{c}");
    matches_schema(&c, "Contact", &[]);
    let (s, call) = t
        .post(
            "/v1/calls",
            json!({"to": HANDSET, "say": "Hello", "metadata": {"k": 1}}),
        )
        .await;
    assert_eq!(s, 202, "{call}");
    matches_schema(&call, "Call", &["events", "recordings", "voicemail"]);
    let (_, call) = t
        .get(&format!("/v1/calls/{}", call["id"].as_str().unwrap()))
        .await;
    matches_schema(&call, "Call", &[]);
    let (s, v) = t.post("/v1/verifications", json!({"to": NUMBER})).await;
    assert_eq!(s, 201, "{v}");
    matches_schema(&v, "Verification", &["valid"]);
    let (_, settings) = t.get("/v1/verifications/settings").await;
    matches_schema(&settings, "VerificationSettings", &[]);
    let (_, e) = t.get("/v1/calls/call_nope").await;
    matches_schema(&e, "Error", &[]);
}
both!(responses_match_their_documented_schemas);
