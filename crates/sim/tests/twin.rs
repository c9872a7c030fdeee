//! The twin driven through the wire crate's REST client, with a recording webhook receiver
//! standing in for an application.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Router;
use serde_json::{json, Value};
use sim::{Delays, NumberSettings, Sim};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twilio::rest::{CreateMessage, ListMessages, UpdateMessage};
use twilio::types::MessageStatus;
use twilio::{BaseUrl, Client, Credentials, Form};

const NUMBER: &str = "+14155550100";
const HANDSET: &str = "+14155550199";

/// A request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    form: Form,
    signature_valid: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// TwiML answered on `/sms`.
    reply: Arc<Mutex<String>>,
    token: Arc<Mutex<String>>,
    base: Arc<Mutex<String>>,
}

async fn record(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ([(String, String); 1], String) {
    let form = Form::parse(&body);
    let url = format!("{}{}", r.base.lock().unwrap(), uri);
    let sig = headers
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok());
    let valid = twilio::signature::validate(&r.token.lock().unwrap(), &url, form.pairs(), sig);
    r.got.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        form,
        signature_valid: valid,
    });
    let body = if uri.path() == "/sms" {
        r.reply.lock().unwrap().clone()
    } else {
        String::new()
    };
    ([("Content-Type".to_string(), "text/xml".to_string())], body)
}

struct Twin {
    sim: Sim,
    client: Client,
    http: reqwest::Client,
    base: String,
    account: String,
    token: String,
    receiver: Receiver,
    hook: String,
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn twin() -> Twin {
    let receiver = Receiver::default();
    let hook = serve(Router::new().fallback(record).with_state(receiver.clone())).await;
    *receiver.base.lock().unwrap() = hook.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}/sim");
    let sim = Sim::new(&base);
    sim.set_delays(Delays {
        sending_ms: 5,
        sent_ms: 5,
        delivered_ms: 5,
    });
    let (account, token) = sim.create_account(None, None).unwrap();
    *receiver.token.lock().unwrap() = token.clone();
    sim.add_number(
        &account,
        NUMBER,
        &NumberSettings {
            sms_url: Some(format!("{hook}/sms")),
            ..Default::default()
        },
    )
    .unwrap();
    let app = sim.app();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::new(
        Credentials::AuthToken {
            account_sid: account.clone(),
            auth_token: token.clone(),
        },
        BaseUrl::new(sim.twilio_base()).unwrap(),
    )
    .unwrap();
    Twin {
        sim,
        client,
        http: reqwest::Client::new(),
        base,
        account,
        token,
        receiver,
        hook,
    }
}

