//! What an attacker (or a broken client) tries, kept refused: another tenant's rows reached
//! through Twilio ids, captured webhooks replayed as new ones, NUL bytes and malformed ids,
//! lost database connections, slow and greedy clients, and what unsigned requests reveal.

use crate::both;
use crate::harness::{random_hex, Backend, TestApp, HANDSET, NUMBER};
use serde_json::{json, Value};

const ATTACKER_NUMBER: &str = "+14155550177";

/// A fresh Twilio id: two letters and 32 hex digits.
fn sid(prefix: &str) -> String {
    format!("{prefix}{}{}", random_hex(), random_hex())
}

/// Every error is our JSON shape and a 4xx.
async fn client_error(r: reqwest::Response, what: &str) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(
        (400..500).contains(&status),
        "{what}: expected a 4xx, got {status} {body}"
    );
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{what}: not our error shape: {body}"
    );
    (status, body)
}

async fn incoming_call(
    t: &TestApp,
    token: &str,
    account: &str,
    to: &str,
    call_sid: &str,
) -> reqwest::Response {
    t.signed(
        token,
        "/twilio/voice",
        &[
            ("CallSid", call_sid),
            ("AccountSid", account),
            ("From", HANDSET),
            ("To", to),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ],
    )
    .await
}

async fn only_call(t: &TestApp, key: &str) -> Value {
    let (_, calls) = t.call(reqwest::Method::GET, "/v1/calls", key, None).await;
    let data = calls["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{calls}");
    let id = data[0]["id"].as_str().unwrap();
    t.call(reqwest::Method::GET, &format!("/v1/calls/{id}"), key, None)
        .await
        .1
}

