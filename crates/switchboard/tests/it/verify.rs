//! Phone verification: both engines (built-in, and Twilio Verify through the twin) pass the same
//! tests on SQLite and PostgreSQL: send, re-send (same code), wrong and right codes, check
//! limits, expiry on a moved clock, cancel, send limits and pumping limits.

use crate::harness::{Backend, TestApp, HANDSET};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    Builtin,
    Twilio,
}

macro_rules! engines {
    ($name:ident) => {
        mod $name {
            use super::Engine;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn builtin_sqlite() {
                super::$name($crate::harness::Backend::Sqlite, Engine::Builtin).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn twilio_sqlite() {
                super::$name($crate::harness::Backend::Sqlite, Engine::Twilio).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "SWITCHBOARD_TEST_DATABASE_URL is not set"
            )]
            async fn builtin_postgres() {
                if $crate::harness::postgres_available() {
                    super::$name($crate::harness::Backend::Postgres, Engine::Builtin).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(postgres_tests),
                ignore = "SWITCHBOARD_TEST_DATABASE_URL is not set"
            )]
            async fn twilio_postgres() {
                if $crate::harness::postgres_available() {
                    super::$name($crate::harness::Backend::Postgres, Engine::Twilio).await
                }
            }
        }
    };
}

/// A server whose verifications use `engine`, with `settings` on top.
async fn start(b: Backend, engine: Engine, settings: Value) -> TestApp {
    let t = TestApp::start(b).await;
    let mut s = json!({"app_name": "Acme"});
    if engine == Engine::Twilio {
        let service = t.sim.create_verify_service(&t.account_sid, "Acme");
        s["engine"] = json!("twilio");
        s["twilio_service_sid"] = json!(service);
    }
    for (k, v) in settings.as_object().unwrap() {
        s[k] = v.clone();
    }
    let (status, v) = t
        .call(
            reqwest::Method::PUT,
            "/v1/verifications/settings",
            &t.api_key,
            Some(s),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    t
}

/// The codes texted to `to` so far, oldest first.
fn codes_sent(t: &TestApp, to: &str) -> Vec<String> {
    t.deliveries_to(to)
        .iter()
        .filter_map(|d| {
            let digits: String = d
                .body
                .split(|c: char| !c.is_ascii_digit())
                .rfind(|w| w.len() >= 4)?
                .to_string();
            Some(digits)
        })
        .collect()
}

async fn wait_codes(t: &TestApp, to: &str, n: usize) -> Vec<String> {
    t.eventually("the code on the handset", async || {
        let c = codes_sent(t, to);
        (c.len() >= n).then_some(c)
    })
    .await
}

/// Moves the server's and the twin's clocks forward together.
fn advance(t: &TestApp, by: Duration) {
    t.app.clock().advance(by);
    t.sim.advance_clock(by);
}

async fn codes_are_sent_checked_and_spent(b: Backend, engine: Engine) {
    let t = start(b, engine, json!({})).await;
    let (s, v) = t.post("/v1/verifications", json!({"to": HANDSET})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["send_attempts"], 1);
    assert_eq!(v["channel"], "sms");
    assert!(v["id"].as_str().unwrap().starts_with("ver_"), "{v}");
    assert!(v["expires_at"].is_string());
    let id = v["id"].as_str().unwrap().to_string();
    let first = wait_codes(&t, HANDSET, 1).await[0].clone();
    assert_eq!(first.len(), 6);

    // Asking again while it is pending sends the same code, as a new attempt.
    let (s, again) = t.post("/v1/verifications", json!({"to": HANDSET})).await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(again["id"], v["id"]);
    assert_eq!(again["send_attempts"], 2);
    let codes = wait_codes(&t, HANDSET, 2).await;
    assert_eq!(codes[1], first, "the same code again");

    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (s, c) = t
        .post(
            "/v1/verifications/check",
            json!({"to": HANDSET, "code": wrong}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["valid"], false);
    assert_eq!(c["status"], "pending");
    let (s, c) = t
        .post("/v1/verifications/check", json!({"id": id, "code": first}))
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["valid"], true);
    assert_eq!(c["status"], "approved");
    // Single use: an approved verification cannot be checked again.
    let (s, c) = t
        .post(
            "/v1/verifications/check",
            json!({"to": HANDSET, "code": first}),
        )
        .await;
    assert_eq!(s, 404, "{c}");
    assert_eq!(c["error"]["code"], "verification_not_found");
    let (_, got) = t.get(&format!("/v1/verifications/{id}")).await;
    assert_eq!(got["status"], "approved");

    // A new verification has a new code.
    let (s, _) = t.post("/v1/verifications", json!({"to": HANDSET})).await;
    assert_eq!(s, 201);
    let codes = wait_codes(&t, HANDSET, 3).await;
    assert_ne!(codes[2], first, "a new verification, a new code");

    if engine == Engine::Builtin {
        // The texts are in history with the code masked, and the code is nowhere stored.
        let (_, msgs) = t.get("/v1/messages").await;
        let bodies: Vec<&str> = msgs["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies.len(), 3, "{msgs}");
        assert!(
            bodies.iter().all(|b| *b == "Your Acme code is ******"),
            "{bodies:?}"
        );
        assert_no_code_stored(&t, &[&first, &codes[2]]).await;
    }
}
engines!(codes_are_sent_checked_and_spent);

/// No text column of the tables that touch verifications holds a code.
async fn assert_no_code_stored(t: &TestApp, codes: &[&str]) {
    use sqlx::Row;
    for (table, cols) in [
        (
            "verifications",
            "id, to_number, salt, code_hash, status, app_name, locale",
        ),
        ("messages", "id, body, media_urls"),
        ("message_events", "id, payload"),
        ("jobs", "id, last_error"),
    ] {
        let rows = sqlx::query(&format!("SELECT {cols} FROM {table}"))
            .fetch_all(t.app.db().pool())
            .await
            .unwrap();
        for r in rows {
            for i in 0..cols.split(',').count() {
                let v: Option<String> = r.try_get(i).ok().flatten();
                let v = v.unwrap_or_default();
                for c in codes {
                    assert!(!v.contains(c), "{table} holds a code: {v}");
                }
            }
        }
    }
}

async fn wrong_codes_expiry_cancel_and_resends_are_limited(b: Backend, engine: Engine) {
    let t = start(b, engine, json!({})).await;
    let (a, c, d) = ("+14155550131", "+14155550132", "+14155550133");
    // Five wrong codes, then the verification takes no more.
    let (s, v) = t.post("/v1/verifications", json!({"to": a})).await;
    assert_eq!(s, 201, "{v}");
    let code = wait_codes(&t, a, 1).await[0].clone();
    let wrong = if code == "999999" { "888888" } else { "999999" };
    for i in 1..=5 {
        let (s, r) = t
            .post("/v1/verifications/check", json!({"to": a, "code": wrong}))
            .await;
        assert_eq!(s, 200, "check {i}: {r}");
        assert_eq!(r["valid"], false);
    }
    let (s, r) = t
        .post("/v1/verifications/check", json!({"to": a, "code": code}))
        .await;
    assert_eq!(s, 429, "{r}");
    assert_eq!(r["error"]["code"], "max_check_attempts");

    // Expiry: ten minutes later the code is gone.
    let (s, v) = t.post("/v1/verifications", json!({"to": c})).await;
    assert_eq!(s, 201, "{v}");
    let code = wait_codes(&t, c, 1).await[0].clone();
    advance(&t, Duration::from_secs(11 * 60));
    let (s, r) = t
        .post("/v1/verifications/check", json!({"to": c, "code": code}))
        .await;
    assert_eq!(s, 404, "{r}");
    assert_eq!(r["error"]["code"], "verification_not_found");
    let (_, got) = t
        .get(&format!("/v1/verifications/{}", v["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["status"], "expired");

    // Cancel.
    let (s, v) = t.post("/v1/verifications", json!({"to": d})).await;
    assert_eq!(s, 201, "{v}");
    let code = wait_codes(&t, d, 1).await[0].clone();
    let id = v["id"].as_str().unwrap();
    let (s, r) = t
        .post(&format!("/v1/verifications/{id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "canceled");
    let (s, r) = t
        .post("/v1/verifications/check", json!({"id": id, "code": code}))
        .await;
    assert_eq!(s, 404, "{r}");

    // Five sends per verification.
    for i in 1..=5 {
        let (s, r) = t.post("/v1/verifications", json!({"to": d})).await;
        assert_eq!(s, 201, "send {i}: {r}");
        assert_eq!(r["send_attempts"], i);
    }
    let (s, r) = t.post("/v1/verifications", json!({"to": d})).await;
    assert_eq!(s, 429, "{r}");
    assert_eq!(r["error"]["code"], "max_send_attempts");

    // Bad requests.
    let (s, r) = t
        .post("/v1/verifications", json!({"to": "not a number"}))
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("invalid_phone_number"))
    );
    let (s, r) = t
        .post(
            "/v1/verifications",
            json!({"to": HANDSET, "channel": "pigeon"}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("invalid_channel"))
    );
    let (s, _) = t.get("/v1/verifications/ver_nope").await;
    assert_eq!(s, 404);

    // With Lookup on, a landline gets no text.
    let landline = "+14155550134";
    t.sim.set_line_type(landline, "landline");
    let mut settings = t
        .call(
            reqwest::Method::GET,
            "/v1/verifications/settings",
            &t.api_key,
            None,
        )
        .await
        .1;
    settings["lookup"] = json!(true);
    let (s, v) = t
        .call(
            reqwest::Method::PUT,
            "/v1/verifications/settings",
            &t.api_key,
            Some(settings),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, r) = t.post("/v1/verifications", json!({"to": landline})).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("landline_not_supported")),
        "{r}"
    );
    let (s, r) = t
        .post(
            "/v1/verifications",
            json!({"to": landline, "channel": "call"}),
        )
        .await;
    assert_eq!(s, 201, "a call reaches a landline: {r}");
}
engines!(wrong_codes_expiry_cancel_and_resends_are_limited);

async fn pumping_is_stopped_before_anything_is_sent(b: Backend, engine: Engine) {
    let t = start(
        b,
        engine,
        json!({"limits": {"per_prefix_per_10_minutes": 3}}),
    )
    .await;
    // A burst to neighbouring numbers: the fourth is blocked and nothing goes to it.
    let numbers: Vec<String> = (0..5).map(|i| format!("+1415555016{i}")).collect();
    let mut statuses = vec![];
    for n in &numbers {
        let r = t
            .http
            .post(format!("{}/v1/verifications", t.url))
            .bearer_auth(&t.api_key)
            .json(&json!({"to": n}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_requests");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    wait_codes(&t, &numbers[2], 1).await;
    t.settle().await;
    for n in &numbers[3..] {
        assert!(t.deliveries_to(n).is_empty(), "nothing was sent to {n}");
    }
    let blocked = r#"switchboard_verification_blocks_total{reason="per_prefix"}"#;
    assert_eq!(t.metric(blocked).await, 2.0);

    // Twilio Verify's own Fraud Guard (the twin blocks a prefix): the same error, nothing sent.
    if engine == Engine::Twilio {
        t.fault(json!({"kind": "fraud_guard", "prefix": "+1646"}))
            .await;
        let (s, r) = t
            .post("/v1/verifications", json!({"to": "+16465550100"}))
            .await;
        assert_eq!(
            (s, r["error"]["code"].as_str()),
            (429, Some("too_many_requests")),
            "{r}"
        );
        assert!(t.deliveries_to("+16465550100").is_empty());
    }

    // Countries not allowed get nothing either.
    let (s, r) = t
        .post("/v1/verifications", json!({"to": "+442071838750"}))
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (422, Some("country_not_allowed"))
    );

    // The daily spend cap: room for one more text after the three sent.
    let price = switchboard::messaging::PRICE_PER_SEGMENT_USD;
    let mut s = t
        .call(
            reqwest::Method::GET,
            "/v1/verifications/settings",
            &t.api_key,
            None,
        )
        .await
        .1;
    s["limits"]["daily_spend_usd"] = json!(price * 4.5);
    let (status, v) = t
        .call(
            reqwest::Method::PUT,
            "/v1/verifications/settings",
            &t.api_key,
            Some(s),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (s, r) = t
        .post("/v1/verifications", json!({"to": "+12125550100"}))
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = t
        .post("/v1/verifications", json!({"to": "+13125550100"}))
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{r}"
    );
    let spend = r#"switchboard_verification_blocks_total{reason="daily_spend"}"#;
    assert_eq!(t.metric(spend).await, 1.0);
}
engines!(pumping_is_stopped_before_anything_is_sent);

async fn codes_can_be_read_out_in_a_call(b: Backend, engine: Engine) {
    let t = start(b, engine, json!({})).await;
    let (s, v) = t
        .post(
            "/v1/verifications",
            json!({"to": HANDSET, "channel": "call"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["channel"], "call");
    let spoken = match engine {
        Engine::Twilio => {
            let d = t
                .eventually("the twin's call", async || {
                    t.deliveries_to(HANDSET)
                        .into_iter()
                        .find(|d| d.channel == "call")
                })
                .await;
            d.body
        }
        Engine::Builtin => {
            let call_id = v["call_id"].as_str().unwrap().to_string();
            let call = t
                .eventually("the call", async || {
                    let (_, c) = t.get(&format!("/v1/calls/{call_id}")).await;
                    (c["status"] == "completed").then_some(c)
                })
                .await;
            let report = t
                .sim
                .call_report(call["twilio_sid"].as_str().unwrap())
                .unwrap();
            report
                .steps
                .iter()
                .filter(|s| s.what == "say")
                .map(|s| s.detail["text"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let digits: String = spoken.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits.len(), 12, "the code twice: {spoken}");
    let code = &digits[..6];
    assert_eq!(&digits[6..], code);
    let (s, c) = t
        .post(
            "/v1/verifications/check",
            json!({"to": HANDSET, "code": code}),
        )
        .await;
    assert_eq!((s, c["valid"].as_bool()), (200, Some(true)), "{c}");
    if engine == Engine::Builtin {
        let (_, call) = t
            .get(&format!("/v1/calls/{}", v["call_id"].as_str().unwrap()))
            .await;
        assert!(
            !call.to_string().contains(code),
            "the call keeps the code masked"
        );
    }
}
engines!(codes_can_be_read_out_in_a_call);

/// Behind a trusted proxy the client is who `X-Forwarded-For` names, and each client has its
/// own allowance.
async fn client_addresses_behind_trusted_proxies_are_limited(b: Backend, engine: Engine) {
    let t = TestApp::start_with(b, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut s = json!({"app_name": "Acme", "limits": {"per_ip_per_hour": 2}});
    if engine == Engine::Twilio {
        s["engine"] = json!("twilio");
        s["twilio_service_sid"] = json!(t.sim.create_verify_service(&t.account_sid, "Acme"));
    }
    let (status, v) = t
        .call(
            reqwest::Method::PUT,
            "/v1/verifications/settings",
            &t.api_key,
            Some(s),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let post = async |to: &str, client: &str| {
        t.http
            .post(format!("{}/v1/verifications", t.url))
            .bearer_auth(&t.api_key)
            .header("X-Forwarded-For", format!("{client}, 127.0.0.1"))
            .json(&json!({ "to": to }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("+12125550101", "203.0.113.7").await, 201);
    assert_eq!(post("+13125550102", "203.0.113.7").await, 201);
    assert_eq!(post("+16175550103", "203.0.113.7").await, 429);
    assert_eq!(
        post("+17185550104", "203.0.113.8").await,
        201,
        "another client"
    );
    let blocked = r#"switchboard_verification_blocks_total{reason="per_ip"}"#;
    assert_eq!(t.metric(blocked).await, 1.0);
    assert!(t.deliveries_to("+16175550103").is_empty());
}
engines!(client_addresses_behind_trusted_proxies_are_limited);
