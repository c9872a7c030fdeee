//! The twin's Verify v2: Twilio's shapes (checked against the schemas of Twilio's OpenAPI
//! description, `tests/oai/verify_v2.json`), statuses, limits and error codes.

use serde_json::Value;
use sim::{NumberSettings, Sim};

struct Twin {
    sim: Sim,
    base: String,
    sid: String,
    token: String,
    http: reqwest::Client,
}

async fn twin() -> Twin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/sim", listener.local_addr().unwrap());
    let sim = Sim::new(&base);
    sim.set_delays(sim::Delays {
        sending_ms: 5,
        sent_ms: 5,
        delivered_ms: 5,
    });
    let (sid, token) = sim.create_account(None, None).unwrap();
    sim.add_number(&sid, "+14155550100", &NumberSettings::default())
        .unwrap();
    let app = sim.app();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Twin {
        sim,
        base,
        sid,
        token,
        http: reqwest::Client::new(),
    }
}

impl Twin {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/verify/v2{path}", self.base))
            .basic_auth(&self.sid, Some(&self.token))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/verify/v2{path}", self.base))
            .basic_auth(&self.sid, Some(&self.token))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn codes_to(&self, to: &str, n: usize) -> Vec<String> {
        for _ in 0..500 {
            let codes: Vec<String> = self
                .sim
                .deliveries()
                .into_iter()
                .filter(|d| d.to == to && d.channel == "sms")
                .map(|d| d.body.rsplit(' ').next().unwrap().to_string())
                .collect();
            if codes.len() >= n {
                return codes;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no code reached {to}");
    }
}

fn schemas() -> Value {
    let text = include_str!("oai/verify_v2.json");
    serde_json::from_str::<Value>(text).unwrap()["schemas"].clone()
}

/// Checks `v` against the OpenAPI schema `name`: the same keys, and each value of its type,
/// enum, pattern and format (or null where the schema allows it).
fn conforms(v: &Value, name: &str) {
    let all = schemas();
    let schema = &all[name];
    let props = schema["properties"].as_object().unwrap();
    let mut want: Vec<&String> = props.keys().collect();
    let mut got: Vec<&String> = v.as_object().unwrap().keys().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{name}: keys");
    for (key, p) in props {
        let p = match p.get("$ref").and_then(Value::as_str) {
            Some(r) => &all[r.rsplit('/').next().unwrap()],
            None => p,
        };
        let value = &v[key];
        if value.is_null() {
            assert!(
                p["nullable"] == true || p.get("$ref").is_some() || p.get("type").is_none(),
                "{name}.{key} is null"
            );
            continue;
        }
        let ok_type = match p["type"].as_str() {
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        assert!(ok_type, "{name}.{key}: {value} is not {}", p["type"]);
        if let Some(e) = p["enum"].as_array() {
            assert!(e.contains(value), "{name}.{key}: {value} not in {e:?}");
        }
        if let (Some(pattern), Some(s)) = (p["pattern"].as_str(), value.as_str()) {
            // Every pattern here is a SID's: ^XX[0-9a-fA-F]{32}$
            let prefix = &pattern[1..3];
            assert!(
                s.len() == 34
                    && s.starts_with(prefix)
                    && s[2..].bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}.{key}: {s} does not match {pattern}"
            );
        }
        match (p["format"].as_str(), value.as_str()) {
            (Some("date-time"), Some(s)) => {
                assert!(
                    chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                    "{name}.{key}: {s} is not a date-time"
                )
            }
            (Some("uri"), Some(s)) => assert!(s.starts_with("http"), "{name}.{key}: {s}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_v2_answers_as_twilio_does() {
    let t = twin().await;
    let to = "+14155550199";
    let (s, svc) = t.post("/Services", &[("FriendlyName", "Acme")]).await;
    assert_eq!(s, 201, "{svc}");
    conforms(&svc, "verify.v2.service");
    let sid = svc["sid"].as_str().unwrap().to_string();
    let (s, fetched) = t.get(&format!("/Services/{sid}")).await;
    assert_eq!(s, 200);
    assert_eq!(fetched, svc);

    let path = format!("/Services/{sid}/Verifications");
    let (s, v) = t.post(&path, &[("To", to), ("Channel", "sms")]).await;
    assert_eq!(s, 201, "{v}");
    conforms(&v, "verify.v2.service.verification");
    assert_eq!(v["status"], "pending");
    let vsid = v["sid"].as_str().unwrap().to_string();
    // Asking again sends the same code, as a new attempt of the same verification.
    let (_, again) = t.post(&path, &[("To", to), ("Channel", "sms")]).await;
    assert_eq!(again["sid"], v["sid"]);
    assert_eq!(again["send_code_attempts"].as_array().unwrap().len(), 2);
    let codes = t.codes_to(to, 2).await;
    assert_eq!(codes[0], codes[1]);
    assert_eq!(codes[0].len(), 6);
    let (s, got) = t.get(&format!("{path}/{vsid}")).await;
    assert_eq!(s, 200);
    conforms(&got, "verify.v2.service.verification");

    let check = format!("/Services/{sid}/VerificationCheck");
    let wrong = if codes[0] == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (s, c) = t.post(&check, &[("To", to), ("Code", wrong)]).await;
    assert_eq!(s, 200, "{c}");
    conforms(&c, "verify.v2.service.verification_check");
    assert_eq!(
        (c["status"].as_str(), c["valid"].as_bool()),
        (Some("pending"), Some(false))
    );
    let (s, c) = t
        .post(&check, &[("VerificationSid", &vsid), ("Code", &codes[0])])
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (c["status"].as_str(), c["valid"].as_bool()),
        (Some("approved"), Some(true))
    );
    // Approved verifications are deleted.
    let (s, e) = t.get(&format!("{path}/{vsid}")).await;
    assert_eq!((s, e["code"].as_i64()), (404, Some(20404)));
    let (s, e) = t.post(&check, &[("To", to), ("Code", &codes[0])]).await;
    assert_eq!((s, e["code"].as_i64()), (404, Some(20404)));

    // Errors: a bad To, no target for a check, five sends, five wrong checks.
    let (s, e) = t
        .post(&path, &[("To", "4155550199"), ("Channel", "sms")])
        .await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(60200)), "{e}");
    assert_eq!(e["message"], "Invalid parameter: To");
    let (s, e) = t.post(&check, &[("Code", "123456")]).await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(60221)));
    let other = "+14155550177";
    for _ in 0..5 {
        let (s, _) = t.post(&path, &[("To", other), ("Channel", "sms")]).await;
        assert_eq!(s, 201);
    }
    let (s, e) = t.post(&path, &[("To", other), ("Channel", "sms")]).await;
    assert_eq!((s, e["code"].as_i64()), (429, Some(60203)));
    for _ in 0..5 {
        let (s, c) = t.post(&check, &[("To", other), ("Code", "0000")]).await;
        assert_eq!(s, 200, "{c}");
    }
    let (s, e) = t.post(&check, &[("To", other), ("Code", "0000")]).await;
    assert_eq!((s, e["code"].as_i64()), (429, Some(60202)));

