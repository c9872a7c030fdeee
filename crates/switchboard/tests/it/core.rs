//! The shared core: group commit under concurrent webhooks, request ids, metrics, readiness and
//! errors for malformed query strings.

use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER};
use serde_json::Value;

fn inbound_form(account: &str, sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", NUMBER),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", account),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn post_signed(t: &TestApp, form: &[(String, String)]) -> u16 {
    signed_post(&t.http, &t.url, &t.auth_token, form).await
}

async fn signed_post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    form: &[(String, String)],
) -> u16 {
    let url = format!("{base}/twilio/messaging");
    let sig = twilio::signature::sign(token, &url, form);
    http.post(&url)
        .header("X-Twilio-Signature", sig)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Many webhooks at once share transactions; each is stored once, repeats (even within one
/// batch) change nothing, and every one is answered only after it is stored.
async fn concurrent_webhooks_are_each_stored_once(b: Backend) {
    let t = TestApp::start(b).await;
    let distinct = 60;
    let mut forms = Vec::new();
    for i in 0..distinct {
        let sid = format!("SM{:032x}", 0xabc000 + i);
        // Twenty senders, so contacts and threads repeat inside a batch.
        let from = format!("+1415555{:04}", 1000 + i % 20);
        forms.push(inbound_form(
            &t.account_sid,
            &sid,
            &from,
            &format!("hello {i}"),
        ));
    }
    // Every webhook twice, all at once: Twilio's retries racing the originals.
    let all: Vec<_> = forms.iter().chain(forms.iter()).cloned().collect();
    let answers = futures_join(&t, all).await;
    assert!(
        answers.iter().all(|s| *s == 200),
        "every webhook answered 200: {answers:?}"
    );

    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/messages?direction=inbound&limit=50&cursor={c}"),
            None => "/v1/messages?direction=inbound&limit=50".to_string(),
        };
        let (s, v) = t.get(&path).await;
        assert_eq!(s, 200, "{v}");
        seen += v["data"].as_array().unwrap().len();
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, distinct as usize, "each MessageSid stored once");
    let (_, threads) = t.get("/v1/conversations?limit=100").await;
    assert_eq!(
        threads["data"].as_array().unwrap().len(),
        20,
        "one thread per sender: {threads}"
    );
}
both!(concurrent_webhooks_are_each_stored_once);

async fn futures_join(t: &TestApp, forms: Vec<Vec<(String, String)>>) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in forms.into_iter().enumerate() {
        let t2 = (t.url.clone(), t.auth_token.clone(), t.http.clone());
        set.spawn(async move { (i, signed_post(&t2.2, &t2.0, &t2.1, &f).await) });
    }
    let mut out = set.join_all().await;
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

