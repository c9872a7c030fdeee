use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER};
use serde_json::{json, Value};
use sim::state::{CallScript, Input, Spoken};
use sim::PhoneCall;

const AGENT: &str = "+14155550142";

async fn attach(t: &TestApp, number: &str, flow: &str) {
    let v = t.patch_number(number, json!({ "flow": flow })).await;
    assert!(
        v["flow_id"]
            .as_str()
            .is_some_and(|f| f.starts_with("flow_")),
        "{v}"
    );
}

fn front_desk() -> Value {
    json!({
        "name": "front desk",
        "start": "welcome",
        "steps": {
            "welcome": {"type": "say", "text": "Thanks for calling Smith & Jones.", "next": "menu"},
            "menu": {"type": "menu", "prompt": {"say": "Press 1 for hours, 2 for an advisor."}, "choices": {"1": "hours", "2": "advisor"}, "retries": 1, "on_no_input": "voicemail"},
            "hours": {"type": "say", "text": "We are open nine to five."},
            "advisor": {"type": "forward", "numbers": [AGENT], "timeout_seconds": 15, "on_no_answer": "voicemail", "on_busy": "voicemail"},
            "voicemail": {"type": "voicemail", "greeting": {"say": "Please leave a message after the beep."}, "max_seconds": 60}
        }
    })
}

async fn wait_call_status(t: &TestApp, id: &str, status: &str) -> Value {
    t.eventually("the call's final status", async || {
        let (_, v) = t.get(&format!("/v1/calls/{id}")).await;
        (v["status"] == status).then_some(v)
    })
    .await
}

async fn ivr_forward_no_answer_then_voicemail(b: Backend) {
    let t = TestApp::start(b).await;
    let (s, f) = t.post("/v1/flows", front_desk()).await;
    assert_eq!(s, 201, "{f}");
    attach(&t, NUMBER, "front desk").await;
    let report = t
        .sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script: CallScript {
                inputs: vec![
                    Input {
                        digits: Some("9".into()),
                        speech: None,
                    },
                    Input {
                        digits: Some("2".into()),
                        speech: None,
                    },
                ],
                dial: [(AGENT.to_string(), "no-answer".to_string())].into(),
                recordings: vec![Spoken {
                    duration_secs: 8,
                    text: "Please call me back".into(),
                }],
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let said: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        said,
        [
            "Thanks for calling Smith & Jones.",
            "Press 1 for hours, 2 for an advisor.",
            "Sorry, that is not one of the choices.",
            "Press 1 for hours, 2 for an advisor.",
            "Please leave a message after the beep.",
            "Thank you. Goodbye."
        ]
    );
    let dial = report.steps.iter().find(|s| s.what == "dial").unwrap();
    assert_eq!(dial.detail["status"], "no-answer");
    assert_eq!(report.recordings.len(), 1);

    let (_, calls) = t.get("/v1/calls?direction=inbound").await;
    let c = &calls["data"][0];
    assert_eq!(c["from"], HANDSET);
    assert_eq!(c["twilio_sid"], report.sid);
    let v = wait_call_status(&t, c["id"].as_str().unwrap(), "completed").await;
    assert_eq!(
        v["path"],
        json!(["welcome", "menu", "menu", "advisor", "voicemail"])
    );
    assert_eq!(v["duration"], report.duration.unwrap() as i64);
    assert!(
        v["ringing_at"].is_string() && v["answered_at"].is_string() && v["ended_at"].is_string(),
        "{v}"
    );
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"voice_request")
            && kinds.contains(&"step_result")
            && kinds.contains(&"status_callback"),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"recording") && kinds.contains(&"transcription"),
        "{kinds:?}"
    );
    let tr = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "transcription")
        .unwrap();
    assert_eq!(tr["payload"]["TranscriptionText"], "Please call me back");
}
both!(ivr_forward_no_answer_then_voicemail);