    // Ten minutes on, a code is gone.
    let late = "+14155550166";
    let (_, v) = t.post(&path, &[("To", late), ("Channel", "sms")]).await;
    let code = t.codes_to(late, 1).await.remove(0);
    t.sim.advance_clock(std::time::Duration::from_secs(601));
    let (s, e) = t.post(&check, &[("To", late), ("Code", &code)]).await;
    assert_eq!((s, e["code"].as_i64()), (404, Some(20404)), "{v}");

    // Cancel, and a call that reads the code twice.
    let (_, v) = t.post(&path, &[("To", late), ("Channel", "call")]).await;
    let vsid = v["sid"].as_str().unwrap();
    let (s, c) = t
        .post(&format!("{path}/{vsid}"), &[("Status", "canceled")])
        .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("canceled")));
    let call = t
        .sim
        .deliveries()
        .into_iter()
        .find(|d| d.to == late && d.channel == "call")
        .expect("the code was read out");
    let digits: String = call.body.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits.len(), 12, "{}", call.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_guard_blocks_a_prefix() {
    let t = twin().await;
    let service = t.sim.create_verify_service(&t.sid, "Acme");
    let r = t
        .http
        .post(format!("{}/control/faults", t.base))
        .json(&serde_json::json!({"kind": "fraud_guard", "prefix": "+4479"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let path = format!("/Services/{service}/Verifications");
    let (s, e) = t
        .post(&path, &[("To", "+447911123456"), ("Channel", "sms")])
        .await;
    assert_eq!((s, e["code"].as_i64()), (403, Some(60410)), "{e}");
    let (s, _) = t
        .post(&path, &[("To", "+14155550155"), ("Channel", "sms")])
        .await;
    assert_eq!(s, 201, "other prefixes are not blocked");
    assert!(t.sim.deliveries().iter().all(|d| d.to != "+447911123456"));
}
