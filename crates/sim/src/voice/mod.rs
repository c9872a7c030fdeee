//! Voice in the twin: the Calls, Recordings and Transcriptions APIs, the TwiML interpreter that
//! runs each call, and phones that call numbers with a script.

pub mod api;
mod run;

use crate::error::{SimError, SimResult};
use crate::state::{self, Call, CallScript, Step};
use crate::{phone, Sim};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use twilio::types::CallStatus;

/// Where a recording's audio is served (Twilio's RecordingUrl has no extension).
pub fn audio_url(sim: &Sim, account_sid: &str, sid: &str) -> String {
    format!(
        "{}/api/2010-04-01/Accounts/{account_sid}/Recordings/{sid}",
        sim.base_url()
    )
}

/// A short real audio file: 8 kHz 16-bit mono WAV, a quiet 440 Hz tone, at most 10 seconds
/// whatever the recording's nominal length.
pub fn wav(duration_secs: u64) -> Vec<u8> {
    let rate = 8000u32;
    let samples = rate * duration_secs.clamp(1, 10) as u32;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = i as f64 / rate as f64;
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 3000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

/// `POST /sim/control/calls`: a phone calls one of the twin's numbers.
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneCall {
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub script: CallScript,
}

/// What happened on a call, in order.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    pub direction: String,
    pub status: String,
    pub duration: Option<u64>,
    pub steps: Vec<Step>,
    pub recordings: Vec<String>,
    pub child_calls: Vec<String>,
}

pub fn report(sim: &Sim, sid: &str) -> Option<CallReport> {
    let w = sim.world();
    let c = w.calls.get(sid)?;
    let mut recordings: Vec<_> = w
        .recordings
        .values()
        .filter(|r| r.call_sid == sid)
        .collect();
    recordings.sort_by_key(|r| r.created);
    let mut children: Vec<_> = w
        .calls
        .values()
        .filter(|x| x.parent_call_sid.as_deref() == Some(sid))
        .collect();
    children.sort_by_key(|x| x.seq);
    Some(CallReport {
        sid: c.sid.clone(),
        account_sid: c.account_sid.clone(),
        from: c.from.clone(),
        to: c.to.clone(),
        direction: c.direction.clone(),
        status: c.status.as_str().to_string(),
        duration: c.duration,
        steps: c.steps.clone(),
        recordings: recordings.iter().map(|r| r.sid.clone()).collect(),
        child_calls: children.iter().map(|x| x.sid.clone()).collect(),
    })
}

/// A new call record (not yet running).
pub(crate) fn new_call(account_sid: &str, from: &str, to: &str, direction: &str, seq: u64) -> Call {
    let now = Utc::now();
    Call {
        seq,
        sid: state::new_sid("CA"),
        account_sid: account_sid.to_string(),
        parent_call_sid: None,
        from: from.to_string(),
        to: to.to_string(),
        direction: direction.to_string(),
        status: CallStatus::Queued,
        phone_number_sid: None,
        url: None,
        method: "POST".into(),
        twiml: None,
        status_callback: None,
        status_callback_method: "POST".into(),
        status_callback_events: vec![],
        record: false,
        recording_status_callback: None,
        timeout: 60,
        created: now,
        updated: now,
        start: None,
        end: None,
        duration: None,
        steps: vec![],
        pending_update: None,
    }
}

/// A phone calls a number of the twin: the number's VoiceUrl runs the call with the script.
/// Returns when the call has ended.
pub async fn phone_call(sim: &Sim, req: PhoneCall) -> SimResult<CallReport> {
    if !phone::is_valid(&req.from) {
        return Err(SimError::bad_request(
            21212,
            format!(
                "The caller {:?} is not a valid E.164 phone number.",
                req.from
            ),
        ));
    }
    let (sid, token) = {
        let mut w = sim.world();
        let number = w.number_by_phone(&req.to).cloned().ok_or_else(|| {
            SimError::new(
                404,
                20404,
                format!("{} is not a number of this twin", req.to),
            )
        })?;
        let Some(url) = number.voice_url.clone() else {
            return Err(SimError::bad_request(
                21205,
                format!("{} has no VoiceUrl", req.to),
            ));
        };
        let token = w.accounts[&number.account_sid].auth_token.clone();
        let seq = w.seq();
        let mut c = new_call(&number.account_sid, &req.from, &req.to, "inbound", seq);
        c.phone_number_sid = Some(number.sid.clone());
        c.url = Some(url);
        c.method = number.voice_method.clone();
        c.status_callback = number.status_callback.clone();
        c.status_callback_method = number.status_callback_method.clone();
        let sid = c.sid.clone();
        w.calls.insert(sid.clone(), c);
        (sid, token)
    };
    run::Runner::new(sim.clone(), sid.clone(), token, req.script)
        .run()
        .await;
    report(sim, &sid).ok_or_else(|| SimError::not_found(&sid))
}

/// Runs a call placed through the REST API, with the called phone's script.
pub(crate) fn spawn_outbound(sim: Sim, sid: String, token: String, script: CallScript) {
    tokio::spawn(async move {
        // Twilio queues a new call briefly before it dials.
        let queued = std::time::Duration::from_millis(sim.world().delays.sending_ms);
        tokio::time::sleep(queued).await;
        run::Runner::new(sim, sid, token, script).run().await
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_is_a_valid_pcm_file() {
        let w = wav(2);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(&w[8..16], b"WAVEfmt ");
        assert_eq!(w.len(), 44 + 8000 * 2 * 2);
        assert_eq!(
            u32::from_le_bytes(w[4..8].try_into().unwrap()) as usize,
            w.len() - 8
        );
        assert_eq!(wav(3600).len(), 44 + 8000 * 2 * 10, "capped at ten seconds");
    }
}
