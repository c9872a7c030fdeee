use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER, NUMBER2};
use serde_json::{json, Value};

async fn send_is_delivered_with_events(b: Backend) {
    let t = TestApp::start(b).await;
    let m = t
        .send(json!({"to": "(415) 555-0199", "body": "Hello <world> & \"friends\" 😀"}))
        .await;
    assert_eq!(m["status"], "accepted");
    assert_eq!(m["to"], HANDSET, "normalised to E.164");
    assert_eq!(m["from"], NUMBER);
    assert_eq!(m["encoding"], "UCS-2");
    assert_eq!(m["segments"], 1);
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    let done = t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
    assert!(done["twilio_sid"].as_str().unwrap().starts_with("SM"));
    assert!(done["delivered_at"].is_string());
    // Twilio's callbacks, one per status (a slow answer under load may add a `reconciled`
    // event: what Twilio said when asked).
    let statuses: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_callback")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sending", "sent", "delivered"]);
    let got = t.deliveries_to(HANDSET);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "Hello <world> & \"friends\" 😀");
}
both!(send_is_delivered_with_events);

async fn carrier_failure_keeps_the_code(b: Backend) {
    let t = TestApp::start(b).await;
    t.fault(json!({"number": "+14155550188", "kind": "carrier_error", "code": 30003}))
        .await;
    let m = t.send(json!({"to": "+14155550188", "body": "hi"})).await;
    let done = t
        .wait_status(m["id"].as_str().unwrap(), "undelivered")
        .await;
    assert_eq!(done["error_code"], "30003");
    assert!(
        done["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("Unreachable destination handset")),
        "the code's meaning is shown: {done}"
    );
}
both!(carrier_failure_keeps_the_code);

async fn twilio_errors_are_final_and_21610_records_the_opt_out(b: Backend) {
    let t = TestApp::start(b).await;
    // The handset opted out at Twilio while the number's webhook pointed elsewhere: we never
    // saw the STOP.
    let client = twilio::Client::new(
        twilio::Credentials::AuthToken {
            account_sid: t.account_sid.clone(),
            auth_token: t.auth_token.clone(),
        },
        twilio::BaseUrl::new(format!("{}/sim/{{product}}", t.sim_url)).unwrap(),
    )
    .unwrap();
    let n = client.find_number(NUMBER2).await.unwrap().unwrap();
    client
        .update_number(
            &n.sid,
            &twilio::rest::NumberSettings {
                sms_url: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.sim
        .handset_sms(sim::HandsetSms {
            from: "+14155550177".into(),
            to: NUMBER2.into(),
            body: "STOP".into(),
            media_urls: vec![],
        })
        .await
        .unwrap();
    let m = t
        .send(json!({"to": "+14155550177", "from": NUMBER2, "body": "promo"}))
        .await;
    let done = t.wait_status(m["id"].as_str().unwrap(), "failed").await;
    assert_eq!(done["error_code"], "21610");
    let (s, v) = t
        .post(
            "/v1/messages",
            json!({"to": "+14155550177", "from": NUMBER2, "body": "again"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("recipient_opted_out"))
    );
}
both!(twilio_errors_are_final_and_21610_records_the_opt_out);

async fn rate_limits_are_retried(b: Backend) {
    let t = TestApp::start(b).await;
    t.fault(json!({"kind": "rate_limit", "retry_after_secs": 1, "times": 2}))
        .await;
    let m = t.send(json!({"to": HANDSET, "body": "patience"})).await;
    let id = m["id"].as_str().unwrap().to_string();
    // What the API shows only moves forward, through the retries too.
    let rank = |s: &str| {
        [
            "accepted",
            "submitting",
            "queued",
            "sending",
            "sent",
            "delivered",
        ]
        .iter()
        .position(|x| *x == s)
        .unwrap_or_else(|| panic!("unexpected status {s}"))
    };
    let mut seen = vec!["accepted".to_string()];
    let done = t
        .eventually("delivered after the retries", async || {
            let (_, v) = t.get(&format!("/v1/messages/{id}")).await;
            let s = v["status"].as_str().unwrap().to_string();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            (s == "delivered").then_some(v)
        })
        .await;
    assert!(
        seen.windows(2).all(|w| rank(&w[0]) < rank(&w[1])),
        "statuses only move forward: {seen:?}"
    );
    assert_eq!(done["attempts"], 3);
    assert_eq!(
        done["error_code"],
        Value::Null,
        "a delivered message shows no error"
    );
    assert_eq!(t.deliveries_to(HANDSET).len(), 1);
    // Delivered: no job is left for it (no status poll waiting either).
    let left: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE subject_id = $1")
            .bind(&id)
            .fetch_one(t.app.db().pool())
            .await
            .unwrap(),
        "n",
    );
    assert_eq!(left, 0, "no job left for a delivered message");
}
both!(rate_limits_are_retried);

async fn timeouts_are_reconciled_not_resent(b: Backend) {
    let t = TestApp::start_with(b, |c| {
        c.twilio_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    // The twin creates the message, then answers after the client gave up.
    t.fault(json!({"kind": "slow", "ms": 3000, "times": 1}))
        .await;
    let m = t.send(json!({"to": HANDSET, "body": "exactly once"})).await;
    let done = t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(
        t.deliveries_to(HANDSET).len(),
        1,
        "sent once though the first answer never came"
    );
}
both!(timeouts_are_reconciled_not_resent);

async fn duplicate_and_reordered_callbacks_end_in_one_final_status(b: Backend) {
    let t = TestApp::start(b).await;
    t.fault(json!({"number": HANDSET, "kind": "duplicate_callbacks", "times": 1}))
        .await;
    let m = t.send(json!({"to": HANDSET, "body": "dup"})).await;
    let id = m["id"].as_str().unwrap().to_string();
    t.wait_status(&id, "delivered").await;
    // Each callback came twice; the repeats are answered and counted, not kept again.
    let dup = r#"switchboard_webhooks_total{kind="messaging/status",outcome="duplicate"}"#;
    t.eventually("three repeated callbacks", async || {
        (t.metric(dup).await >= 3.0).then_some(())
    })
    .await;
    let (_, done) = t.get(&format!("/v1/messages/{id}")).await;
    let events = done["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "each callback kept once: {done}");
    assert!(
        events.iter().all(|e| e["applied"] == true),
        "each status applied once: {done}"
    );

    t.fault(json!({"number": "+14155550188", "kind": "reorder_callbacks", "times": 1}))
        .await;
    let m = t
        .send(json!({"to": "+14155550188", "body": "reorder"}))
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    let v = t
        .eventually("three callbacks stored", async || {
            let (_, v) = t.get(&format!("/v1/messages/{id}")).await;
            (v["events"].as_array().unwrap().len() == 3).then_some(v)
        })
        .await;
    assert_eq!(
        v["status"], "delivered",
        "late 'sent' and 'sending' did not move it back"
    );
    let evs: Vec<(String, bool)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_string(),
                e["applied"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        evs,
        [
            ("delivered".into(), true),
            ("sent".into(), false),
            ("sending".into(), false)
        ]
    );
}
both!(duplicate_and_reordered_callbacks_end_in_one_final_status);

async fn idempotency_keys(b: Backend) {
    let t = TestApp::start(b).await;
    let send = |body: &'static str| {
        t.http
            .post(format!("{}/v1/messages", t.url))
            .bearer_auth(&t.api_key)
            .header("Idempotency-Key", "order-42")
            .json(&json!({"to": HANDSET, "body": body}))
            .send()
    };
    let a: Value = send("once").await.unwrap().json().await.unwrap();
    let r = send("once").await.unwrap();
    assert_eq!(r.status(), 202);
    let b2: Value = r.json().await.unwrap();
    assert_eq!(a["id"], b2["id"]);
    let r = send("different").await.unwrap();
    assert_eq!(r.status(), 409);
    t.wait_status(a["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(t.deliveries_to(HANDSET).len(), 1);
}
both!(idempotency_keys);

async fn templates_and_contacts(b: Backend) {
    let t = TestApp::start(b).await;
    let (s, tpl) = t
        .post(
            "/v1/templates",
            json!({"name": "reminder", "body": "Hi {name}, your table for {party} is at {time}."}),
        )
        .await;
    assert_eq!(s, 201, "{tpl}");
    assert_eq!(tpl["variables"], json!(["name", "party", "time"]));
    let (s, _) = t
        .post(
            "/v1/contacts",
            json!({"phone": HANDSET, "name": "Ana", "attributes": {"party": 4}}),
        )
        .await;
    assert_eq!(s, 201);
    let m = t
        .send(json!({"to": HANDSET, "template": "reminder", "variables": {"time": "7pm"}}))
        .await;
    assert_eq!(m["body"], "Hi Ana, your table for 4 is at 7pm.");
    let (s, v) = t
        .post(
            "/v1/messages",
            json!({"to": "+14155550188", "template": "reminder", "variables": {"time": "7pm"}}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("missing_variable"))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("name"));
    let (s, v) = t
        .post("/v1/messages", json!({"to": HANDSET, "template": "nope"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("unknown_template"))
    );
    let (s, p) = t
        .post(
            &format!("/v1/templates/{}/preview", tpl["id"].as_str().unwrap()),
            json!({"variables": {"name": "Bo", "party": "2", "time": "8"}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["segments"], 1);
    assert_eq!(p["body"], "Hi Bo, your table for 2 is at 8.");
    let (s, _) = t
        .post("/v1/templates", json!({"name": "reminder", "body": "dup"}))
        .await;
    assert_eq!(s, 409);
    let (s, _) = t
        .post(
            "/v1/templates",
            json!({"name": "broken", "body": "Hi {name"}),
        )
        .await;
    assert_eq!(s, 422);
}
both!(templates_and_contacts);

async fn validity_period_fails_instead_of_sending_late(b: Backend) {
    let t = TestApp::start(b).await;
    // The sender is busy for a long time: the next message waits past its validity.
    let (_, numbers) = t.get("/v1/numbers").await;
    let id = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["phone_number"] == NUMBER2)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/numbers/{id}"),
            &t.api_key,
            Some(json!({"segments_per_second": 0.2})),
        )
        .await;
    assert_eq!(s, 200);
    let first = t
        .send(json!({"to": HANDSET, "from": NUMBER2, "body": "first"}))
        .await;
    let second = t.send(json!({"to": "+14155550188", "from": NUMBER2, "body": "too late", "validity_period": 1})).await;
    t.wait_status(first["id"].as_str().unwrap(), "delivered")
        .await;
    let v = t
        .wait_status(second["id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(v["error_code"], "validity_expired");
    assert!(t.deliveries_to("+14155550188").is_empty());
}
both!(validity_period_fails_instead_of_sending_late);

async fn history_filters_and_cursor_pages(b: Backend) {
    let t = TestApp::start(b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let to = if i % 2 == 0 { HANDSET } else { "+14155550188" };
        ids.push(
            t.send(json!({"to": to, "body": format!("m{i}")})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    t.handset_sms(HANDSET, NUMBER, "inbound one", &[]).await;
    let (_, first) = t.get("/v1/messages?limit=2").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let (s, page) = t.get(&format!("/v1/messages?limit=2&cursor={c}")).await;
        assert_eq!(s, 200);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 6);
    let (_, inbound) = t.get("/v1/messages?direction=inbound").await;
    assert_eq!(inbound["data"].as_array().unwrap().len(), 1);
    let (_, handset) = t.get("/v1/messages?phone=%2B14155550199").await;
    assert_eq!(handset["data"].as_array().unwrap().len(), 4);
    let (_, none) = t.get("/v1/messages?since=2999-01-01T00:00:00Z").await;
    assert!(none["data"].as_array().unwrap().is_empty());
    let (s, _) = t.get("/v1/messages?cursor=garbage").await;
    assert_eq!(s, 400);
    let (s, _) = t.get("/v1/messages?direction=sideways").await;
    assert_eq!(s, 400);
    let (_, convs) = t.get("/v1/conversations").await;
    assert_eq!(convs["data"].as_array().unwrap().len(), 2);
    let c = convs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact_phone"] == HANDSET)
        .unwrap();
    let (_, thread) = t
        .get(&format!(
            "/v1/conversations/{}/messages",
            c["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(thread["data"].as_array().unwrap().len(), 4);
    assert_eq!(thread["data"][0]["body"], "inbound one");
}
both!(history_filters_and_cursor_pages);

async fn lost_callbacks_are_recovered_by_polling(b: Backend) {
    let t = TestApp::start_with(b, |c| {
        c.workers.status_poll_after = std::time::Duration::from_millis(300)
    })
    .await;
    // The twin's callbacks go nowhere: as if this server had been unreachable.
    t.fault(json!({"number": HANDSET, "kind": "drop_callbacks", "times": 1}))
        .await;
    let m = t
        .send(json!({"to": HANDSET, "body": "where did my callbacks go"}))
        .await;
    let v = t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"status_callback"), "{kinds:?}");
    assert!(kinds.contains(&"status_poll"), "{kinds:?}");
}
both!(lost_callbacks_are_recovered_by_polling);
