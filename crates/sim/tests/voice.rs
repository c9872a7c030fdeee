//! The twin's voice part: calls run through the TwiML interpreter against an application that
//! answers TwiML per path, with signed webhooks checked on every request.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Router;
use serde_json::{json, Value};
use sim::state::{CallScript, Input, Spoken};
use sim::{NumberSettings, PhoneCall, Sim};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twilio::rest::{CreateCall, UpdateCall};
use twilio::types::CallStatus;
use twilio::{BaseUrl, Client, Credentials, Form};

const NUMBER: &str = "+14155550100";
const CALLER: &str = "+14155550199";
const AGENT: &str = "+14155550142";

#[derive(Clone, Debug)]
struct Hit {
    path: String,
    form: Form,
    signed: bool,
}

#[derive(Clone, Default)]
struct App {
    pages: Arc<Mutex<HashMap<String, String>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    token: Arc<Mutex<String>>,
    base: Arc<Mutex<String>>,
    slow: Arc<Mutex<Option<(String, Duration)>>>,
}

async fn answer(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ([(String, String); 1], String) {
    let form = Form::parse(&body);
    let url = format!("{}{}", app.base.lock().unwrap(), uri);
    let sig = headers
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok());
    let signed = twilio::signature::validate(&app.token.lock().unwrap(), &url, form.pairs(), sig);
    app.hits.lock().unwrap().push(Hit {
        path: uri.path().to_string(),
        form,
        signed,
    });
    let slow = app.slow.lock().unwrap().clone();
    if let Some((path, d)) = slow {
        if path == uri.path() {
            tokio::time::sleep(d).await;
        }
    }
    let page = app
        .pages
        .lock()
        .unwrap()
        .get(uri.path())
        .cloned()
        .unwrap_or_else(|| "<Response/>".into());
    ([("Content-Type".into(), "text/xml".into())], page)
}

struct T {
    sim: Sim,
    app: App,
    client: Client,
    hook: String,
    base: String,
    http: reqwest::Client,
}

async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    format!("http://{a}")
}

async fn setup() -> T {
    let app = App::default();
    let hook = serve(Router::new().fallback(answer).with_state(app.clone())).await;
    *app.base.lock().unwrap() = hook.clone();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/sim", l.local_addr().unwrap());
    let sim = Sim::new(&base);
    sim.set_delays(sim::Delays {
        sending_ms: 5,
        sent_ms: 5,
        delivered_ms: 5,
    });
    let (sid, token) = sim.create_account(None, None).unwrap();
    *app.token.lock().unwrap() = token.clone();
    sim.add_number(
        &sid,
        NUMBER,
        &NumberSettings {
            voice_url: Some(format!("{hook}/voice")),
            status_callback: Some(format!("{hook}/status")),
            ..Default::default()
        },
    )
    .unwrap();
    let router = sim.app();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    let client = Client::new(
        Credentials::AuthToken {
            account_sid: sid,
            auth_token: token,
        },
        BaseUrl::new(sim.twilio_base()).unwrap(),
    )
    .unwrap();
    T {
        sim,
        app,
        client,
        hook,
        base,
        http: reqwest::Client::new(),
    }
}