/// Every answer carries a request id (the caller's when it sent a sane one), and `/metrics`
/// counts requests, webhooks by outcome, commits and queue depth.
async fn requests_are_traced_and_counted(b: Backend) {
    let t = TestApp::start(b).await;
    let r = t
        .http
        .get(format!("{}/v1/messages", t.url))
        .bearer_auth(&t.api_key)
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.starts_with("req_"), "{id}");
    let r = t
        .http
        .get(format!("{}/v1/nothing-here", t.url))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "trace-42");

    let form = inbound_form(&t.account_sid, &format!("SM{:032x}", 7), HANDSET, "hi");
    assert_eq!(post_signed(&t, &form).await, 200);
    assert_eq!(post_signed(&t, &form).await, 200);
    let url = format!("{}/twilio/messaging", t.url);
    let forged = t
        .http
        .post(&url)
        .header("X-Twilio-Signature", "bm9wZQ==")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    t.send(serde_json::json!({"to": HANDSET, "body": "queued"}))
        .await;

    let text = t
        .http
        .get(format!("{}/metrics", t.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        has(r#"switchboard_webhooks_total{kind="messaging",outcome="accepted"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"switchboard_webhooks_total{kind="messaging",outcome="duplicate"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"switchboard_webhooks_total{kind="messaging",outcome="bad_signature"} 1"#),
        "{text}"
    );
    assert!(
        has(
            r#"switchboard_http_requests_total{route="/twilio/messaging",method="POST",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(
        has("switchboard_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(has("switchboard_db_commits_total "), "{text}");
    assert!(has(r#"switchboard_queue_depth{kind="message"}"#), "{text}");
    assert!(
        !text.contains(&t.auth_token) && !text.contains(&t.api_key),
        "no secrets in metrics"
    );
}
both!(requests_are_traced_and_counted);

/// A malformed query string is a JSON 400, never plain text or a 500.
async fn bad_query_strings_get_json_errors(b: Backend) {
    let t = TestApp::start(b).await;
    for path in [
        "/v1/messages?limit=abc",
        "/v1/messages?limit=%00",
        "/v1/calls?limit=1e99",
        "/v1/conversations?limit=-",
        "/v1/voicemails?limit=x",
    ] {
        let (s, v): (u16, Value) = t.get(path).await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["error"]["code"], "invalid_query", "{path}: {v}");
    }
}
both!(bad_query_strings_get_json_errors);

/// `dev` answers `/healthz` with 200 only once its tenant and numbers exist: a script that
/// lists numbers at the first healthy answer sees all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_is_healthy_only_when_its_numbers_exist() {
    let dir = crate::harness::tempfile_dir::Dir::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let key = "sk_dev_readiness_test_key".to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let data_dir = dir.path().to_path_buf();
    let server = tokio::spawn(switchboard::server::dev(
        listener,
        data_dir,
        Some(key.clone()),
        |_| {},
        async move {
            let _ = stop_rx.await;
        },
    ));
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    let numbers = loop {
        match http.get(format!("{url}/healthz")).send().await {
            Ok(r) if r.status() == 200 => {
                let v: Value = http
                    .get(format!("{url}/v1/numbers"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                break v;
            }
            Ok(r) => {
                assert_eq!(r.status(), 503);
                let v: Value = r.json().await.unwrap();
                answers.push(v["error"]["code"].as_str().unwrap_or("").to_string());
            }
            Err(_) => {}
        }
        tokio::task::yield_now().await;
    };
    assert!(answers.iter().all(|c| c == "not_ready"), "{answers:?}");
    assert_eq!(numbers["data"].as_array().unwrap().len(), 3, "{numbers}");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Numbers show their times as RFC 3339 like every other resource.
async fn numbers_use_rfc3339_times(b: Backend) {
    let t = TestApp::start(b).await;
    let (s, v) = t.get("/v1/numbers").await;
    assert_eq!(s, 200, "{v}");
    let created = v["data"][0]["created_at"].as_str().expect("a string time");
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
}
both!(numbers_use_rfc3339_times);

async fn post_with_key(t: &TestApp, path: &str, key: &str, body: Value) -> (u16, Value, bool) {
    let r = t
        .http
        .post(format!("{}{path}", t.url))
        .bearer_auth(&t.api_key)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let replayed = r.headers().contains_key("idempotent-replayed");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap(), replayed)
}

/// Every creating POST honours `Idempotency-Key`: a repeat gets the first answer, the same key
/// with another request is a 409, and a refused request does not use the key up.
async fn creating_posts_honour_idempotency_keys(b: Backend) {
    let t = TestApp::start(b).await;
    let body = serde_json::json!({"name": "hours", "body": "Open 9 to 5"});
    let (s1, first, r1) = post_with_key(&t, "/v1/templates", "tpl-1", body.clone()).await;
    let (s2, again, r2) = post_with_key(&t, "/v1/templates", "tpl-1", body).await;
    assert_eq!((s1, s2, r1, r2), (201, 201, false, true), "{first} {again}");
    assert_eq!(first["id"], again["id"]);
    let (_, all) = t.get("/v1/templates").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "created once");
    let (s, v, _) = post_with_key(
        &t,
        "/v1/templates",
        "tpl-1",
        serde_json::json!({"name": "other", "body": "x"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    // A refused request leaves the key free for the corrected one.
    let (s, _, _) = post_with_key(
        &t,
        "/v1/contacts",
        "con-1",
        serde_json::json!({"phone": "not a phone"}),
    )
    .await;
    assert_eq!(s, 422);
    let (s, v, _) = post_with_key(
        &t,
        "/v1/contacts",
        "con-1",
        serde_json::json!({"phone": "+14155550123"}),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let r = t
        .http
        .post(format!("{}/v1/flows", t.url))
        .bearer_auth(&t.api_key)
        .header("Idempotency-Key", "")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
both!(creating_posts_honour_idempotency_keys);

/// Requests racing with one key and different bodies never get someone else's message: each
/// answer is its own request's message, or a 409.
async fn racing_requests_with_one_key_get_their_own_answer(b: Backend) {
    let t = TestApp::start(b).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (http, url, key) = (t.http.clone(), t.url.clone(), t.api_key.clone());
        set.spawn(async move {
            let body = format!("race {i}");
            let r = http
                .post(format!("{url}/v1/messages"))
                .bearer_auth(key)
                .header("Idempotency-Key", "same-key")
                .json(&serde_json::json!({"to": HANDSET, "body": body}))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, body, r.json::<Value>().await.unwrap())
        });
    }
    let answers = set.join_all().await;
    let mut ids = std::collections::HashSet::new();
    for (s, body, v) in &answers {
        match s {
            202 => {
                assert_eq!(v["body"], *body, "a 202 carries its own request's message");
                ids.insert(v["id"].as_str().unwrap().to_string());
            }
            409 => assert_eq!(v["error"]["code"], "idempotency_key_reused"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ids.len(), 1, "one message for one key");
}
both!(racing_requests_with_one_key_get_their_own_answer);

/// Contacts page by cursor with no silent cap: every one is reached, each once.
async fn contacts_page_without_a_cap(b: Backend) {
    let t = TestApp::start(b).await;
    let n = 25;
    for i in 0..n {
        let (s, v) = t
            .post(
                "/v1/contacts",
                serde_json::json!({"phone": format!("+1415555{:04}", 2000 + i)}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/contacts?limit=10&cursor={c}"),
            None => "/v1/contacts?limit=10".into(),
        };
        let (s, v) = t.get(&path).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        for c in v["data"].as_array().unwrap() {
            assert!(
                seen.insert(c["id"].as_str().unwrap().to_string()),
                "seen twice"
            );
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (n, 3));
    let (s, v) = t.get("/v1/contacts?cursor=not-a-cursor").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}
both!(contacts_page_without_a_cap);

fn test_worker(
    max_attempts: fn(&switchboard::config::Config) -> i64,
) -> switchboard::queue::Worker {
    switchboard::queue::Worker {
        kind: "test",
        lease: |_| std::time::Duration::from_secs(60),
        max_attempts,
        batch: 10,
        parallel: 4,
        run: |_, _| Box::pin(async { Ok(switchboard::queue::Outcome::Done) }),
        give_up: |_, _, _| Box::pin(async { Ok(()) }),
    }
}

async fn enqueue_n(t: &TestApp, n: usize) {
    let tenant = t.get("/v1/tenant").await.1["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.app
        .db()
        .write(move |tx| {
            let tenant = tenant.clone();
            Box::pin(async move {
                for i in 0..n {
                    switchboard::queue::enqueue(tx, "test", &format!("s{i}"), &tenant, 0).await?;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
}

/// Workers racing for one queue never hold the same job; a lease that runs out hands the job
/// to the next claimer, marked if its holder had begun an outside call.
async fn the_queue_hands_each_job_to_one_holder(b: Backend) {
    use switchboard::queue::{claim, finish, Outcome};
    let t = TestApp::start(b).await;
    enqueue_n(&t, 100).await;
    let w = test_worker(|_| 3);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let app = t.app.clone();
        set.spawn(async move {
            let mut got = Vec::new();
            loop {
                let jobs = claim(app.db(), &w, std::time::Duration::from_secs(60))
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return got;
                }
                got.extend(jobs);
            }
        });
    }
    let all: Vec<_> = set.join_all().await.into_iter().flatten().collect();
    let distinct: std::collections::HashSet<_> = all.iter().map(|j| j.id.clone()).collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (100, 100),
        "each job claimed once"
    );

    // Later is not a try; Retry is, until the attempts are spent.
    let job = all.into_iter().find(|j| j.subject_id == "s0").unwrap();
    finish(&t.app, &w, &job, Outcome::Later { at: 0 })
        .await
        .unwrap();
    let again = claim(t.app.db(), &w, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        (again.len(), again[0].attempts),
        (1, 1),
        "Later gave the try back"
    );
    finish(
        &t.app,
        &w,
        &again[0],
        Outcome::Retry {
            error: "x".into(),
            // Surely later than the rest of this test, however slow the machine.
            after: Some(std::time::Duration::from_secs(600)),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        switchboard::queue::busy(t.app.db()).await.unwrap(),
        99,
        "retried later, not now"
    );

    // A holder that began an outside call and stopped: its lease runs out, the next holder
    // is told to reconcile.
    enqueue_n(&t, 101).await; // s100 is new
    let held = claim(t.app.db(), &w, std::time::Duration::from_millis(0))
        .await
        .unwrap();
    let h = held.into_iter().find(|j| j.subject_id == "s100").unwrap();
    let h2 = h.clone();
    t.app
        .db()
        .write(move |tx| {
            let h = h2.clone();
            Box::pin(async move { switchboard::queue::mark_submitting(tx, &h).await })
        })
        .await
        .unwrap();
    // Its zero-length lease ends with this millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let next = claim(t.app.db(), &w, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let n = next
        .iter()
        .find(|j| j.subject_id == "s100")
        .expect("reclaimed");
    assert!(n.submitting && n.attempts == 2, "{n:?}");
    // The first holder's claim is gone: what it reports changes nothing.
    finish(&t.app, &w, &h, Outcome::Done).await.unwrap();
    finish(&t.app, &w, n, Outcome::Failed { error: "no".into() })
        .await
        .unwrap();
    assert_eq!(switchboard::queue::busy(t.app.db()).await.unwrap(), 99);
}
both!(the_queue_hands_each_job_to_one_holder);