async fn cross_tenant_twilio_ids_are_refused(b: Backend) {
    let t = TestApp::start(b).await;
    let attacker = t.other_tenant(ATTACKER_NUMBER).await;
    let (va, vt) = (t.account_sid.as_str(), t.auth_token.as_str());
    let (aa, at) = (attacker.account_sid.as_str(), attacker.auth_token.as_str());

    // The victim's call, with a recording.
    let victim_call = sid("CA");
    let r = incoming_call(&t, vt, va, NUMBER, &victim_call).await;
    assert_eq!(r.status(), 200);
    let victim = only_call(&t, &t.api_key).await;
    let victim_id = victim["id"].as_str().unwrap().to_string();
    let rec = sid("RE");
    let rec_url = format!(
        "{}/api/2010-04-01/Accounts/{va}/Recordings/{rec}",
        t.sim_url
    );
    let path = format!("/twilio/voice/recording?call={victim_id}");
    let r = t
        .signed(
            vt,
            &path,
            &[
                ("CallSid", victim_call.as_str()),
                ("AccountSid", va),
                ("RecordingSid", rec.as_str()),
                ("RecordingUrl", rec_url.as_str()),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", "7"),
            ],
        )
        .await;
    assert_eq!(r.status(), 204);
    let victim = only_call(&t, &t.api_key).await;

    // An incoming-call webhook for the attacker's own number naming the victim's CallSid.
    let r = incoming_call(&t, at, aa, ATTACKER_NUMBER, &victim_call).await;
    client_error(r, "a CallSid of another account").await;
    let (_, mine) = t
        .call(reqwest::Method::GET, "/v1/calls", &attacker.api_key, None)
        .await;
    assert!(mine["data"].as_array().unwrap().is_empty(), "{mine}");

    // The attacker's own call, then callbacks about it naming the victim's recording.
    let own_call = sid("CA");
    assert_eq!(
        incoming_call(&t, at, aa, ATTACKER_NUMBER, &own_call)
            .await
            .status(),
        200
    );
    let own = only_call(&t, &attacker.api_key).await;
    let own_id = own["id"].as_str().unwrap();
    let r = t
        .signed(
            at,
            &format!("/twilio/voice/transcription?call={own_id}"),
            &[
                ("CallSid", own_call.as_str()),
                ("AccountSid", aa),
                ("RecordingSid", rec.as_str()),
                ("TranscriptionSid", &sid("TR")),
                ("TranscriptionStatus", "completed"),
                ("TranscriptionText", "overwritten"),
            ],
        )
        .await;
    client_error(r, "a transcription of another account's recording").await;
    let own_rec_url = format!(
        "{}/api/2010-04-01/Accounts/{aa}/Recordings/{rec}",
        t.sim_url
    );
    for url in [own_rec_url.as_str(), rec_url.as_str()] {
        let r = t
            .signed(
                at,
                &format!("/twilio/voice/recording?call={own_id}"),
                &[
                    ("CallSid", own_call.as_str()),
                    ("AccountSid", aa),
                    ("RecordingSid", rec.as_str()),
                    ("RecordingUrl", url),
                    ("RecordingStatus", "completed"),
                ],
            )
            .await;
        client_error(r, "a recording of another account").await;
    }
    // Flow requests and status callbacks naming the victim's call.
    for path in [
        format!("/twilio/voice/step?call={victim_id}&step=menu"),
        format!("/twilio/voice/status?call={victim_id}"),
        "/twilio/voice/status".to_string(),
    ] {
        let r = t
            .signed(
                at,
                &path,
                &[
                    ("CallSid", victim_call.as_str()),
                    ("AccountSid", aa),
                    ("From", HANDSET),
                    ("To", NUMBER),
                    ("CallStatus", "completed"),
                    ("CallDuration", "1"),
                ],
            )
            .await;
        client_error(r, &path).await;
    }
    let after = only_call(&t, &t.api_key).await;
    for field in ["status", "path", "events", "twilio_sid", "flow_id"] {
        assert_eq!(
            after[field], victim[field],
            "the victim's call kept its {field}"
        );
    }
    let recs = after["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{after}");
    assert_eq!(recs[0]["kind"], "call");
    assert_eq!(recs[0]["call_id"], victim["id"]);
    assert!(after["voicemail"].is_null(), "{after}");

    // Messages: a status callback for the victim's message, an inbound text reusing the
    // victim's MessageSid.
    let m = t.send(json!({"to": HANDSET, "body": "private"})).await;
    let mid = m["id"].as_str().unwrap().to_string();
    let sent = t.wait_status(&mid, "delivered").await;
    let r = t
        .signed(
            at,
            &format!("/twilio/messaging/status?mid={mid}"),
            &[
                ("MessageSid", sid("SM").as_str()),
                ("AccountSid", aa),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
            ],
        )
        .await;
    client_error(r, "a status callback for another account's message").await;
    let victim_sms = sid("SM");
    let form = |account: &str, to: &str| {
        vec![
            ("MessageSid".to_string(), victim_sms.clone()),
            ("AccountSid".to_string(), account.to_string()),
            ("From".to_string(), HANDSET.to_string()),
            ("To".to_string(), to.to_string()),
            ("Body".to_string(), "hello".to_string()),
        ]
    };
    let post = async |token: &str, f: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        t.signed(token, "/twilio/messaging", &pairs).await
    };
    assert_eq!(post(vt, form(va, NUMBER)).await.status(), 200);
    let r = post(at, form(aa, ATTACKER_NUMBER)).await;
    client_error(r, "an inbound text reusing another account's MessageSid").await;
    let (_, theirs) = t
        .call(
            reqwest::Method::GET,
            "/v1/messages",
            &attacker.api_key,
            None,
        )
        .await;
    assert!(theirs["data"].as_array().unwrap().is_empty(), "{theirs}");
    let (_, still) = t.get(&format!("/v1/messages/{mid}")).await;
    assert_eq!(still["status"], "delivered");
    assert_eq!(still["events"], sent["events"], "nothing was added to it");
}
both!(cross_tenant_twilio_ids_are_refused);