impl Twin {
    fn send(&self, to: &str, body: &str) -> CreateMessage {
        CreateMessage {
            to: to.into(),
            from: Some(NUMBER.into()),
            body: Some(body.into()),
            status_callback: Some(format!("{}/status", self.hook)),
            ..Default::default()
        }
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until `n` requests reached `path`.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        for _ in 0..500 {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} requests to {path}, got {:?}",
            self.received(path)
        );
    }

    async fn control(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/control/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn wait_status(&self, sid: &str, want: MessageStatus) -> twilio::rest::Message {
        for _ in 0..500 {
            let m = self.client.fetch_message(sid).await.unwrap();
            if m.status == want {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("message {sid} never reached {want}");
    }
}

fn statuses(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| r.form.get("MessageStatus").unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn send_progresses_to_delivered_with_signed_callbacks() {
    let t = twin().await;
    let m = t
        .client
        .create_message(&t.send(HANDSET, "Hello & welcome 😀"))
        .await
        .unwrap();
    assert!(twilio::sid::is_sid(&m.sid, "SM"), "{}", m.sid);
    assert_eq!(m.status, MessageStatus::Queued);
    assert_eq!(m.num_segments.as_deref(), Some("1"));
    assert_eq!(
        m.uri.as_deref(),
        Some(format!("/2010-04-01/Accounts/{}/Messages/{}.json", t.account, m.sid).as_str())
    );

    let got = t.wait_for("/status", 3).await;
    assert_eq!(statuses(&got), ["sending", "sent", "delivered"]);
    assert!(
        got.iter().all(|r| r.signature_valid),
        "every callback is signed"
    );
    let last = &got[2].form;
    assert_eq!(last.get("MessageSid"), Some(m.sid.as_str()));
    assert_eq!(last.get("SmsStatus"), Some("delivered"));
    assert_eq!(last.get("AccountSid"), Some(t.account.as_str()));
    assert!(last.get("ErrorCode").is_none());

    let fetched = t.client.fetch_message(&m.sid).await.unwrap();
    assert_eq!(fetched.status, MessageStatus::Delivered);
    assert!(fetched.date_sent.is_some());
    assert_eq!(fetched.price.as_deref(), Some("-0.00790"));

    let delivered = t.sim.deliveries();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].body, "Hello & welcome 😀");
    assert_eq!(delivered[0].to, HANDSET);
    // The control API shows the same ledger.
    let ledger: Value = t
        .http
        .get(format!(
            "{}/control/messages?to={}",
            t.base, "%2B14155550199"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["messages"][0]["sid"], json!(m.sid));
    assert_eq!(ledger["messages"][0]["status"], json!("delivered"));
}

#[tokio::test]
async fn list_filters_and_pages() {
    let t = twin().await;
    let mut sids = Vec::new();
    for i in 0..5 {
        let to = if i % 2 == 0 { HANDSET } else { "+14155550188" };
        sids.push(
            t.client
                .create_message(&t.send(to, &format!("n{i}")))
                .await
                .unwrap()
                .sid,
        );
    }
    for sid in &sids {
        t.wait_status(sid, MessageStatus::Delivered).await;
    }
    let page = t
        .client
        .list_messages(&ListMessages {
            page_size: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].sid, sids[4], "newest first");
    assert!(page
        .meta
        .next_page_uri
        .as_deref()
        .unwrap()
        .starts_with(&format!(
            "/2010-04-01/Accounts/{}/Messages.json?",
            t.account
        )));
    let all = t
        .client
        .list_all_messages(
            &ListMessages {
                page_size: Some(2),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.sid.clone()).rev().collect::<Vec<_>>(),
        sids
    );

    let to_handset = t
        .client
        .list_all_messages(
            &ListMessages {
                to: Some(HANDSET.into()),
                page_size: Some(1),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(to_handset.len(), 3);
    assert!(to_handset.iter().all(|m| m.to == HANDSET));

    let now = chrono::Utc::now();
    let today = t
        .client
        .list_all_messages(
            &ListMessages {
                date_sent: Some(now),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(today.len(), 5);
    let later = t
        .client
        .list_all_messages(
            &ListMessages {
                date_sent_after: Some(now + chrono::Duration::hours(1)),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(later.is_empty());
    let earlier = t
        .client
        .list_all_messages(
            &ListMessages {
                date_sent_before: Some(now - chrono::Duration::days(2)),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert!(earlier.is_empty());
    let raw = t
        .http
        .get(format!(
            "{}/api/2010-04-01/Accounts/{}/Messages.json?DateSent%3E={}",
            t.base,
            t.account,
            now.format("%Y-%m-%d")
        ))
        .basic_auth(&t.account, Some(&t.token))
        .send()
        .await
        .unwrap();
    let v: Value = raw.json().await.unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn twilio_errors_for_bad_requests() {
    let t = twin().await;
    let code = |r: Result<twilio::rest::Message, twilio::Error>| r.unwrap_err().code();
    assert_eq!(
        code(t.client.create_message(&t.send("+1415", "x")).await),
        Some(21211)
    );
    assert_eq!(
        code(t.client.create_message(&t.send(HANDSET, "")).await),
        Some(21602)
    );
    assert_eq!(
        code(
            t.client
                .create_message(&t.send(HANDSET, &"a".repeat(1601)))
                .await
        ),
        Some(21617)
    );
    let mut no_from = t.send(HANDSET, "x");
    no_from.from = None;
    assert_eq!(code(t.client.create_message(&no_from).await), Some(21603));
    let mut not_ours = t.send(HANDSET, "x");
    not_ours.from = Some("+14155550177".into());
    assert_eq!(code(t.client.create_message(&not_ours).await), Some(21659));
    let (other, _) = t.sim.create_account(None, None).unwrap();
    t.sim
        .add_number(&other, "+14155550166", &NumberSettings::default())
        .unwrap();
    not_ours.from = Some("+14155550166".into());
    assert_eq!(code(t.client.create_message(&not_ours).await), Some(21606));
    let mut bad_media = t.send(HANDSET, "x");
    bad_media.media_url = vec!["ftp://nope".into()];
    assert_eq!(code(t.client.create_message(&bad_media).await), Some(21620));

    let e = t
        .client
        .fetch_message("SM00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some(20404)));

    let wrong = Client::new(
        Credentials::AuthToken {
            account_sid: t.account.clone(),
            auth_token: "wrong".into(),
        },
        BaseUrl::new(t.sim.twilio_base()).unwrap(),
    )
    .unwrap();
    let e = wrong
        .list_messages(&ListMessages::default())
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some(20003)));
    // Another account's valid credentials do not open this account.
    let (other_sid, other_token) = (other.clone(), t.sim.create_account(None, None).unwrap().1);
    let _ = other_sid;
    let r = t
        .http
        .get(format!(
            "{}/api/2010-04-01/Accounts/{}/Messages.json",
            t.base, t.account
        ))
        .basic_auth(&other, Some(other_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = t
        .http
        .get(format!(
            "{}/api/2010-04-01/Accounts/{}/Messages.json?PageSize=0",
            t.base, t.account
        ))
        .basic_auth(&t.account, Some(&t.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 20001);
    assert!(v["more_info"].as_str().unwrap().ends_with("/20001"));
    let r = t
        .http
        .get(format!(
            "{}/api/2010-04-01/Accounts/{}/Nothing.json",
            t.base, t.account
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn api_keys_authenticate() {
    let t = twin().await;
    let r = t
        .http
        .post(format!(
            "{}/api/2010-04-01/Accounts/{}/Keys.json",
            t.base, t.account
        ))
        .basic_auth(&t.account, Some(&t.token))
        .form(&[("FriendlyName", "ci")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    let keyed = Client::new(
        Credentials::ApiKey {
            account_sid: t.account.clone(),
            key_sid: key["sid"].as_str().unwrap().into(),
            secret: key["secret"].as_str().unwrap().into(),
        },
        BaseUrl::new(t.sim.twilio_base()).unwrap(),
    )
    .unwrap();
    let m = keyed
        .create_message(&t.send(HANDSET, "via key"))
        .await
        .unwrap();
    assert_eq!(m.account_sid, t.account);
}

#[tokio::test]
async fn carrier_errors_end_undelivered_or_failed() {
    let t = twin().await;
    let (s, _) = t
        .control(
            "faults",
            json!({"number": HANDSET, "kind": "carrier_error", "code": 30003, "times": 1}),
        )
        .await;
    assert_eq!(s, 201);
    t.control(
        "faults",
        json!({"number": "+14155550188", "kind": "carrier_error", "code": 30008, "failed": true}),
    )
    .await;
    let a = t
        .client
        .create_message(&t.send(HANDSET, "a"))
        .await
        .unwrap();
    let got = t.wait_for("/status", 3).await;
    assert_eq!(statuses(&got), ["sending", "sent", "undelivered"]);
    assert_eq!(got[2].form.get("ErrorCode"), Some("30003"));
    let m = t.wait_status(&a.sid, MessageStatus::Undelivered).await;
    assert_eq!(m.error_code, Some(30003));
    assert!(m.error_message.is_some());
    let b = t
        .client
        .create_message(&t.send("+14155550188", "b"))
        .await
        .unwrap();
    assert_eq!(
        t.wait_status(&b.sid, MessageStatus::Failed)
            .await
            .error_code,
        Some(30008)
    );
    // The first fault was used up: the next message to the handset is delivered.
    let c = t
        .client
        .create_message(&t.send(HANDSET, "c"))
        .await
        .unwrap();
    t.wait_status(&c.sid, MessageStatus::Delivered).await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retryable() {
    let t = twin().await;
    t.control(
        "faults",
        json!({"kind": "rate_limit", "retry_after_secs": 3, "times": 1}),
    )
    .await;
    let e = t
        .client
        .create_message(&t.send(HANDSET, "x"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(429), Some(20429)));
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    t.control("faults", json!({"kind": "server_error", "times": 1}))
        .await;
    let e = t
        .client
        .create_message(&t.send(HANDSET, "x"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert!(e.is_retryable());
    // Nothing was created by the refused requests.
    assert!(t
        .client
        .list_messages(&ListMessages::default())
        .await
        .unwrap()
        .items
        .is_empty());
    t.client
        .create_message(&t.send(HANDSET, "x"))
        .await
        .unwrap();
}

#[tokio::test]
async fn slow_answers_still_create_the_message() {
    let t = twin().await;
    t.control("faults", json!({"kind": "slow", "ms": 1500, "times": 1}))
        .await;
    let impatient = Client::with_timeouts(
        Credentials::AuthToken {
            account_sid: t.account.clone(),
            auth_token: t.token.clone(),
        },
        BaseUrl::new(t.sim.twilio_base()).unwrap(),
        twilio::rest::Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_millis(300),
        },
    )
    .unwrap();
    let e = impatient
        .create_message(&t.send(HANDSET, "late"))
        .await
        .unwrap_err();
    assert!(e.outcome_unknown(), "{e}");
    let listed = t
        .client
        .list_messages(&ListMessages {
            to: Some(HANDSET.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.items.len(),
        1,
        "the message exists though the answer never came"
    );
}

#[tokio::test]
async fn duplicate_and_reordered_callbacks() {
    let t = twin().await;
    t.control(
        "faults",
        json!({"number": HANDSET, "kind": "duplicate_callbacks", "times": 1}),
    )
    .await;
    t.client
        .create_message(&t.send(HANDSET, "dup"))
        .await
        .unwrap();
    let got = t.wait_for("/status", 6).await;
    assert_eq!(
        statuses(&got),
        [
            "sending",
            "sending",
            "sent",
            "sent",
            "delivered",
            "delivered"
        ]
    );

    t.receiver.got.lock().unwrap().clear();
    t.control(
        "faults",
        json!({"number": HANDSET, "kind": "reorder_callbacks", "times": 1}),
    )
    .await;
    t.client
        .create_message(&t.send(HANDSET, "reorder"))
        .await
        .unwrap();
    let got = t.wait_for("/status", 3).await;
    assert_eq!(statuses(&got), ["delivered", "sent", "sending"]);
    assert!(got.iter().all(|r| r.signature_valid));
}

#[tokio::test]
async fn handset_text_reaches_the_app_and_twiml_replies_come_back() {
    let t = twin().await;
    *t.receiver.reply.lock().unwrap() = twilio::twiml::Response::new()
        .message(twilio::twiml::Message::new("Thanks <3 & see you").status_callback("/status"))
        .to_string();
    let (s, r) = t
        .control(
            "sms",
            json!({"from": HANDSET, "to": NUMBER, "body": "Hi there"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["replies"][0]["body"], "Thanks <3 & see you");
    let got = t.received("/sms");
    assert_eq!(got.len(), 1);
    let hook = &got[0];
    assert!(hook.signature_valid);
    let inbound = twilio::webhook::InboundMessage::from_form(&hook.form).unwrap();
    assert_eq!(
        (
            inbound.from.as_str(),
            inbound.to.as_str(),
            inbound.body.as_str()
        ),
        (HANDSET, NUMBER, "Hi there")
    );
    assert_eq!(inbound.account_sid, t.account);
    assert_eq!(hook.form.get("SmsStatus"), Some("received"));
    // The reply travels to the handset, with status callbacks at the relative URL resolved.
    let statuses = statuses(&t.wait_for("/status", 3).await);
    assert_eq!(statuses.last().map(String::as_str), Some("delivered"));
    let delivered = t.sim.deliveries();
    assert_eq!(delivered[0].to, HANDSET);
    assert_eq!(delivered[0].body, "Thanks <3 & see you");
    // The inbound message is in the account's log.
    let m = t
        .client
        .fetch_message(r["sid"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(m.status, MessageStatus::Received);
    assert_eq!(m.direction, twilio::types::MessageDirection::Inbound);
}

#[tokio::test]
async fn mms_media_is_served_behind_auth_and_can_be_not_ready() {
    let t = twin().await;
    t.control(
        "faults",
        json!({"number": HANDSET, "kind": "media_not_ready", "count": 2, "times": 1}),
    )
    .await;
    let png = "data:image/png;base64,iVBORw0KGgo=";
    let (s, r) = t
        .control(
            "sms",
            json!({"from": HANDSET, "to": NUMBER, "body": "", "media_urls": [png]}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let hook = &t.received("/sms")[0];
    let inbound = twilio::webhook::InboundMessage::from_form(&hook.form).unwrap();
    assert!(inbound.message_sid.starts_with("MM"));
    assert_eq!(inbound.media.len(), 1);
    assert_eq!(inbound.media[0].content_type.as_deref(), Some("image/png"));
    let url = &inbound.media[0].url;
    // Without credentials: refused.
    assert_eq!(t.http.get(url).send().await.unwrap().status(), 401);
    // Not ready twice, then the bytes.
    for _ in 0..2 {
        let e = t.client.download(url, 1 << 20).await.unwrap_err();
        assert_eq!(e.status(), Some(404));
    }
    let (ct, bytes) = t.client.download(url, 1 << 20).await.unwrap();
    assert_eq!(ct.as_deref(), Some("image/png"));
    assert_eq!(&bytes[..], b"\x89PNG\r\n\x1a\n");
    let media = t.client.list_media(&inbound.message_sid).await.unwrap();
    assert_eq!(media.items.len(), 1);
    assert_eq!(media.items[0].parent_sid, inbound.message_sid);
    // The wire client refuses to send credentials elsewhere.
    assert!(t
        .client
        .download("http://example.com/x.png", 10)
        .await
        .is_err());
}

#[tokio::test]
async fn stop_blocks_sends_until_start() {
    let t = twin().await;
    let (_, r) = t
        .control(
            "sms",
            json!({"from": HANDSET, "to": NUMBER, "body": "stop"}),
        )
        .await;
    assert_eq!(r["keyword"], "STOP");
    assert!(r["replies"][0]["body"]
        .as_str()
        .unwrap()
        .contains("unsubscribed"));
    // The app still hears about it.
    assert_eq!(t.received("/sms")[0].form.get("Body"), Some("stop"));
    let e = t
        .client
        .create_message(&t.send(HANDSET, "promo"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some(21610)));
    // A STOP to this number does not block other handsets.
    t.client
        .create_message(&t.send("+14155550188", "hi"))
        .await
        .unwrap();
    // "STOP please" is not a keyword.
    let (_, r) = t
        .control(
            "sms",
            json!({"from": "+14155550188", "to": NUMBER, "body": "STOP please"}),
        )
        .await;
    assert_eq!(r["keyword"], Value::Null);
    t.client
        .create_message(&t.send("+14155550188", "still fine"))
        .await
        .unwrap();
    let (_, r) = t
        .control(
            "sms",
            json!({"from": HANDSET, "to": NUMBER, "body": "START"}),
        )
        .await;
    assert_eq!(r["keyword"], "START");
    t.client
        .create_message(&t.send(HANDSET, "welcome back"))
        .await
        .unwrap();
}

#[tokio::test]
async fn control_api_rejects_bad_input_in_twilio_shape() {
    let t = twin().await;
    let r = t
        .http
        .post(format!("{}/control/sms", t.base))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 20001);
    let (s, v) = t
        .control("sms", json!({"from": "nope", "to": NUMBER, "body": "x"}))
        .await;
    assert_eq!((s, v["code"].clone()), (400, json!(21211)));
    let (s, v) = t
        .control(
            "sms",
            json!({"from": HANDSET, "to": "+14155550111", "body": "x"}),
        )
        .await;
    assert_eq!((s, v["code"].clone()), (404, json!(20404)));
    let (s, _) = t.control("faults", json!({"kind": "meteor_strike"})).await;
    assert_eq!(s, 400);
    let (s, _) = t
        .control(
            "sms",
            json!({"from": HANDSET, "to": NUMBER, "body": "x", "media_urls": ["gopher://x"]}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn test_credentials_follow_the_magic_numbers() {
    let t = twin().await;
    let (sid, token) = t.sim.create_test_account(None, None).unwrap();
    let test = Client::new(
        Credentials::AuthToken {
            account_sid: sid,
            auth_token: token,
        },
        BaseUrl::new(t.sim.twilio_base()).unwrap(),
    )
    .unwrap();
    let send = |from: &str, to: &str| CreateMessage {
        to: to.into(),
        from: Some(from.into()),
        body: Some("x".into()),
        ..Default::default()
    };
    let ok = test
        .create_message(&send("+15005550006", HANDSET))
        .await
        .unwrap();
    assert_eq!(ok.status, MessageStatus::Queued);
    for (from, to, code) in [
        ("+15005550001", HANDSET, 21212),
        ("+15005550007", HANDSET, 21606),
        ("+15005550008", HANDSET, 21611),
        ("+14155550100", HANDSET, 21606),
        ("+15005550006", "+15005550001", 21211),
        ("+15005550006", "+15005550002", 21612),
        ("+15005550006", "+15005550003", 21408),
        ("+15005550006", "+15005550004", 21610),
        ("+15005550006", "+15005550009", 21614),
    ] {
        let e = test.create_message(&send(from, to)).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{from} -> {to}");
    }
    // Other resources are closed to test credentials.
    let e = test.fetch_message(&ok.sid).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        t.sim.deliveries().is_empty(),
        "test credentials deliver nothing"
    );
}

#[tokio::test]
async fn numbers_are_configured_through_the_api() {
    let t = twin().await;
    let n = t
        .client
        .find_number(NUMBER)
        .await
        .unwrap()
        .expect("seeded number");
    assert_eq!(
        n.sms_url.as_deref(),
        Some(format!("{}/sms", t.hook).as_str())
    );
    let updated = t
        .client
        .update_number(
            &n.sid,
            &twilio::rest::NumberSettings {
                sms_url: Some(format!("{}/other", t.hook)),
                voice_url: Some("https://example.com/voice".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.voice_url.as_deref(),
        Some("https://example.com/voice")
    );
    let e = t
        .client
        .update_number(
            &n.sid,
            &twilio::rest::NumberSettings {
                sms_method: Some("PUT".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    let bought = t
        .client
        .create_number("+14155550155", &Default::default())
        .await
        .unwrap();
    assert!(twilio::sid::is_sid(&bought.sid, "PN"));
    let e = t
        .client
        .create_number("+14155550155", &Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(21422));
    let all = t.client.list_numbers(&Default::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    // The new SmsUrl is where the next text goes.
    t.control("sms", json!({"from": HANDSET, "to": NUMBER, "body": "x"}))
        .await;
    assert_eq!(t.received("/other").len(), 1);
}

#[tokio::test]
async fn redact_and_delete() {
    let t = twin().await;
    let m = t
        .client
        .create_message(&t.send(HANDSET, "secret code 1234"))
        .await
        .unwrap();
    // In flight: cannot be deleted yet... unless it already finished, so only check the end state.
    t.wait_status(&m.sid, MessageStatus::Delivered).await;
    let r = t.client.redact_message(&m.sid).await.unwrap();
    assert_eq!(r.body.as_deref(), Some(""));
    let e = t
        .client
        .update_message(
            &m.sid,
            &UpdateMessage {
                body: Some("new".into()),
                status: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    t.client.delete_message(&m.sid).await.unwrap();
    assert_eq!(
        t.client.fetch_message(&m.sid).await.unwrap_err().code(),
        Some(20404)
    );
}

#[tokio::test]
async fn webhooks_sent_are_listed() {
    let t = twin().await;
    t.control(
        "sms",
        json!({"from": HANDSET, "to": NUMBER, "body": "log me"}),
    )
    .await;
    let v: Value = t
        .http
        .get(format!("{}/control/webhooks?kind=incoming-message", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hooks = v["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["params"]["Body"][0], "log me");
    assert_eq!(hooks[0]["status"], 200);
    let _ = &t.token;
}

#[tokio::test]
async fn wrong_methods_and_oversized_bodies_get_twilio_errors() {
    let t = twin().await;
    let url = format!(
        "{}/api/2010-04-01/Accounts/{}/Messages.json",
        t.base, t.account
    );
    let r = t
        .http
        .put(&url)
        .basic_auth(&t.account, Some(&t.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 20004);
    let huge = format!(
        "To=%2B14155550199&From=%2B14155550100&Body={}",
        "a".repeat(3 << 20)
    );
    let r = t
        .http
        .post(&url)
        .basic_auth(&t.account, Some(&t.token))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 413);
    assert!(t
        .client
        .list_messages(&ListMessages::default())
        .await
        .unwrap()
        .items
        .is_empty());
}
