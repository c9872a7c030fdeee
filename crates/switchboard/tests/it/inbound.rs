use crate::both;
use crate::harness::{Backend, TestApp, HANDSET, NUMBER};
use serde_json::{json, Value};

const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

async fn inbound_sms_and_mms_make_a_thread_with_media(b: Backend) {
    let t = TestApp::start(b).await;
    t.fault(json!({"number": HANDSET, "kind": "media_not_ready", "count": 2, "times": 1}))
        .await;
    let r = t
        .handset_sms(HANDSET, NUMBER, "hello 👋 <b>&amp;</b>", &[])
        .await;
    assert_eq!(r["webhooks"][0]["status"], 200, "{r}");
    let r = t.handset_sms(HANDSET, NUMBER, "a picture", &[PNG]).await;
    assert_eq!(r["webhooks"][0]["status"], 200, "{r}");
    let (_, inbound) = t.get("/v1/messages?direction=inbound").await;
    let list = inbound["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["body"], "hello 👋 <b>&amp;</b>");
    assert_eq!(
        list[0]["conversation_id"], list[1]["conversation_id"],
        "one thread per contact and number"
    );
    let mms_id = list[0]["id"].as_str().unwrap().to_string();
    let media = t
        .eventually("media stored after two not-ready answers", async || {
            let (_, v) = t.get(&format!("/v1/messages/{mms_id}")).await;
            (v["media"][0]["status"] == "stored").then(|| v["media"][0].clone())
        })
        .await;
    assert_eq!(media["content_type"], "image/png");
    let r = t
        .http
        .get(format!("{}{}", t.url, media["url"].as_str().unwrap()))
        .bearer_auth(&t.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Without the key, or with another tenant's, the media is not there.
    let r = t
        .http
        .get(format!("{}{}", t.url, media["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(inbound_sms_and_mms_make_a_thread_with_media);

async fn repeated_inbound_webhooks_store_once(b: Backend) {
    let t = TestApp::start(b).await;
    t.handset_sms(HANDSET, NUMBER, "once", &[]).await;
    // Replay exactly what the twin sent, signature and all.
    let hook = t
        .sim
        .webhooks()
        .into_iter()
        .find(|w| w.kind == "incoming-message")
        .unwrap();
    let form: Vec<(String, String)> = hook
        .params
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect();
    for _ in 0..3 {
        let r = t
            .http
            .post(&hook.url)
            .header("X-Twilio-Signature", &hook.signature)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (_, inbound) = t.get("/v1/messages?direction=inbound").await;
    assert_eq!(inbound["data"].as_array().unwrap().len(), 1);
}
both!(repeated_inbound_webhooks_store_once);

async fn unsigned_or_wrongly_signed_webhooks_are_refused(b: Backend) {
    let t = TestApp::start(b).await;
    let form = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", t.account_sid.as_str()),
        ("From", HANDSET),
        ("To", NUMBER),
        ("Body", "forged"),
        ("NumMedia", "0"),
    ];
    let url = format!("{}/twilio/messaging", t.url);
    let r = t.http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = t
        .http
        .post(&url)
        .header("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_signature");
    // Signed with the right token but for another URL (a proxy rewrote the host): refused.
    let sig = twilio::signature::sign(
        &t.auth_token,
        "http://internal:9999/twilio/messaging",
        &form,
    );
    let r = t
        .http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Signed correctly: accepted.
    let sig = twilio::signature::sign(&t.auth_token, &url, &form);
    let r = t
        .http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, inbound) = t.get("/v1/messages?direction=inbound").await;
    let list = inbound["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only the signed request was stored");
    // Unsigned webhooks are refused before anything is looked up: 403 whether or not the
    // message exists.
    let cb = [
        ("MessageSid", "SM00000000000000000000000000000000"),
        ("MessageStatus", "delivered"),
        ("AccountSid", t.account_sid.as_str()),
    ];
    let r = t
        .http
        .post(format!("{}/twilio/messaging/status?mid=msg_nope", t.url))
        .form(&cb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = t
        .http
        .post(format!("{}/twilio/messaging", t.url))
        .form(&[("Body", "no sid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
both!(unsigned_or_wrongly_signed_webhooks_are_refused);

async fn stop_then_send_is_refused_until_start(b: Backend) {
    let t = TestApp::start(b).await;
    t.handset_sms(HANDSET, NUMBER, "Stop", &[]).await;
    t.eventually("the opt-out is recorded", async || {
        let (s, _) = t
            .post(
                "/v1/messages",
                json!({"to": HANDSET, "from": NUMBER, "body": "x"}),
            )
            .await;
        (s == 422).then_some(())
    })
    .await;
    let (s, v) = t
        .post(
            "/v1/messages",
            json!({"to": HANDSET, "from": NUMBER, "body": "promo"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("recipient_opted_out"))
    );
    // The opt-out is per sender: the other number may still text.
    let m = t
        .send(
            json!({"to": HANDSET, "from": crate::harness::NUMBER2, "body": "from the other line"}),
        )
        .await;
    t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
    t.handset_sms(HANDSET, NUMBER, "START", &[]).await;
    let m = t
        .send(json!({"to": HANDSET, "from": NUMBER, "body": "welcome back"}))
        .await;
    t.wait_status(m["id"].as_str().unwrap(), "delivered").await;
}
both!(stop_then_send_is_refused_until_start);

async fn auto_reply_with_special_characters(b: Backend) {
    let t = TestApp::start(b).await;
    let (_, numbers) = t.get("/v1/numbers").await;
    let id = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["phone_number"] == NUMBER)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = "Thanks! We're open 9–5 <Mon & Tue> \"only\" 🎉'; DROP TABLE messages; --";
    let (s, v) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/numbers/{id}"),
            &t.api_key,
            Some(json!({"auto_reply": text})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.handset_sms(HANDSET, NUMBER, "are you open?", &[]).await;
    let got = t
        .eventually("the auto-reply reached the handset", async || {
            let d = t.deliveries_to(HANDSET);
            (!d.is_empty()).then_some(d)
        })
        .await;
    assert_eq!(got[0].body, text);
    // Keywords get Twilio's own answer, not ours.
    t.handset_sms("+14155550188", NUMBER, "HELP", &[]).await;
    t.settle().await;
    let ours: Vec<_> = t
        .deliveries_to("+14155550188")
        .into_iter()
        .filter(|d| d.body == text)
        .collect();
    assert!(ours.is_empty());
}
both!(auto_reply_with_special_characters);
