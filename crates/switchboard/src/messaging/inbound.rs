//! Receiving a text: the contact, the thread, the message and its raw event, media to fetch,
//! keywords and opt-outs, and the auto-reply, all in one transaction. A repeated MessageSid
//! changes nothing.

use super::store::{self, NewMessage, Tx};
use super::{cost, media};
use crate::db::DbResult;
use crate::ids::new_id;
use crate::tenants::Number;
use twilio::keywords::{classify as keyword, Keyword};
use twilio::webhook::InboundMessage;

/// A signature-checked inbound message, with what storing it needs.
pub struct Received {
    pub tenant_id: String,
    pub number: Number,
    pub msg: InboundMessage,
    /// Every parameter Twilio posted, as JSON.
    pub raw: serde_json::Value,
    pub now: i64,
    /// How long an auto-reply may wait before it is sent.
    pub reply_validity_ms: i64,
}

/// Stores the message; false when Twilio repeated a webhook already stored.
pub async fn record(tx: &mut Tx, r: &Received) -> DbResult<bool> {
    let msg = &r.msg;
    let tenant_id = &r.tenant_id;
    let (seg, _) = cost(&msg.body, msg.media.len());
    let kw = keyword(&msg.body);
    let contact_id = store::upsert_contact(tx, tenant_id, &msg.from, r.now).await?;
    let conversation_id =
        store::upsert_conversation(tx, tenant_id, &contact_id, &r.number.id, r.now).await?;
    let id = new_id("msg");
    let inserted = store::insert_message(
        tx,
        &NewMessage {
            id: id.clone(),
            tenant_id: tenant_id.clone(),
            direction: "inbound",
            number_id: Some(r.number.id.clone()),
            conversation_id: Some(conversation_id.clone()),
            contact_id: Some(contact_id.clone()),
            from: msg.from.clone(),
            to: msg.to.clone(),
            body: msg.body.clone(),
            media_urls: msg.media.iter().map(|m| m.url.clone()).collect(),
            status: "received",
            twilio_sid: Some(msg.message_sid.clone()),
            encoding: seg.encoding.as_str(),
            segments: msg
                .num_segments
                .map(i64::from)
                .unwrap_or(seg.count.max(1) as i64),
            price_estimate: None,
            template_id: None,
            idempotency_key: None,
            request_hash: None,
            next_attempt_at: None,
            valid_until: None,
            now: r.now,
        },
    )
    .await?;
    if !inserted {
        return Ok(false);
    }
    store::insert_event(
        tx,
        tenant_id,
        &id,
        "inbound",
        Some("received"),
        true,
        &r.raw,
    )
    .await?;
    for (i, m) in msg.media.iter().enumerate() {
        media::insert_pending(
            tx,
            tenant_id,
            &id,
            i as i64,
            &m.url,
            m.content_type.as_deref(),
        )
        .await?;
    }
    if let Some(k) = kw {
        store::log_keyword(
            tx,
            tenant_id,
            &msg.to,
            &msg.from,
            k.as_str(),
            &msg.body,
            &id,
        )
        .await?;
    }
    match kw {
        Some(Keyword::Stop) => {
            store::set_opt_out(tx, tenant_id, &msg.to, &msg.from, true, "STOP", "keyword").await?
        }
        Some(Keyword::Start) => {
            store::set_opt_out(tx, tenant_id, &msg.to, &msg.from, false, "START", "keyword").await?
        }
        _ => {}
    }
    // Twilio answers keywords itself; an auto-reply goes out for anything else, through the
    // dispatcher so it is paced, tracked and never lost.
    let Some(text) = r.number.auto_reply.as_ref() else {
        return Ok(true);
    };
    if kw.is_some() || store::is_opted_out(&mut **tx, tenant_id, &msg.to, &msg.from).await? {
        return Ok(true);
    }
    let (seg, price) = cost(text, 0);
    store::insert_message(
        tx,
        &NewMessage {
            id: new_id("msg"),
            tenant_id: tenant_id.clone(),
            direction: "outbound",
            number_id: Some(r.number.id.clone()),
            conversation_id: Some(conversation_id),
            contact_id: Some(contact_id),
            from: msg.to.clone(),
            to: msg.from.clone(),
            body: text.clone(),
            media_urls: vec![],
            status: "accepted",
            twilio_sid: None,
            encoding: seg.encoding.as_str(),
            segments: seg.count.max(1) as i64,
            price_estimate: Some(price),
            template_id: None,
            idempotency_key: Some(format!("auto-reply:{}", msg.message_sid)),
            request_hash: None,
            next_attempt_at: Some(r.now),
            valid_until: Some(r.now + r.reply_validity_ms),
            now: r.now,
        },
    )
    .await?;
    Ok(true)
}