async fn missed_call_texts_once_per_window(b: Backend) {
    let t = TestApp::start(b).await;
    // A flow that texts a template that does not exist is refused, naming the step.
    let (s, v) = t.post("/v1/flows", json!({"name": "market", "start": "text", "steps": {"text": {"type": "missed_call_sms", "template": "prices"}}})).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("step \"text\""),
        "{v}"
    );
    let (s, _) = t.post("/v1/templates", json!({"name": "prices", "body": "Today at the market: tomatoes $3/lb, eggs $6/dozen. Reply STOP to opt out."})).await;
    assert_eq!(s, 201);
    let (s, v) = t.post("/v1/flows", json!({"name": "market", "start": "text", "steps": {"text": {"type": "missed_call_sms", "template": "prices", "window_minutes": 60}}})).await;
    assert_eq!(s, 201, "{v}");
    attach(&t, NUMBER, "market").await;
    for _ in 0..2 {
        let r = t
            .sim
            .phone_call(PhoneCall {
                from: HANDSET.into(),
                to: NUMBER.into(),
                script: Default::default(),
            })
            .await
            .unwrap();
        assert_eq!(
            r.status, "busy",
            "the call is not answered, so it is free for the caller"
        );
        assert_eq!(r.duration, Some(0));
    }
    let texts = t
        .eventually("the text reached the caller", async || {
            let d = t.deliveries_to(HANDSET);
            (!d.is_empty()).then_some(d)
        })
        .await;
    t.settle().await;
    assert_eq!(
        t.deliveries_to(HANDSET).len(),
        1,
        "one text within the window: {texts:?}"
    );
    assert!(texts[0].body.starts_with("Today at the market"));
    let (_, calls) = t.get("/v1/calls").await;
    assert_eq!(calls["data"].as_array().unwrap().len(), 2);
    assert!(
        calls["data"][0]["answered_at"].is_null(),
        "a rejected call is never answered"
    );
}
both!(missed_call_texts_once_per_window);

async fn flows_are_validated_and_previewed(b: Backend) {
    let t = TestApp::start(b).await;
    let (s, v) = t.post("/v1/flows", json!({"name": "bad", "start": "a", "steps": {"a": {"type": "say", "text": "hi", "next": "nowhere"}}})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_flow"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("step \"a\""),
        "{v}"
    );
    let (s, v) = t
        .post(
            "/v1/flows",
            json!({"name": "bad", "start": "a", "steps": {"a": {"type": "dance"}}}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = t.post("/v1/flows", json!({"name": "loop", "start": "a", "steps": {"a": {"type": "say", "text": "x", "next": "b"}, "b": {"type": "pause", "seconds": 1, "next": "a"}}})).await;
    assert_eq!(s, 422);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("never leave"));
    let (s, v) = t.post("/v1/flows", json!({"name": "fwd", "start": "f", "steps": {"f": {"type": "forward", "numbers": ["not a number"]}}})).await;
    assert_eq!(s, 422, "{v}");
    let (s, f) = t.post("/v1/flows", front_desk()).await;
    assert_eq!(s, 201);
    let id = f["id"].as_str().unwrap();
    let (s, p) = t
        .post(&format!("/v1/flows/{id}/preview"), json!({"step": "menu"}))
        .await;
    assert_eq!(s, 200, "{p}");
    assert!(p["twiml"].as_str().unwrap().contains("<Gather "));
    assert_eq!(p["path"], json!(["menu"]));
    let (s, p) = t.post(&format!("/v1/flows/{id}/preview"), json!({})).await;
    assert_eq!(s, 200);
    assert!(
        p["twiml"].as_str().unwrap().contains("Smith &amp; Jones"),
        "text is escaped in TwiML: {p}"
    );
    attach(&t, NUMBER, id).await;
    let (s, v) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/flows/{id}"),
            &t.api_key,
            None,
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("flow_in_use")));
    let (s, _) = t.post("/v1/flows", front_desk()).await;
    assert_eq!(s, 409, "names are unique per tenant");
}
both!(flows_are_validated_and_previewed);

