//! Receiving a text: the contact, the thread, the message and its raw event, media to fetch,
//! keywords and opt-outs, and the auto-reply, all in one transaction. A repeated MessageSid
//! changes nothing.

use super::store::{self, NewEvent, NewMessage, Tx};
use super::{cost, media};
use crate::db::{BoxFuture, DbResult};
use crate::ids::new_id;
use crate::numbers::Number;
use std::collections::HashSet;
use std::sync::Arc;
use twilio::keywords::{classify as keyword, Keyword};
use twilio::webhook::InboundMessage;

/// A signature-checked inbound message, with what storing it needs.
pub struct Received {
    pub tenant_id: String,
    /// The tenants using the account that signed the webhook.
    pub account_tenants: Vec<String>,
    pub number: Number,
    pub msg: InboundMessage,
    /// Every parameter Twilio posted, as JSON.
    pub raw: serde_json::Value,
    pub now: i64,
    /// How long an auto-reply may wait before it is sent.
    pub reply_validity_ms: i64,
}

/// What became of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    Stored,
    /// Twilio repeated a webhook already stored (or it was replayed).
    Repeat,
    /// Its MessageSid is another account's: refused, nothing stored.
    Refused,
}

/// Stores messages received together. A few statements for the whole batch; the rare extras
/// (media, keywords, auto-replies) one by one.
pub fn record_many<'a>(
    tx: &'a mut Tx,
    all: &'a [Arc<Received>],
) -> BoxFuture<'a, DbResult<Vec<Receipt>>> {
    Box::pin(async move {
        let Some(now) = all.first().map(|r| r.now) else {
            return Ok(vec![]);
        };
        // A SID that another account's tenant already has is refused (Twilio's ids are
        // unique; only a forged webhook repeats another account's).
        let sids: Vec<&str> = all.iter().map(|r| r.msg.message_sid.as_str()).collect();
        let owners = store::sid_owners(tx, &sids).await?;
        let refused: HashSet<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                owners.iter().any(|(sid, tenant)| {
                    *sid == r.msg.message_sid && !r.account_tenants.contains(tenant)
                })
            })
            .map(|(i, _)| i)
            .collect();
        let items: Vec<Arc<Received>> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !refused.contains(i))
            .map(|(_, r)| r.clone())
            .collect();
        let items = &items[..];
        if items.is_empty() {
            return Ok(vec![Receipt::Refused; all.len()]);
        }
        let contact_keys: Vec<(&str, &str)> = items
            .iter()
            .map(|r| (r.tenant_id.as_str(), r.msg.from.as_str()))
            .collect();
        let contacts = store::upsert_contacts(tx, &contact_keys, now).await?;
        let thread_keys: Vec<(&str, &str, &str)> = items
            .iter()
            .zip(&contacts)
            .map(|(r, c)| (r.tenant_id.as_str(), c.as_str(), r.number.id.as_str()))
            .collect();
        let threads = store::upsert_conversations(tx, &thread_keys, now).await?;
        let rows: Vec<NewMessage> = items
            .iter()
            .zip(contacts.iter().zip(&threads))
            .map(|(r, (c, t))| new_message(r, c, t))
            .collect();
        let inserted: HashSet<String> = store::insert_messages(tx, &rows)
            .await?
            .into_iter()
            .collect();
        let events: Vec<NewEvent<'_>> = items
            .iter()
            .zip(&rows)
            .filter(|(_, m)| inserted.contains(&m.id))
            .map(|(r, m)| NewEvent {
                tenant_id: &r.tenant_id,
                message_id: &m.id,
                kind: "inbound",
                status: Some("received"),
                applied: true,
                payload: &r.raw,
            })
            .collect();
        store::insert_events(tx, &events).await?;
        let mut stored = Vec::with_capacity(items.len());
        for (r, m) in items.iter().zip(&rows) {
            let new = inserted.contains(&m.id);
            if new {
                extras(tx, r, m).await?;
            }
            stored.push(new);
        }
        let mut stored = stored.into_iter();
        Ok((0..all.len())
            .map(|i| match refused.contains(&i) {
                true => Receipt::Refused,
                false if stored.next() == Some(true) => Receipt::Stored,
                false => Receipt::Repeat,
            })
            .collect())
    })
}

fn new_message(r: &Received, contact_id: &str, conversation_id: &str) -> NewMessage {
    let msg = &r.msg;
    let (seg, _) = cost(&msg.body, msg.media.len());
    NewMessage {
        id: new_id("msg"),
        tenant_id: r.tenant_id.clone(),
        direction: crate::status::Direction::Inbound,
        number_id: Some(r.number.id.clone()),
        conversation_id: Some(conversation_id.to_string()),
        contact_id: Some(contact_id.to_string()),
        from: msg.from.clone(),
        to: msg.to.clone(),
        body: msg.body.clone(),
        media_urls: msg.media.iter().map(|m| m.url.clone()).collect(),
        status: crate::status::MessageStatus::Received,
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
        verification_id: None,
    }
}

/// Media to fetch, keywords and opt-outs, and the auto-reply of a newly stored message.
async fn extras(tx: &mut Tx, r: &Received, stored: &NewMessage) -> DbResult<()> {
    let msg = &r.msg;
    let tenant_id = &r.tenant_id;
    let id = &stored.id;
    let kw = keyword(&msg.body);
    for (i, m) in msg.media.iter().enumerate() {
        media::insert_pending(
            tx,
            tenant_id,
            id,
            i as i64,
            &m.url,
            m.content_type.as_deref(),
        )
        .await?;
    }
    if let Some(k) = kw {
        store::log_keyword(tx, tenant_id, &msg.to, &msg.from, k.as_str(), &msg.body, id).await?;
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
        return Ok(());
    };
    if kw.is_some() || store::is_opted_out(&mut **tx, tenant_id, &msg.to, &msg.from).await? {
        return Ok(());
    }
    let (seg, price) = cost(text, 0);
    store::insert_message(
        tx,
        &NewMessage {
            id: new_id("msg"),
            tenant_id: tenant_id.clone(),
            direction: crate::status::Direction::Outbound,
            number_id: Some(r.number.id.clone()),
            conversation_id: stored.conversation_id.clone(),
            contact_id: stored.contact_id.clone(),
            from: msg.to.clone(),
            to: msg.from.clone(),
            body: text.clone(),
            media_urls: vec![],
            status: crate::status::MessageStatus::Accepted,
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
            verification_id: None,
        },
    )
    .await?;
    Ok(())
}