async fn captured_webhooks_cannot_be_replayed_as_new_messages(b: Backend) {
    let t = TestApp::start(b).await;
    let sm = sid("SM");
    let mut form: Vec<(String, String)> = [
        ("AccountSid", t.account_sid.as_str()),
        ("Body", "captured"),
        ("From", HANDSET),
        ("MessageSid", sm.as_str()),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsSid", sm.as_str()),
        ("To", NUMBER),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    form.sort();
    let url = format!("{}/twilio/messaging", t.url);
    let sig = twilio::signature::sign(&t.auth_token, &url, &form);
    let post = async |f: &Vec<(String, String)>| {
        t.http
            .post(&url)
            .header("X-Twilio-Signature", &sig)
            .form(f)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(post(&form).await.status(), 200);
    // Each parameter after MessageSid moved into its value, one more at a time: the signed
    // string is the same, the MessageSid is "new".
    let at = form.iter().position(|(k, _)| k == "MessageSid").unwrap();
    for n in 1..form.len() - at {
        let mut moved = form.clone();
        let tail: Vec<(String, String)> = moved.drain(at + 1..at + 1 + n).collect();
        for (k, v) in tail {
            moved[at].1.push_str(&k);
            moved[at].1.push_str(&v);
        }
        assert_eq!(
            twilio::signature::signing_string(&url, &moved),
            twilio::signature::signing_string(&url, &form)
        );
        client_error(post(&moved).await, "a parameter moved into MessageSid").await;
    }
    // The exact replay is a repeat: answered, not stored again.
    for _ in 0..3 {
        assert_eq!(post(&form).await.status(), 200);
    }
    let (_, list) = t.get("/v1/messages?direction=inbound").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}
both!(captured_webhooks_cannot_be_replayed_as_new_messages);

async fn nul_and_malformed_input_never_reach_the_database(b: Backend) {
    let t = TestApp::start(b).await;
    let (va, vt) = (t.account_sid.clone(), t.auth_token.clone());
    // Before authentication: ids in webhook URLs and NUL in forms.
    for path in [
        "/twilio/messaging/status?mid=%00",
        "/twilio/messaging/status?mid=msg_%00x",
        "/twilio/voice/step?call=call%00&step=x",
        "/twilio/voice/status?call=%00",
        "/twilio/voice/recording?call=%00",
    ] {
        let r = t
            .http
            .post(format!("{}{path}", t.url))
            .form(&[("AccountSid", va.as_str()), ("MessageSid", "SM\u{0}")])
            .send()
            .await
            .unwrap();
        client_error(r, path).await;
    }
    // Signed, with NUL in a value or a malformed id.
    let sm = sid("SM");
    for (name, value) in [
        ("Body", "a\u{0}b"),
        ("From", "+1415\u{0}"),
        ("MessageSid", "SM'; DROP TABLE messages; --"),
        ("MessageSid", "SM0123"),
    ] {
        let mut f = vec![
            ("AccountSid", va.as_str()),
            ("MessageSid", sm.as_str()),
            ("From", HANDSET),
            ("To", NUMBER),
            ("Body", "x"),
        ];
        f.retain(|(k, _)| *k != name);
        f.push((name, value));
        client_error(t.signed(&vt, "/twilio/messaging", &f).await, name).await;
    }
    // Path ids and query strings of the API.
    let long = "x".repeat(300);
    for path in [
        "/v1/messages/msg_%00".to_string(),
        "/v1/calls/%00".to_string(),
        "/v1/contacts/%00abc".to_string(),
        "/v1/templates/%00".to_string(),
        "/v1/flows/%00".to_string(),
        "/v1/voicemails/vm_%00".to_string(),
        format!("/v1/messages/{long}"),
        "/v1/messages?phone=%00".to_string(),
        "/v1/calls?limit=abc".to_string(),
        "/v1/messages?cursor=%00".to_string(),
    ] {
        let r = t
            .http
            .get(format!("{}{path}", t.url))
            .bearer_auth(&t.api_key)
            .send()
            .await
            .unwrap();
        client_error(r, &path).await;
    }
    // JSON bodies with NUL.
    for (path, body) in [
        ("/v1/messages", json!({"to": HANDSET, "body": "a\u{0}b"})),
        ("/v1/contacts", json!({"phone": HANDSET, "name": "\u{0}"})),
        ("/v1/templates", json!({"name": "t\u{0}", "body": "x"})),
        ("/v1/calls", json!({"to": HANDSET, "say": "\u{0}"})),
    ] {
        let r = t
            .http
            .post(format!("{}{path}", t.url))
            .bearer_auth(&t.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (s, _) = client_error(r, path).await;
        assert_eq!(s, 422, "{path}");
    }
    let (_, list) = t.get("/v1/messages").await;
    assert!(list["data"].as_array().unwrap().is_empty(), "{list}");
}
both!(nul_and_malformed_input_never_reach_the_database);

/// The `action` of the first `<Gather>` in a TwiML document, as Twilio would call it.
fn gather_action(doc: &str) -> String {
    let start = doc.find("<Gather action=\"").expect("a Gather") + "<Gather action=\"".len();
    let end = start + doc[start..].find('"').unwrap();
    doc[start..end].replace("&amp;", "&")
}

async fn replayed_callbacks_and_flow_steps_are_kept_once(b: Backend) {
    let t = TestApp::start(b).await;
    let (va, vt) = (t.account_sid.clone(), t.auth_token.clone());
    // A status callback replayed 20 times is kept once.
    let m = t.send(json!({"to": HANDSET, "body": "once"})).await;
    let mid = m["id"].as_str().unwrap().to_string();
    let done = t.wait_status(&mid, "delivered").await;
    let msid = done["twilio_sid"].as_str().unwrap().to_string();
    let path = format!("/twilio/messaging/status?mid={mid}");
    let f = [
        ("MessageSid", msid.as_str()),
        ("AccountSid", va.as_str()),
        ("MessageStatus", "delivered"),
    ];
    for _ in 0..20 {
        assert_eq!(t.signed(&vt, &path, &f).await.status(), 204);
    }
    let (_, after) = t.get(&format!("/v1/messages/{mid}")).await;
    let delivered = after["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_callback" && e["status"] == "delivered")
        .count();
    assert_eq!(delivered, 1, "{after}");

    // A flow's menu choice replayed: answered as before, the path not repeated.
    let flow = json!({
        "name": "menu",
        "start": "menu",
        "steps": {
            "menu": {"type": "menu", "prompt": {"say": "Press 1."}, "choices": {"1": "hours"}, "retries": 1, "on_no_input": "bye"},
            "hours": {"type": "say", "text": "Nine to five."},
            "bye": {"type": "hangup"}
        }
    });
    let (s, v) = t.post("/v1/flows", flow).await;
    assert_eq!(s, 201, "{v}");
    t.patch_number(NUMBER, json!({"flow": "menu"})).await;
    let ca = sid("CA");
    let doc = incoming_call(&t, &vt, &va, NUMBER, &ca)
        .await
        .text()
        .await
        .unwrap();
    let action = gather_action(&doc);
    let path = action.strip_prefix(&t.url).unwrap().to_string();
    let f = [
        ("CallSid", ca.as_str()),
        ("AccountSid", va.as_str()),
        ("From", HANDSET),
        ("To", NUMBER),
        ("CallStatus", "in-progress"),
        ("Digits", "1"),
    ];
    let first = t.signed(&vt, &path, &f).await.text().await.unwrap();
    assert!(first.contains("Nine to five"), "{first}");
    for _ in 0..5 {
        let again = t.signed(&vt, &path, &f).await.text().await.unwrap();
        assert_eq!(again, first, "a replay gets the same answer");
    }
    let call = only_call(&t, &t.api_key).await;
    assert_eq!(call["path"], json!(["menu", "hours"]), "{call}");
    let results = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step_result")
        .count();
    assert_eq!(results, 1, "{call}");
}
both!(replayed_callbacks_and_flow_steps_are_kept_once);

async fn reconciled_messages_keep_twilios_error(b: Backend) {
    let t = TestApp::start_with(b, |c| {
        c.twilio_timeout = std::time::Duration::from_millis(500);
        c.workers.status_poll_after = std::time::Duration::from_millis(300);
    })
    .await;
    let to = "+14155550166";
    t.fault(json!({"number": to, "kind": "carrier_error", "code": 30003}))
        .await;
    t.fault(json!({"number": to, "kind": "drop_callbacks"}))
        .await;
    t.fault(json!({"number": to, "kind": "slow", "ms": 2500, "times": 1}))
        .await;
    let m = t.send(json!({"to": to, "body": "lost answer"})).await;
    let id = m["id"].as_str().unwrap().to_string();
    let v = t.wait_status(&id, "undelivered").await;
    assert_eq!(v["error_code"], "30003", "{v}");
    assert!(v["error_description"].is_string(), "{v}");
    let from_twilio = v["events"].as_array().unwrap().iter().any(|e| {
        (e["kind"] == "reconciled" || e["kind"] == "status_poll") && e["status"] == "undelivered"
    });
    assert!(from_twilio, "the final status came with an event: {v}");
    assert_eq!(t.deliveries_to(to).len(), 1, "sent once");
    assert_eq!(v["attempts"], 1, "{v}");
}
both!(reconciled_messages_keep_twilios_error);

async fn slow_and_greedy_clients_are_cut_off(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestApp::start_with(b, |c| {
        c.limits.header_timeout = std::time::Duration::from_secs(1);
        c.limits.max_connections = 3;
        c.limits.rate_per_key = 5.0;
    })
    .await;
    // A key over its rate gets 429 with Retry-After; other keys are not affected.
    let client = &t.http;
    let mut limited = None;
    for _ in 0..40 {
        let r = client
            .get(format!("{}/v1/messages", t.url))
            .bearer_auth(&t.api_key)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the key was limited");
    assert!(r.headers().contains_key("retry-after"));
    let (_, body) = client_error(r, "rate limited").await;
    assert_eq!(body["error"]["code"], "rate_limited");
    let other = t.other_tenant(ATTACKER_NUMBER).await;
    let r = client
        .get(format!("{}/v1/messages", t.url))
        .bearer_auth(&other.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let limited = r#"switchboard_rate_limited_total{limit="api_key"}"#;
    assert!(t.metric(limited).await >= 1.0);

    let addr = t.url.trim_start_matches("http://").to_string();
    // A request whose headers never end is closed after the header timeout.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        half.read_to_end(&mut buf),
    )
    .await
    .expect("the server closed the half-sent request");
    assert!(read.is_ok());
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    // Over the connection limit, a new connection is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        extra.read_to_end(&mut buf),
    )
    .await
    .expect("the extra connection was closed");
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    drop(held);
}
both!(slow_and_greedy_clients_are_cut_off);

async fn unsigned_requests_and_numbers_reveal_nothing(b: Backend) {
    let t = TestApp::start(b).await;
    let m = t.send(json!({"to": HANDSET, "body": "x"})).await;
    let mid = m["id"].as_str().unwrap().to_string();
    // Unsigned: 403 before anything is looked up, whether or not what they name exists.
    let mut answers = Vec::new();
    for path in [
        format!("/twilio/messaging/status?mid={mid}"),
        "/twilio/messaging/status?mid=msg_00000000000000000000000000".to_string(),
        "/twilio/messaging".to_string(),
        "/twilio/voice".to_string(),
        "/twilio/voice/step?call=call_00000000000000000000000000".to_string(),
    ] {
        for to in [NUMBER, "+19995550100"] {
            let r = t
                .http
                .post(format!("{}{path}", t.url))
                .form(&[
                    ("AccountSid", t.account_sid.as_str()),
                    ("MessageSid", &sid("SM")),
                    ("CallSid", &sid("CA")),
                    ("From", HANDSET),
                    ("To", to),
                ])
                .send()
                .await
                .unwrap();
            let (s, body) = client_error(r, &path).await;
            assert_eq!(s, 403, "{path}");
            answers.push(body);
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // Another tenant asking for this tenant's number learns nothing about it.
    let other = t.other_tenant(ATTACKER_NUMBER).await;
    let (s, v) = t
        .call(
            reqwest::Method::POST,
            "/v1/numbers",
            &other.api_key,
            Some(json!({"phone_number": NUMBER})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "twilio_number_unavailable");

    // API keys are stored as hashes only, with no characters of the key.
    use sqlx::Row;
    let rows = sqlx::query("SELECT id, key_hash FROM api_keys")
        .fetch_all(t.app.db().pool())
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let head = &t.api_key[..7];
    for r in rows {
        for col in ["id", "key_hash"] {
            let v: String = r.get(col);
            assert!(!v.contains(head), "{col} holds part of the key");
        }
    }
    assert!(
        sqlx::query("SELECT prefix FROM api_keys")
            .fetch_all(t.app.db().pool())
            .await
            .is_err(),
        "no column keeps the key's first characters"
    );
}
both!(unsigned_requests_and_numbers_reveal_nothing);

/// PostgreSQL connections killed under load (a restart, a failover, `pg_terminate_backend`):
/// every request is answered, 503 with `Retry-After` at worst, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "SWITCHBOARD_TEST_DATABASE_URL is not set"
)]
async fn lost_postgres_connections_answer_503_not_500() {
    if !crate::harness::postgres_available() {
        return;
    }
    let t = TestApp::start(Backend::Postgres).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (url, stop) = (t.database_url.clone(), stop.clone());
        tokio::spawn(async move {
            use sqlx::ConnectOptions;
            let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
            let mut conn = opts.connect().await.unwrap();
            let mut killed = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                killed += r.len() as u64;
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
            killed
        })
    };
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..150 {
        let r = if i % 2 == 0 {
            t.http
                .get(format!("{}/v1/messages", t.url))
                .bearer_auth(&t.api_key)
                .send()
                .await
                .unwrap()
        } else {
            t.http
                .post(format!("{}/v1/messages", t.url))
                .bearer_auth(&t.api_key)
                .json(&json!({"to": HANDSET, "body": format!("n{i}")}))
                .send()
                .await
                .unwrap()
        };
        let s = r.status().as_u16();
        if s == 503 {
            assert!(r.headers().contains_key("retry-after"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "database_unavailable");
        }
        *statuses.entry(s).or_default() += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let killed = killer.await.unwrap();
    assert!(killed > 0, "connections were killed");
    assert!(
        statuses.keys().all(|s| [200, 202, 503].contains(s)),
        "{statuses:?}"
    );
}

/// A tenant's `ask_app` URL pointing inside (this machine, a private network, the cloud's
/// metadata service) is never fetched; the flow falls back.
async fn tenant_urls_never_reach_inside_addresses(b: Backend) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let t = TestApp::start_with(b, |c| c.allow_private_urls = false).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let router = axum::Router::new().fallback(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async { r#"{"start": "inside", "steps": {"inside": {"type": "say", "text": "Reached inside."}}}"# }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (va, vt) = (t.account_sid.clone(), t.auth_token.clone());
    for (i, url) in [
        format!("http://127.0.0.1:{port}/ask"),
        format!("http://localhost:{port}/ask"),
        format!("http://[::ffff:127.0.0.1]:{port}/ask"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("inside {i}");
        let (s, v) = t
            .post(
                "/v1/flows",
                json!({"name": name, "start": "ask", "steps": {
                    "ask": {"type": "ask_app", "url": url, "timeout_ms": 2000, "fallback": "outside"},
                    "outside": {"type": "say", "text": "Fell back."}}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let (_, nums) = t.get("/v1/numbers").await;
        let nid = nums["data"][0]["id"].as_str().unwrap().to_string();
        let number = nums["data"][0]["phone_number"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, v) = t
            .call(
                reqwest::Method::PATCH,
                &format!("/v1/numbers/{nid}"),
                &t.api_key,
                Some(json!({"flow": name})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let ca = sid("CA");
        let doc = incoming_call(&t, &vt, &va, &number, &ca)
            .await
            .text()
            .await
            .unwrap();
        let start = doc.find("<Redirect").expect("the ask_app redirect");
        let from = start + doc[start..].find('>').unwrap() + 1;
        let to = from + doc[from..].find('<').unwrap();
        let action = doc[from..to].replace("&amp;", "&");
        let path = action.strip_prefix(&t.url).unwrap().to_string();
        let f = [
            ("CallSid", ca.as_str()),
            ("AccountSid", va.as_str()),
            ("From", HANDSET),
            ("To", number.as_str()),
            ("CallStatus", "in-progress"),
        ];
        let answer = t.signed(&vt, &path, &f).await.text().await.unwrap();
        assert!(answer.contains("Fell back."), "{url}: {answer}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing inside was reached");
}
both!(tenant_urls_never_reach_inside_addresses);
