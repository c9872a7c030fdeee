//! Every flow in `examples/` runs through the twin.

use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER};
use serde_json::{json, Value};
use sim::state::{CallScript, Input, Spoken};
use sim::PhoneCall;
use switchboard::voice::flow::{Flow, Step};

fn example(name: &str) -> Value {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn load(t: &TestApp, file: &str) -> Value {
    let (s, f) = t.post("/v1/flows", example(file)).await;
    assert_eq!(s, 201, "{file}: {f}");
    let (_, nums) = t.get("/v1/numbers").await;
    let id = nums["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["phone_number"] == NUMBER)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/numbers/{id}"),
            &t.api_key,
            Some(json!({"flow": f["id"]})),
        )
        .await;
    assert_eq!(s, 200);
    f
}

async fn call(t: &TestApp, script: CallScript) -> sim::CallReport {
    t.sim
        .phone_call(PhoneCall {
            from: HANDSET.into(),
            to: NUMBER.into(),
            script,
        })
        .await
        .unwrap()
}

fn said(r: &sim::CallReport) -> Vec<String> {
    r.steps
        .iter()
        .filter(|s| s.what == "say")
        .map(|s| s.detail["text"].as_str().unwrap().to_string())
        .collect()
}

fn dials(r: &sim::CallReport) -> Vec<String> {
    r.steps
        .iter()
        .filter(|s| s.what == "dial")
        .map(|s| s.detail["status"].as_str().unwrap().to_string())
        .collect()
}

/// Whether the example's business hours are open now (the tests follow the real clock).
fn open_now(file: &str) -> bool {
    let flow: Flow = serde_json::from_value(example(file)).unwrap();
    let Some(Step::BusinessHours(b)) = flow.steps.get("hours") else {
        panic!("no hours step")
    };
    b.is_open(chrono::Utc::now())
}

async fn newest_voicemail(t: &TestApp) -> Value {
    t.eventually("a voicemail", async || {
        let (_, v) = t.get("/v1/voicemails").await;
        v["data"].as_array().unwrap().first().cloned()
    })
    .await
}