async fn call_webhooks_are_signed_and_statuses_never_go_back(b: Backend) {
    let t = TestApp::start(b).await;
    let url = format!("{}/twilio/voice", t.url);
    let form = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("AccountSid", t.account_sid.as_str()),
        ("From", HANDSET),
        ("To", NUMBER),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ];
    let r = t.http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (_, calls) = t.get("/v1/calls").await;
    assert!(
        calls["data"].as_array().unwrap().is_empty(),
        "nothing stored for a bad signature"
    );
    let sig = twilio::signature::sign(&t.auth_token, &url, &form);
    let r = t
        .http
        .post(&url)
        .header("X-Twilio-Signature", &sig)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc = r.text().await.unwrap();
    assert!(
        doc.contains("cannot take calls"),
        "a number without a flow says so: {doc}"
    );
    // Twilio repeats the request (or someone replays it): still one call, answered as before,
    // with nothing stored twice.
    let (_, calls) = t.get("/v1/calls").await;
    let id = calls["data"][0]["id"].as_str().unwrap().to_string();
    let (_, before) = t.get(&format!("/v1/calls/{id}")).await;
    for _ in 0..3 {
        let again = t
            .http
            .post(&url)
            .header("X-Twilio-Signature", &sig)
            .form(&form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(again, doc, "a repeat gets the same answer");
    }
    let (_, calls) = t.get("/v1/calls").await;
    assert_eq!(calls["data"].as_array().unwrap().len(), 1);
    let (_, after) = t.get(&format!("/v1/calls/{id}")).await;
    assert_eq!(after["path"], before["path"], "the flow did not run again");
    assert_eq!(
        after["events"].as_array().unwrap().len(),
        before["events"].as_array().unwrap().len(),
        "no event stored for the repeats"
    );
    let status_url = format!("{}/twilio/voice/status", t.url);
    let post = |status: &'static str, seq: &'static str| {
        let f = vec![
            ("CallSid", "CA0123456789abcdef0123456789abcdef".to_string()),
            ("AccountSid", t.account_sid.clone()),
            ("CallStatus", status.to_string()),
            ("SequenceNumber", seq.to_string()),
            ("CallDuration", "42".to_string()),
        ];
        let sig = twilio::signature::sign(&t.auth_token, &status_url, &f);
        t.http
            .post(&status_url)
            .header("X-Twilio-Signature", sig)
            .form(&f)
            .send()
    };
    assert_eq!(post("completed", "3").await.unwrap().status(), 204);
    assert_eq!(post("in-progress", "2").await.unwrap().status(), 204);
    assert_eq!(post("completed", "3").await.unwrap().status(), 204);
    let (_, v) = t.get(&format!("/v1/calls/{id}")).await;
    assert_eq!(v["status"], "completed");
    assert_eq!(v["duration"], 42);
    let applied: Vec<(String, bool)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_callback")
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_string(),
                e["applied"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        applied,
        [("completed".into(), true), ("in-progress".into(), false)],
        "a late in-progress is kept but not applied; the repeated completed is not kept again"
    );
    let (s, _) = t.get("/v1/calls?status=exploded").await;
    assert_eq!(s, 400);
    let other = t.second_tenant("+14155550161").await;
    let (s, _) = t
        .call(
            reqwest::Method::GET,
            &format!("/v1/calls/{id}"),
            &other,
            None,
        )
        .await;
    assert_eq!(s, 404, "another tenant cannot see the call");
}
both!(call_webhooks_are_signed_and_statuses_never_go_back);

