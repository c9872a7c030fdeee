use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER};
use serde_json::json;

async fn tenants_cannot_cross_over(b: Backend) {
    let t = TestApp::start(b).await;
    let other = t.second_tenant("+14155550142").await;
    let mine = t.send(json!({"to": HANDSET, "body": "private"})).await;
    let id = mine["id"].as_str().unwrap();
    t.handset_sms(HANDSET, NUMBER, "inbound private", &[]).await;

    let (s, _) = t
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages/{id}"),
            &other,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (_, list) = t
        .call(reqwest::Method::GET, "/v1/messages", &other, None)
        .await;
    assert!(list["data"].as_array().unwrap().is_empty());
    let (_, convs) = t
        .call(reqwest::Method::GET, "/v1/conversations", &other, None)
        .await;
    assert!(convs["data"].as_array().unwrap().is_empty());
    let (_, my_convs) = t.get("/v1/conversations").await;
    let cid = my_convs["data"][0]["id"].as_str().unwrap();
    let (s, _) = t
        .call(
            reqwest::Method::GET,
            &format!("/v1/conversations/{cid}/messages"),
            &other,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (_, nums) = t
        .call(reqwest::Method::GET, "/v1/numbers", &other, None)
        .await;
    assert_eq!(nums["data"].as_array().unwrap().len(), 1);
    assert_eq!(nums["data"][0]["phone_number"], "+14155550142");
    let (_, my_nums) = t.get("/v1/numbers").await;
    let nid = my_nums["data"][0]["id"].as_str().unwrap();
    let (s, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/numbers/{nid}"),
            &other,
            Some(json!({"auto_reply": "hijack"})),
        )
        .await;
    assert_eq!(s, 404);
    // Sending from someone else's number is refused.
    let (s, v) = t
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            &other,
            Some(json!({"to": HANDSET, "from": NUMBER, "body": "spoof"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("unknown_sender"))
    );
    // The other tenant's own sends work, from its own number.
    let (s, v) = t
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            &other,
            Some(json!({"to": HANDSET, "body": "mine"})),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(v["from"], "+14155550142");
}
both!(tenants_cannot_cross_over);

async fn bad_input_gets_clear_errors(b: Backend) {
    let t = TestApp::start(b).await;
    let cases = [
        (
            json!({"to": "12", "body": "x"}),
            422,
            "invalid_phone_number",
        ),
        (
            json!({"to": "'; DROP TABLE messages; --", "body": "x"}),
            422,
            "invalid_phone_number",
        ),
        (json!({"to": HANDSET}), 422, "empty_message"),
        (json!({"to": HANDSET, "body": "   "}), 422, "empty_message"),
        (
            json!({"to": HANDSET, "body": "a".repeat(1601)}),
            422,
            "body_too_long",
        ),
        (
            json!({"to": HANDSET, "body": "x", "from": "+14155550111"}),
            422,
            "unknown_sender",
        ),
        (
            json!({"to": HANDSET, "body": "x", "media_urls": ["javascript:alert(1)"]}),
            422,
            "invalid_media_url",
        ),
        (
            json!({"to": HANDSET, "body": "x", "surprise": true}),
            400,
            "invalid_json",
        ),
        (json!({"to": 5}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let (s, v) = t.post("/v1/messages", body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = t
        .http
        .post(format!("{}/v1/messages", t.url))
        .bearer_auth(&t.api_key)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = t
        .http
        .post(format!("{}/v1/messages", t.url))
        .bearer_auth(&t.api_key)
        .header("Content-Type", "application/json")
        .body(vec![b'['; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = t
        .http
        .post(format!("{}/v1/messages", t.url))
        .bearer_auth(&t.api_key)
        .body("to=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (s, v) = t
        .call(reqwest::Method::GET, "/v1/messages", "sk_wrong", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = t.get("/v1/messages/msg_00000000000000000000000000").await;
    assert_eq!(s, 404);
    let (s, _) = t.get("/v1/nothing").await;
    assert_eq!(s, 404);
    // SQL-looking text is just text.
    let (s, v) = t
        .post(
            "/v1/messages",
            json!({"to": HANDSET, "body": "nul \u{0} inside"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_text"))
    );
    let body = "Robert'); DROP TABLE messages;-- \\x00 \\u0000 %s {{}} <Response/>";
    let m = t.send(json!({"to": HANDSET, "body": body})).await;
    let v = t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(v["body"], body);
    let (_, list) = t.get("/v1/messages").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "nothing else stored by the bad requests"
    );
}
both!(bad_input_gets_clear_errors);

async fn two_servers_on_one_database_send_each_message_once(b: Backend) {
    let t = TestApp::start(b).await;
    // A second replica on the same database and twin, running its own workers.
    let media = crate::harness::tempfile_dir::Dir::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = crate::harness::test_config(&t.database_url, &t.url, &t.sim_url, media.path());
    config.master_key = t.app.config().master_key.clone();
    let replica = switchboard::server::build(config).await.unwrap();
    tokio::spawn(replica.run(Some(listener), None, std::future::pending()));
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            t.send(json!({"to": HANDSET, "body": format!("burst {i}")}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for id in &ids {
        t.wait_status(id, "delivered").await;
    }
    let delivered = t.deliveries_to(HANDSET);
    assert_eq!(delivered.len(), 40, "each message once");
    let mut bodies: Vec<_> = delivered.iter().map(|d| d.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 40);
}
both!(two_servers_on_one_database_send_each_message_once);