async fn farmers_market(b: Backend) {
    let t = TestApp::start(b).await;
    // Loaded as `switchboard flow load` does: its template comes with it.
    let path = format!(
        "{}/../../examples/farmers-market.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (_, tenant) = t.get("/v1/tenant").await;
    let (_, templates) = switchboard::voice::flows::load_file(
        &t.app,
        tenant["name"].as_str().unwrap(),
        std::path::Path::new(&path),
        Some(NUMBER),
    )
    .await
    .unwrap();
    assert_eq!(templates, ["todays-prices"]);
    let r = call(&t, CallScript::default()).await;
    assert_eq!((r.status.as_str(), r.duration), ("busy", Some(0)));
    let texts = t
        .eventually("today's prices by text", async || {
            let d = t.deliveries_to(HANDSET);
            (!d.is_empty()).then_some(d)
        })
        .await;
    assert!(texts[0].body.starts_with("Market today"));
}
both!(farmers_market);

async fn forward_with_recording(b: Backend) {
    let t = TestApp::start(b).await;
    load(&t, "forward-with-recording.json").await;
    let r = call(
        &t,
        CallScript {
            talk_secs: Some(40),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        said(&r),
        ["This call may be recorded for quality and training."]
    );
    assert_eq!(dials(&r), ["completed"]);
    let (_, calls) = t.get("/v1/calls").await;
    let id = calls["data"][0]["id"].as_str().unwrap().to_string();
    let rec = t
        .eventually("the call recording is stored", async || {
            let (_, v) = t.get(&format!("/v1/calls/{id}")).await;
            (v["recordings"][0]["status"] == "stored").then(|| v["recordings"][0].clone())
        })
        .await;
    assert_eq!(
        (rec["kind"].as_str(), rec["duration"].as_i64()),
        (Some("call"), Some(40))
    );
    let r = call(
        &t,
        CallScript {
            dial: [("+14155550142".to_string(), "busy".to_string())].into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        said(&r).last().unwrap(),
        "Sorry, nobody could take your call. Please try again later."
    );
}
both!(forward_with_recording);

async fn forward_voicemail_after_hours(b: Backend) {
    let t = TestApp::start(b).await;
    load(&t, "forward-voicemail-after-hours.json").await;
    let open = open_now("forward-voicemail-after-hours.json");
    let script = CallScript {
        dial: [("default".to_string(), "no-answer".to_string())].into(),
        recordings: vec![Spoken {
            duration_secs: 6,
            text: "It's Sam, call me".into(),
        }],
        ..Default::default()
    };
    let r = call(&t, script).await;
    if open {
        assert_eq!(dials(&r), ["no-answer"]);
        assert_eq!(
            said(&r)[0],
            "Please leave your name, number and a short message after the tone."
        );
    } else {
        assert!(dials(&r).is_empty());
        assert!(said(&r)[0].starts_with("Our office is closed."));
    }
    let vm = newest_voicemail(&t).await;
    assert_eq!(vm["transcription"], "It's Sam, call me");
}
both!(forward_voicemail_after_hours);

async fn ivr_financial_advisor(b: Backend) {
    let t = TestApp::start(b).await;
    load(&t, "ivr-financial-advisor.json").await;
    // Speech picks a choice; office info returns to the menu; the caller then asks for their advisor.
    let script = CallScript {
        inputs: vec![
            Input {
                digits: Some("3".into()),
                speech: None,
            },
            Input {
                digits: None,
                speech: Some("Client, please".into()),
            },
        ],
        ..Default::default()
    };
    let r = call(&t, script).await;
    let s = said(&r);
    assert_eq!(s[0], "Thank you for calling Harbor & Pine Wealth Advisors.");
    assert!(s.contains(&"We are at 12 Harbor Street, open weekdays 9 to 5.".to_string()));
    assert!(s.contains(&"For compliance, this call will be recorded.".to_string()));
    assert_eq!(dials(&r), ["completed"]);
    let r = call(
        &t,
        CallScript {
            inputs: vec![Input {
                digits: None,
                speech: Some("consultation".into()),
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(said(&r)
        .iter()
        .any(|s| s.starts_with("We'll text you a link")));
    assert!(r.steps.iter().any(|s| s.what == "hangup"));
}
both!(ivr_financial_advisor);

async fn ivr_law_office(b: Backend) {
    let t = TestApp::start(b).await;
    load(&t, "ivr-law-office.json").await;
    let script = CallScript {
        inputs: vec![Input {
            digits: Some("1".into()),
            speech: None,
        }],
        dial: [("+14155550142".to_string(), "no-answer".to_string())].into(),
        ..Default::default()
    };
    let r = call(&t, script).await;
    assert_eq!(
        dials(&r),
        ["no-answer", "completed"],
        "the second lawyer is rung after the first"
    );
    // Silence twice: the voicemail takes the message.
    let r = call(
        &t,
        CallScript {
            recordings: vec![Spoken {
                duration_secs: 9,
                text: "About my lease".into(),
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(said(&r).contains(&"Sorry, I didn't catch that.".to_string()));
    assert!(r.steps.iter().any(|s| s.what == "record"));
    assert_eq!(
        newest_voicemail(&t).await["transcription"],
        "About my lease"
    );
}
both!(ivr_law_office);

async fn ivr_accounting_firm(b: Backend) {
    let t = TestApp::start(b).await;
    load(&t, "ivr-accounting-firm.json").await;
    let r = call(
        &t,
        CallScript {
            inputs: vec![Input {
                digits: Some("3".into()),
                speech: None,
            }],
            ..Default::default()
        },
    )
    .await;
    if open_now("ivr-accounting-firm.json") {
        assert!(said(&r)
            .iter()
            .any(|s| s.starts_with("Returns are usually processed")));
    } else {
        assert_eq!(said(&r)[0], "Our office is closed right now.");
    }
    assert!(
        r.steps.iter().any(|s| s.what == "record"),
        "both paths end in voicemail"
    );
}
both!(ivr_accounting_firm);