impl T {
    fn page(&self, path: &str, twiml: &str) {
        self.app
            .pages
            .lock()
            .unwrap()
            .insert(path.into(), twiml.into());
    }
    fn hits(&self, path: &str) -> Vec<Hit> {
        self.app
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
    /// Waits (bounded) until the call reaches `status`.
    async fn wait_call(&self, sid: &str, status: CallStatus) {
        for _ in 0..200 {
            if self.client.fetch_call(sid).await.unwrap().status == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("call {sid} never reached {status}");
    }

    async fn wait_hits(&self, path: &str, n: usize) -> Vec<Hit> {
        for _ in 0..500 {
            if self.hits(path).len() >= n {
                return self.hits(path);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} requests to {path}");
    }
}

fn whats(report: &sim::CallReport) -> Vec<String> {
    report.steps.iter().map(|s| s.what.clone()).collect()
}

#[tokio::test]
async fn ivr_forward_no_answer_voicemail_with_transcription() {
    let t = setup().await;
    t.page("/voice", r#"<Response><Gather numDigits="1" action="/menu" timeout="4"><Say voice="alice">Press 1 for hours, 2 for an advisor.</Say></Gather><Say>Goodbye</Say></Response>"#);
    t.page("/menu", &format!(r#"<Response><Say>Connecting you.</Say><Dial action="/dialed" timeout="20" callerId="{NUMBER}"><Number>{AGENT}</Number></Dial></Response>"#));
    t.page("/dialed", r#"<Response><Say>Please leave a message &amp; we will call back.</Say><Record maxLength="60" action="/recorded" transcribe="true" transcribeCallback="/transcribed" recordingStatusCallback="/recording"/></Response>"#);
    t.page(
        "/recorded",
        "<Response><Say>Thanks.</Say><Hangup/></Response>",
    );
    let report = t
        .sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script: CallScript {
                inputs: vec![Input {
                    digits: Some("2".into()),
                    speech: None,
                }],
                dial: [(AGENT.to_string(), "no-answer".to_string())].into(),
                recordings: vec![Spoken {
                    duration_secs: 12,
                    text: "Please call me back about my account".into(),
                }],
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(report.status, "completed");
    assert_eq!(
        whats(&report),
        [
            "fetched", "answered", "say", "gather", "fetched", "say", "dial", "fetched", "say",
            "beep", "record", "fetched", "say", "hangup", "ended"
        ]
    );
    let say = &report.steps[2];
    assert_eq!(say.detail["text"], "Press 1 for hours, 2 for an advisor.");
    assert_eq!(say.detail["voice"], "alice");
    assert_eq!(report.steps[3].detail["digits"], "2");
    assert_eq!(report.steps[6].detail["status"], "no-answer");
    assert_eq!(
        report.steps[8].detail["text"],
        "Please leave a message & we will call back."
    );
    assert!(report.duration.unwrap() >= 12 + 20);

    // Every request was signed; the Gather, Dial and Record results arrived at their actions.
    assert!(t.app.hits.lock().unwrap().iter().all(|h| h.signed));
    let first = &t.hits("/voice")[0].form;
    assert_eq!(
        (
            first.get("CallStatus"),
            first.get("Direction"),
            first.get("From")
        ),
        (Some("ringing"), Some("inbound"), Some(CALLER))
    );
    assert_eq!(t.hits("/menu")[0].form.get("Digits"), Some("2"));
    let dialed = &t.hits("/dialed")[0].form;
    assert_eq!(dialed.get("DialCallStatus"), Some("no-answer"));
    assert!(dialed.get("DialCallSid").unwrap().starts_with("CA"));
    let recorded = &t.hits("/recorded")[0].form;
    assert_eq!(recorded.get("RecordingDuration"), Some("12"));
    let rec_sid = recorded.get("RecordingSid").unwrap().to_string();
    let status = t.hits("/status");
    assert_eq!(
        status.len(),
        1,
        "the number's StatusCallback hears the completed call"
    );
    assert_eq!(status[0].form.get("CallStatus"), Some("completed"));
    assert_eq!(
        status[0].form.get("CallDuration"),
        Some(report.duration.unwrap().to_string().as_str())
    );
    let rec_cb = &t.hits("/recording")[0].form;
    assert_eq!(
        (rec_cb.get("RecordingSid"), rec_cb.get("RecordingStatus")),
        (Some(rec_sid.as_str()), Some("completed"))
    );
    let tr = &t.hits("/transcribed")[0].form;
    assert_eq!(
        tr.get("TranscriptionText"),
        Some("Please call me back about my account")
    );
    assert_eq!(tr.get("TranscriptionStatus"), Some("completed"));

    // The REST API agrees.
    let call = t.client.fetch_call(&report.sid).await.unwrap();
    assert_eq!(call.status, CallStatus::Completed);
    assert_eq!(call.direction.as_deref(), Some("inbound"));
    let rec = t.client.fetch_recording(&rec_sid).await.unwrap();
    assert_eq!(
        (rec.duration.as_deref(), rec.source.as_deref()),
        (Some("12"), Some("RecordVerb"))
    );
    let (ct, audio) = t
        .client
        .recording_audio(&rec_sid, "wav", 1 << 20)
        .await
        .unwrap();
    assert_eq!(ct.as_deref(), Some("audio/x-wav"));
    assert_eq!(&audio[..4], b"RIFF");
    let trans = t
        .client
        .fetch_transcription(tr.get("TranscriptionSid").unwrap())
        .await
        .unwrap();
    assert_eq!(
        trans.transcription_text.as_deref(),
        Some("Please call me back about my account")
    );
    let recs = t.client.list_call_recordings(&report.sid).await.unwrap();
    assert_eq!(recs.items.len(), 1);
    t.client.delete_recording(&rec_sid).await.unwrap();
    assert_eq!(
        t.client
            .fetch_recording(&rec_sid)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // The control API tells the same story.
    let v: Value = t
        .http
        .get(format!("{}/control/calls/{}", t.base, report.sid))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), report.steps.len());
}

#[tokio::test]
async fn gather_details_silence_speech_and_bad_keys() {
    let t = setup().await;
    t.page("/voice", r#"<Response><Gather input="dtmf speech" numDigits="3" action="/got"><Say>Say or press something</Say></Gather><Say>No input</Say><Redirect>/voice2</Redirect></Response>"#);
    t.page("/voice2", r##"<Response><Gather finishOnKey="#" action="/got2" actionOnEmptyResult="true"/></Response>"##);
    // Silence falls through to the next verb; an empty result with actionOnEmptyResult still posts.
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(
        whats(&r),
        [
            "fetched", "answered", "say", "gather", "say", "redirect", "fetched", "gather",
            "fetched", "ended"
        ]
    );
    assert_eq!(t.hits("/got2")[0].form.get("Digits"), Some(""));
    // Digits are cut at numDigits; speech is reported as SpeechResult.
    let script = CallScript {
        inputs: vec![Input {
            digits: Some("12345".into()),
            speech: None,
        }],
        ..Default::default()
    };
    t.sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script,
        })
        .await
        .unwrap();
    assert_eq!(t.hits("/got")[0].form.get("Digits"), Some("123"));
    let script = CallScript {
        inputs: vec![Input {
            digits: None,
            speech: Some("billing please".into()),
        }],
        ..Default::default()
    };
    t.sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script,
        })
        .await
        .unwrap();
    let got = &t.hits("/got")[1].form;
    assert_eq!(got.get("SpeechResult"), Some("billing please"));
    assert!(got.get("Confidence").is_some());
    // The finish key ends input and is not part of Digits.
    let script = CallScript {
        inputs: vec![
            Input {
                digits: None,
                speech: Some("x".into()),
            },
            Input {
                digits: Some("42#".into()),
                speech: None,
            },
        ],
        ..Default::default()
    };
    t.page(
        "/voice",
        r#"<Response><Gather input="dtmf" numDigits="1"/><Redirect>/voice2</Redirect></Response>"#,
    );
    t.sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script,
        })
        .await
        .unwrap();
    let got2 = t.hits("/got2");
    let last = &got2.last().unwrap().form;
    assert_eq!(
        (last.get("Digits"), last.get("FinishedOnKey")),
        (Some("42"), Some("#"))
    );
}

#[tokio::test]
async fn reject_and_broken_documents() {
    let t = setup().await;
    t.page("/voice", r#"<Response><Reject reason="busy"/></Response>"#);
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!((r.status.as_str(), r.duration), ("busy", Some(0)));
    assert!(!whats(&r).contains(&"answered".to_string()));
    t.page("/voice", "<Response><Say>unclosed</Response>");
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(r.steps[0].what, "error");
    assert_eq!(r.steps[0].detail["code"], 12100);
    t.page("/voice", "<Response><Redirect>/voice</Redirect></Response>");
    let r = t
        .sim
        .phone_call(PhoneCall {
            from: CALLER.into(),
            to: NUMBER.into(),
            script: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(r.status, "completed", "a redirect loop ends");
    assert!(r.steps.iter().any(|s| s.what == "error"));
    let r = t
        .http
        .post(format!("{}/control/calls", t.base))
        .json(&json!({"from": CALLER, "to": "+14155550111"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 20404);
}

#[tokio::test]
async fn outbound_calls_with_events_recording_and_answers() {
    let t = setup().await;
    t.page(
        "/outbound",
        r#"<Response><Say>Your table is ready.</Say><Message>See you soon</Message></Response>"#,
    );
    let call = t
        .client
        .create_call(&CreateCall {
            to: CALLER.into(),
            from: NUMBER.into(),
            url: Some(format!("{}/outbound", t.hook)),
            status_callback: Some(format!("{}/events", t.hook)),
            status_callback_event: vec![
                "initiated".into(),
                "ringing".into(),
                "answered".into(),
                "completed".into(),
            ],
            record: Some(true),
            recording_status_callback: Some(format!("{}/recording", t.hook)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(call.status, CallStatus::Queued);
    let events = t.wait_hits("/events", 4).await;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|h| {
            (
                h.form.get("CallStatus").unwrap().into(),
                h.form.get("SequenceNumber").unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("initiated".into(), "0".into()),
            ("ringing".into(), "1".into()),
            ("in-progress".into(), "2".into()),
            ("completed".into(), "3".into())
        ]
    );
    assert!(events.iter().all(|h| h.signed));
    assert_eq!(
        t.hits("/outbound")[0].form.get("Direction"),
        Some("outbound-api")
    );
    let rec = &t.wait_hits("/recording", 1).await[0].form;
    assert_eq!(rec.get("RecordingSource"), Some("OutboundAPI"));
    for _ in 0..100 {
        if t.sim.deliveries().iter().any(|d| d.body == "See you soon") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        t.sim
            .deliveries()
            .iter()
            .any(|d| d.body == "See you soon" && d.to == CALLER),
        "<Message> during a call is delivered"
    );

    // A phone that is busy: no TwiML is fetched.
    t.sim.set_phone(
        AGENT,
        CallScript {
            answer: Some("busy".into()),
            ..Default::default()
        },
    );
    let busy = t
        .client
        .create_call(&CreateCall {
            to: AGENT.into(),
            from: NUMBER.into(),
            twiml: Some("<Response><Say>hi</Say></Response>".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    t.wait_call(&busy.sid, CallStatus::Busy).await;
    assert_eq!(
        t.client.fetch_call(&busy.sid).await.unwrap().status,
        CallStatus::Busy
    );
    let report = t.sim.call_report(&busy.sid).unwrap();
    assert!(!whats(&report).contains(&"say".to_string()));
}

#[tokio::test]
async fn live_calls_can_be_redirected_or_ended() {
    let t = setup().await;
    t.page("/slow", "<Response><Say>first</Say></Response>");
    *t.app.slow.lock().unwrap() = Some(("/slow".into(), Duration::from_millis(400)));
    let call = t
        .client
        .create_call(&CreateCall {
            to: CALLER.into(),
            from: NUMBER.into(),
            url: Some(format!("{}/slow", t.hook)),
            ..Default::default()
        })
        .await
        .unwrap();
    t.wait_hits("/slow", 1).await;
    t.client
        .update_call(
            &call.sid,
            &UpdateCall {
                twiml: Some("<Response><Say>second</Say></Response>".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.wait_call(&call.sid, CallStatus::Completed).await;
    let said: Vec<Value> = t
        .sim
        .call_report(&call.sid)
        .unwrap()
        .steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].clone())
        .collect();
    assert_eq!(said, [json!("second")]);
    let e = t
        .client
        .update_call(
            &call.sid,
            &UpdateCall {
                status: Some("completed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(21220), "a finished call cannot be changed");
    // Ending a live call.
    let call = t
        .client
        .create_call(&CreateCall {
            to: CALLER.into(),
            from: NUMBER.into(),
            url: Some(format!("{}/slow", t.hook)),
            ..Default::default()
        })
        .await
        .unwrap();
    t.wait_hits("/slow", 2).await;
    t.client
        .update_call(
            &call.sid,
            &UpdateCall {
                status: Some("completed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.wait_call(&call.sid, CallStatus::Completed).await;
    let report = t.sim.call_report(&call.sid).unwrap();
    assert!(whats(&report).contains(&"ended through the API".to_string()));
    assert!(!whats(&report).contains(&"say".to_string()));
}

#[tokio::test]
async fn call_api_errors_are_twilios() {
    let t = setup().await;
    let base = CreateCall {
        to: CALLER.into(),
        from: NUMBER.into(),
        url: Some(format!("{}/voice", t.hook)),
        ..Default::default()
    };
    let code = |r: Result<twilio::rest::Call, twilio::Error>| r.unwrap_err().code();
    assert_eq!(
        code(
            t.client
                .create_call(&CreateCall {
                    url: None,
                    ..base.clone()
                })
                .await
        ),
        Some(21205)
    );
    assert_eq!(
        code(
            t.client
                .create_call(&CreateCall {
                    from: "+14155550177".into(),
                    ..base.clone()
                })
                .await
        ),
        Some(21210)
    );
    assert_eq!(
        code(
            t.client
                .create_call(&CreateCall {
                    to: "+1415".into(),
                    ..base.clone()
                })
                .await
        ),
        Some(21217)
    );
    assert_eq!(
        code(
            t.client
                .create_call(&CreateCall {
                    twiml: Some("<Response>".into()),
                    url: None,
                    ..base.clone()
                })
                .await
        ),
        Some(21230)
    );
    assert_eq!(
        code(
            t.client
                .create_call(&CreateCall {
                    status_callback_event: vec!["exploded".into()],
                    ..base.clone()
                })
                .await
        ),
        Some(20001)
    );
    assert_eq!(
        t.client
            .fetch_call("CA00000000000000000000000000000000")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    let (sid, token) = t.sim.create_test_account(None, None).unwrap();
    let test = Client::new(
        Credentials::AuthToken {
            account_sid: sid,
            auth_token: token,
        },
        BaseUrl::new(t.sim.twilio_base()).unwrap(),
    )
    .unwrap();
    let ok = test
        .create_call(&CreateCall {
            from: "+15005550006".into(),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(ok.status, CallStatus::Queued);
    for (from, to, want) in [
        ("+15005550001", CALLER, 21212),
        ("+15005550007", CALLER, 21210),
        ("+15005550006", "+15005550001", 21217),
        ("+15005550006", "+15005550002", 21214),
        ("+15005550006", "+15005550003", 21215),
        ("+15005550006", "+15005550004", 21216),
    ] {
        let e = test
            .create_call(&CreateCall {
                from: from.into(),
                to: to.into(),
                ..base.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(want), "{from} -> {to}");
    }
    let listed = t.client.list_calls(&Default::default()).await.unwrap();
    assert!(listed.items.is_empty(), "refused creates left nothing");
}