async fn ask_app_steps_and_fallback(b: Backend) {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    let t = TestApp::start(b).await;
    let (_, me) = t.get("/v1/tenant").await;
    let secret = me["app_signing_secret"].as_str().unwrap().to_string();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (s2, seen2) = (secret.clone(), seen.clone());
    let router = axum::Router::new()
        .route(
            "/next",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let (secret, seen) = (s2.clone(), seen2.clone());
                async move {
                    let sig = headers["X-Switchboard-Signature"].to_str().unwrap().to_string();
                    let t: i64 = sig.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
                    if switchboard::voice::webhooks::app_signature(&secret, t, &body) != sig {
                        return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                    }
                    seen.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    let answer = json!({"start": "vip", "steps": {"vip": {"type": "say", "text": "Hello, valued client.", "next": "sorry"}}});
                    (axum::http::StatusCode::OK, answer.to_string())
                }
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                "{}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    for (name, path) in [("asks", "/next"), ("slow app", "/slow")] {
        let (s, v) = t
            .post(
                "/v1/flows",
                json!({"name": name, "start": "ask", "steps": {
                    "ask": {"type": "ask_app", "url": format!("{app_url}{path}"), "timeout_ms": 300, "fallback": "sorry"},
                    "sorry": {"type": "say", "text": "Goodbye from the flow."}}}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    attach(&t, NUMBER, "asks").await;
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    let said: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["Hello, valued client.", "Goodbye from the flow."]);
    assert_eq!(seen.lock().unwrap()[0]["from"], HANDSET);
    attach(&t, NUMBER, "slow app").await;
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    let said: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        said,
        ["Goodbye from the flow."],
        "the fallback runs when the app is too slow"
    );
}
both!(ask_app_steps_and_fallback);

async fn voicemail_transcribed_by_a_speech_to_text_server(b: Backend) {
    use axum::routing::post;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // A small OpenAI-compatible speech-to-text server: fails once, then transcribes.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = axum::Router::new().route(
        "/v1/audio/transcriptions",
        post(
            move |headers: axum::http::HeaderMap, mut form: axum::extract::Multipart| {
                let seen = seen.clone();
                async move {
                    assert_eq!(headers["authorization"], "Bearer stt-key");
                    let mut audio = Vec::new();
                    let mut model = String::new();
                    while let Some(field) = form.next_field().await.unwrap() {
                        match field.name() {
                            Some("file") => audio = field.bytes().await.unwrap().to_vec(),
                            Some("model") => model = field.text().await.unwrap(),
                            _ => {}
                        }
                    }
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        return (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            json!({"error": "warming up"}).to_string(),
                        );
                    }
                    assert_eq!(&audio[..4], b"RIFF");
                    assert_eq!(model, "whisper-small");
                    (
                        axum::http::StatusCode::OK,
                        json!({"text": " Hi, it's Ana about Tuesday. "}).to_string(),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stt_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let t = TestApp::start_with(b, |c| {
        c.stt = Some(switchboard::config::Stt {
            url: stt_url,
            api_key: Some("stt-key".into()),
            model: "whisper-small".into(),
        });
    })
    .await;
    let (s, _) = t.post("/v1/flows", json!({"name": "vm", "start": "vm", "steps": {"vm": {"type": "voicemail", "greeting": {"say": "Leave a message"}}}})).await;
    assert_eq!(s, 201);
    attach(&t, NUMBER, "vm").await;
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script: CallScript {
                recordings: vec![Spoken {
                    duration_secs: 4,
                    text: "what Twilio would have heard".into(),
                }],
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert!(!r
        .steps
        .iter()
        .any(|s| s.what == "record" && s.detail.contains_key("transcription")));
    let vm = t
        .eventually("the transcription arrives after a retry", async || {
            let (_, v) = t.get("/v1/voicemails").await;
            (v["data"][0]["transcription_status"] == "completed").then(|| v["data"][0].clone())
        })
        .await;
    assert_eq!(vm["transcription"], "Hi, it's Ana about Tuesday.");
    assert_eq!(vm["transcription_source"], "stt");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
both!(voicemail_transcribed_by_a_speech_to_text_server);

async fn outbound_calls_are_placed_once_and_tracked(b: Backend) {
    let t = TestApp::start(b).await;
    t.fault(json!({"kind": "rate_limit", "retry_after_secs": 1, "times": 1}))
        .await;
    let post = |body: Value| {
        t.http
            .post(format!("{}/v1/calls", t.url))
            .bearer_auth(&t.api_key)
            .header("Idempotency-Key", "reminder-7")
            .json(&body)
            .send()
    };
    let body = json!({"to": "(415) 555-0199", "say": "Your table for two is ready <now> & waiting.", "record": true, "metadata": {"booking": 7}});
    let r = post(body.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["direction"], "outbound");
    // Create, fetch and list show the same shape.
    let (_, fetched) = t
        .get(&format!("/v1/calls/{}", first["id"].as_str().unwrap()))
        .await;
    let (_, listed) = t.get("/v1/calls?direction=outbound").await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| !["events", "recordings", "voicemail"].contains(&k.as_str()));
        k.sort();
        k
    };
    assert_eq!(keys(&first), keys(&fetched), "{first} / {fetched}");
    assert_eq!(keys(&first), keys(&listed["data"][0]), "{first} / {listed}");
    let again: Value = post(body).await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], again["id"], "the same key is the same call");
    assert_eq!(
        post(json!({"to": HANDSET, "say": "different"}))
            .await
            .unwrap()
            .status(),
        409
    );
    let id = first["id"].as_str().unwrap().to_string();
    let v = wait_call_status(&t, &id, "completed").await;
    assert!(v["twilio_sid"].as_str().unwrap().starts_with("CA"));
    let statuses: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_callback")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let report = t
        .sim
        .call_report(v["twilio_sid"].as_str().unwrap())
        .unwrap();
    let said: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["Your table for two is ready <now> & waiting."]);
    let (_, calls) = t.get("/v1/calls?direction=outbound").await;
    assert_eq!(
        calls["data"].as_array().unwrap().len(),
        1,
        "placed once despite the 429"
    );
    let rec = t
        .eventually("the call recording is stored", async || {
            let (_, v) = t.get(&format!("/v1/calls/{id}")).await;
            (v["recordings"][0]["status"] == "stored").then(|| v["recordings"][0].clone())
        })
        .await;
    assert_eq!(rec["kind"], "call");
    let (_, fetched) = t.get(&format!("/v1/calls/{id}")).await;
    assert_eq!(
        fetched["metadata"],
        json!({"booking": 7}),
        "metadata given on create comes back on fetch: {fetched}"
    );

    // A flow on an outbound call, with the person answering the menu; a busy phone is recorded as busy.
    let (s, _) = t.post("/v1/flows", front_desk()).await;
    assert_eq!(s, 201);
    t.sim.set_phone(
        "+14155550188",
        CallScript {
            inputs: vec![Input {
                digits: Some("1".into()),
                speech: None,
            }],
            ..Default::default()
        },
    );
    let (s, v) = t
        .post(
            "/v1/calls",
            json!({"to": "+14155550188", "flow": "front desk"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let done = wait_call_status(&t, v["id"].as_str().unwrap(), "completed").await;
    let sid = done["twilio_sid"].as_str().unwrap();
    let said: Vec<String> = t
        .sim
        .call_report(sid)
        .unwrap()
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        said.contains(&"We are open nine to five.".to_string()),
        "{said:?}"
    );
    t.sim.set_phone(
        "+14155550177",
        CallScript {
            answer: Some("busy".into()),
            ..Default::default()
        },
    );
    let (_, v) = t
        .post("/v1/calls", json!({"to": "+14155550177", "say": "hi"}))
        .await;
    wait_call_status(&t, v["id"].as_str().unwrap(), "busy").await;
    for (body, code) in [
        (json!({"to": "12", "say": "x"}), "invalid_phone_number"),
        (json!({"to": HANDSET}), "invalid_request"),
        (
            json!({"to": HANDSET, "say": "x", "flow": "front desk"}),
            "invalid_request",
        ),
        (json!({"to": HANDSET, "flow": "nope"}), "unknown_flow"),
        (
            json!({"to": HANDSET, "twiml_url": "ftp://x"}),
            "invalid_twiml_url",
        ),
        (
            json!({"to": HANDSET, "say": "x", "from": "+14155550111"}),
            "unknown_sender",
        ),
    ] {
        let (s, v) = t.post("/v1/calls", body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}"
        );
    }
}
both!(outbound_calls_are_placed_once_and_tracked);

async fn outbound_call_timeouts_are_reconciled_not_placed_twice(b: Backend) {
    let t = TestApp::start_with(b, |c| {
        c.twilio_timeout = std::time::Duration::from_millis(500);
        c.delete_recordings_at_twilio = true;
    })
    .await;
    // Twilio creates the call, then answers after the client gave up.
    t.fault(json!({"kind": "slow", "ms": 3000, "times": 1}))
        .await;
    let (s, v) = t
        .post(
            "/v1/calls",
            json!({"to": HANDSET, "say": "exactly once", "record": true}),
        )
        .await;
    assert_eq!(s, 202);
    let id = v["id"].as_str().unwrap().to_string();
    let done = wait_call_status(&t, &id, "completed").await;
    let client = twilio::Client::new(
        twilio::Credentials::AuthToken {
            account_sid: t.account_sid.clone(),
            auth_token: t.auth_token.clone(),
        },
        twilio::BaseUrl::new(format!("{}/sim/{{product}}", t.sim_url)).unwrap(),
    )
    .unwrap();
    let placed = client
        .list_calls(&twilio::rest::ListCalls {
            to: Some(HANDSET.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        placed.items.len(),
        1,
        "placed once though the first answer never came"
    );
    assert_eq!(done["twilio_sid"], placed.items[0].sid.as_str());
    // The recording is copied, then deleted at Twilio.
    let rec = t
        .eventually("the recording is stored", async || {
            let (_, v) = t.get(&format!("/v1/calls/{id}")).await;
            (v["recordings"][0]["status"] == "stored").then(|| v["recordings"][0].clone())
        })
        .await;
    let sid = rec["twilio_sid"].as_str().unwrap().to_string();
    t.eventually("the recording is gone from Twilio", async || {
        client
            .fetch_recording(&sid)
            .await
            .err()
            .filter(|e| e.status() == Some(404))
            .map(|_| ())
    })
    .await;
}
both!(outbound_call_timeouts_are_reconciled_not_placed_twice);

async fn redirect_to_another_flow_and_known_contacts_only(b: Backend) {
    let t = TestApp::start(b).await;
    let (s, _) = t.post("/v1/flows", json!({"name": "after hours", "start": "s", "steps": {"s": {"type": "say", "text": "We're closed & will call back."}}})).await;
    assert_eq!(s, 201);
    let (s, v) = t.post("/v1/flows", json!({"name": "main", "start": "hi", "steps": {"hi": {"type": "say", "text": "Hello.", "next": "go"}, "go": {"type": "redirect", "flow": "after hours"}}})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = t.post("/v1/flows", json!({"name": "broken", "start": "go", "steps": {"go": {"type": "redirect", "flow": "missing"}}})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_flow"))
    );
    attach(&t, NUMBER, "main").await;
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    let said: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["Hello.", "We're closed & will call back."]);

    // Missed-call texts only for known contacts: a stranger gets nothing, a contact gets the text.
    let (s, _) = t
        .post(
            "/v1/templates",
            json!({"name": "sorry", "body": "Sorry we missed you, {name}!"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = t.post("/v1/flows", json!({"name": "known", "start": "t", "steps": {"t": {"type": "missed_call_sms", "template": "sorry", "known_contacts_only": true}}})).await;
    assert_eq!(s, 201);
    attach(&t, NUMBER, "known").await;
    t.sim
        .phone_call(PhoneCall {
            from: "+14155550177".into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    let (s, _) = t
        .post("/v1/contacts", json!({"phone": HANDSET, "name": "Ana"}))
        .await;
    assert_eq!(s, 201);
    t.sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    let got = t
        .eventually("the contact's text", async || {
            let d = t.deliveries_to(HANDSET);
            (!d.is_empty()).then_some(d)
        })
        .await;
    assert_eq!(got[0].body, "Sorry we missed you, Ana!");
    assert!(
        t.deliveries_to("+14155550177").is_empty(),
        "strangers are not texted"
    );
}
both!(redirect_to_another_flow_and_known_contacts_only);
