//! The TwiML interpreter: runs one call from its first webhook to its last status callback,
//! following Say, Play, Pause, Gather, Dial, Record, Redirect, Reject, Hangup and Message, with
//! the caller's script standing in for a person. Time is simulated: each verb advances the
//! call's clock by what it would take, so durations are realistic without waiting.

use super::audio_url;
use crate::state::{self, Call, CallScript, CallUpdate, Recording, Spoken, Step, Transcription};
use crate::{phone, webhooks, Sim};
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use twilio::twiml::Element;
use twilio::types::CallStatus;
use twilio::Form;

/// Documents fetched per call at the most: a guard against redirect loops.
const MAX_DOCUMENTS: usize = 50;
/// The caller hangs up after this long whatever happens.
const MAX_CALL_SECS: u64 = 4 * 3600;

enum Flow {
    Next,
    Goto {
        url: String,
        method: String,
        extra: Form,
    },
    /// TwiML given inline (a REST update with `Twiml`).
    Inline(String),
    End(CallStatus),
}

pub struct Runner {
    sim: Sim,
    sid: String,
    token: String,
    script: CallScript,
    clock: u64,
    inputs: usize,
    recordings: usize,
    sequence: u32,
    answered: bool,
}

fn detail(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn resolve(base: &str, target: &str) -> Option<String> {
    let target = target.trim();
    if target.is_empty() {
        return Some(base.to_string());
    }
    url::Url::parse(base)
        .ok()?
        .join(target)
        .ok()
        .map(String::from)
}

impl Runner {
    pub fn new(sim: Sim, sid: String, token: String, script: CallScript) -> Self {
        Runner {
            sim,
            sid,
            token,
            script,
            clock: 0,
            inputs: 0,
            recordings: 0,
            sequence: 0,
            answered: false,
        }
    }

    fn call(&self) -> Option<Call> {
        self.sim.world().calls.get(&self.sid).cloned()
    }

    fn step(&self, what: &str, pairs: &[(&str, Value)]) {
        if let Some(c) = self.sim.world().calls.get_mut(&self.sid) {
            c.steps.push(Step {
                at: self.clock,
                what: what.to_string(),
                detail: detail(pairs),
            });
        }
    }

    fn set_status(&self, status: CallStatus) {
        if let Some(c) = self.sim.world().calls.get_mut(&self.sid) {
            c.status = status;
            c.updated = Utc::now();
        }
    }

    /// The parameters Twilio sends with every request about this call.
    fn base_params(&self, c: &Call) -> Form {
        let mut p = Form::new();
        p.push("AccountSid", &c.account_sid)
            .push("ApiVersion", twilio::rest::API_VERSION)
            .push("CallSid", &c.sid)
            .push("CallStatus", c.status.as_str())
            .push("Called", &c.to)
            .push("Caller", &c.from)
            .push("Direction", &c.direction)
            .push("From", &c.from)
            .push("To", &c.to);
        if let Some(parent) = &c.parent_call_sid {
            p.push("ParentCallSid", parent);
        }
        for (k, n) in [("From", &c.from), ("To", &c.to)] {
            if let Some(country) = phone::country(n) {
                p.push(format!("{k}Country"), country);
            }
        }
        p
    }

    /// Sends a status callback if the call asked for this event.
    async fn status_event(&mut self, event: &str) {
        let Some(c) = self.call() else { return };
        let Some(url) = c.status_callback.clone() else {
            return;
        };
        let wanted = if c.status_callback_events.is_empty() {
            event == "completed"
        } else {
            c.status_callback_events.iter().any(|e| e == event)
        };
        if !wanted {
            return;
        }
        let mut p = self.base_params(&c);
        if event == "initiated" {
            p.0.retain(|(k, _)| k != "CallStatus");
            p.push("CallStatus", "initiated");
        }
        p.push("SequenceNumber", self.sequence.to_string())
            .push("Timestamp", twilio::types::rfc2822(Utc::now()))
            .push("CallbackSource", "call-progress-events");
        if event == "completed" {
            p.push("CallDuration", c.duration.unwrap_or(0).to_string());
            p.push("Duration", c.duration.unwrap_or(0).div_ceil(60).to_string());
        }
        self.sequence += 1;
        let _ = webhooks::send(
            &self.sim,
            "call-status",
            &url,
            &c.status_callback_method,
            &p,
            &self.token,
        )
        .await;
    }

    /// Fetches a TwiML document; None ends the call (Twilio plays an error and hangs up).
    async fn fetch(&self, url: &str, method: &str, extra: &Form) -> Option<Element> {
        let c = self.call()?;
        let mut p = self.base_params(&c);
        for (k, v) in extra.pairs() {
            p.push(k, v);
        }
        match webhooks::send(&self.sim, "voice", url, method, &p, &self.token).await {
            Ok(a) if (200..300).contains(&a.status) => match twilio::twiml::parse(&a.body) {
                Ok(doc) => {
                    self.step(
                        "fetched",
                        &[("url", json!(url)), ("status", json!(a.status))],
                    );
                    Some(doc)
                }
                Err(e) => {
                    self.step(
                        "error",
                        &[
                            ("code", json!(12100)),
                            ("message", json!(format!("document parse failure: {e}"))),
                            ("url", json!(url)),
                        ],
                    );
                    None
                }
            },
            Ok(a) => {
                self.step(
                    "error",
                    &[
                        ("code", json!(11200)),
                        ("message", json!(format!("HTTP {} from {url}", a.status))),
                    ],
                );
                None
            }
            Err(e) => {
                self.step("error", &[("code", json!(11205)), ("message", json!(e))]);
                None
            }
        }
    }

    fn answer(&mut self) {
        if self.answered {
            return;
        }
        self.answered = true;
        if let Some(c) = self.sim.world().calls.get_mut(&self.sid) {
            c.status = CallStatus::InProgress;
            c.start = Some(Utc::now());
        }
        self.step("answered", &[]);
    }

    /// Runs the call from its first document to the end. `inbound` calls fetch with
    /// CallStatus=ringing and are answered by their first verb.
    pub async fn run(mut self) {
        let Some(c) = self.call() else { return };
        let outbound = c.direction != "inbound";
        self.status_event("initiated").await;
        self.set_status(CallStatus::Ringing);
        self.status_event("ringing").await;
        if outbound {
            let answer = self
                .script
                .answer
                .clone()
                .unwrap_or_else(|| "answer".into());
            let end = match answer.as_str() {
                "busy" => Some(CallStatus::Busy),
                "no-answer" => Some(CallStatus::NoAnswer),
                "failed" => Some(CallStatus::Failed),
                _ => None,
            };
            if let Some(status) = end {
                self.clock += if status == CallStatus::NoAnswer {
                    c.timeout as u64
                } else {
                    2
                };
                self.step("not answered", &[("status", json!(status.as_str()))]);
                return self.finish(status).await;
            }
            self.answer();
            self.status_event("answered").await;
        }
        let mut doc_url = c.url.clone().unwrap_or_default();
        let mut doc = match c.twiml.clone() {
            Some(t) => match twilio::twiml::parse(&t) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.step(
                        "error",
                        &[("code", json!(12100)), ("message", json!(e.to_string()))],
                    );
                    None
                }
            },
            None => self.fetch(&doc_url, &c.method, &Form::new()).await,
        };
        let mut documents = 1;
        let status = 'call: loop {
            let Some(d) = doc.take() else {
                break CallStatus::Completed;
            };
            let mut flow = Flow::Next;
            for verb in &d.children {
                if let Some(f) = self.interrupted() {
                    flow = f;
                    break;
                }
                flow = self.verb(verb, &doc_url).await;
                if !matches!(flow, Flow::Next) {
                    break;
                }
            }
            match flow {
                // The end of a document hangs up.
                Flow::Next => break CallStatus::Completed,
                Flow::End(s) => break s,
                Flow::Goto { url, method, extra } => {
                    documents += 1;
                    if documents > MAX_DOCUMENTS {
                        self.step(
                            "error",
                            &[
                                ("code", json!(11200)),
                                ("message", json!("too many documents: a redirect loop?")),
                            ],
                        );
                        break 'call CallStatus::Completed;
                    }
                    doc_url = url;
                    doc = self.fetch(&doc_url, &method, &extra).await;
                }
                Flow::Inline(t) => {
                    documents += 1;
                    doc = match twilio::twiml::parse(&t) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            self.step(
                                "error",
                                &[("code", json!(12100)), ("message", json!(e.to_string()))],
                            );
                            None
                        }
                    };
                }
            }
        };
        self.finish(status).await
    }

    /// A hang-up by the caller's script or a REST update, checked between verbs.
    fn interrupted(&mut self) -> Option<Flow> {
        if self
            .script
            .hangup_after_secs
            .is_some_and(|s| self.clock >= s)
            || self.clock >= MAX_CALL_SECS
        {
            self.step("caller hung up", &[]);
            return Some(Flow::End(CallStatus::Completed));
        }
        let update = self
            .sim
            .world()
            .calls
            .get_mut(&self.sid)
            .and_then(|c| c.pending_update.take());
        match update {
            Some(CallUpdate::End) => {
                self.step("ended through the API", &[]);
                Some(Flow::End(CallStatus::Completed))
            }
            Some(CallUpdate::Redirect { url, method, twiml }) => {
                self.step("redirected through the API", &[("url", json!(url))]);
                Some(match twiml {
                    Some(t) => Flow::Inline(t),
                    None => Flow::Goto {
                        url: url.unwrap_or_default(),
                        method,
                        extra: Form::new(),
                    },
                })
            }
            None => None,
        }
    }

    async fn finish(&mut self, status: CallStatus) {
        let record = {
            let mut w = self.sim.world();
            let Some(c) = w.calls.get_mut(&self.sid) else {
                return;
            };
            c.status = status.clone();
            c.end = Some(Utc::now());
            c.duration = Some(if self.answered { self.clock } else { 0 });
            c.updated = Utc::now();
            c.steps.push(Step {
                at: self.clock,
                what: "ended".into(),
                detail: detail(&[("status", json!(status.as_str()))]),
            });
            (c.record && self.answered).then(|| (c.recording_status_callback.clone(), self.clock))
        };
        if let Some((callback, secs)) = record {
            let rec = self.new_recording("OutboundAPI", secs.max(1), None);
            if let Some(url) = callback {
                self.recording_callback(&url, "POST", &rec).await;
            }
        }
        self.status_event("completed").await;
    }

    async fn verb(&mut self, v: &Element, doc_url: &str) -> Flow {
        match v.name.as_str() {
            "Reject" => {
                let reason = v.attr("reason").unwrap_or("rejected");
                self.step("reject", &[("reason", json!(reason))]);
                return Flow::End(if reason == "busy" {
                    CallStatus::Busy
                } else {
                    CallStatus::NoAnswer
                });
            }
            _ => self.answer(),
        }
        match v.name.as_str() {
            "Say" => {
                self.say(v);
                Flow::Next
            }
            "Play" => {
                self.play(v);
                Flow::Next
            }
            "Pause" => {
                self.pause(v);
                Flow::Next
            }
            "Gather" => self.gather(v, doc_url),
            "Dial" => self.dial(v, doc_url).await,
            "Record" => self.record(v, doc_url).await,
            "Redirect" => match resolve(doc_url, &v.text) {
                Some(url) => {
                    self.step("redirect", &[("url", json!(url))]);
                    Flow::Goto {
                        url,
                        method: v.attr("method").unwrap_or("POST").to_string(),
                        extra: Form::new(),
                    }
                }
                None => Flow::End(CallStatus::Completed),
            },
            "Hangup" => {
                self.step("hangup", &[]);
                Flow::End(CallStatus::Completed)
            }
            "Message" => {
                self.message(v);
                Flow::Next
            }
            other => {
                self.step(
                    "error",
                    &[
                        ("code", json!(12200)),
                        ("message", json!(format!("unsupported verb <{other}>"))),
                    ],
                );
                Flow::End(CallStatus::Completed)
            }
        }
    }

    fn say(&mut self, v: &Element) {
        let loops = v
            .attr("loop")
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 10);
        self.step(
            "say",
            &[
                ("text", json!(v.text)),
                ("voice", json!(v.attr("voice"))),
                ("language", json!(v.attr("language"))),
                ("loop", json!(loops)),
            ],
        );
        // About two and a half words a second.
        self.clock += loops * (v.text.split_whitespace().count() as u64 * 2 / 5).max(1);
    }

    fn play(&mut self, v: &Element) {
        match v.attr("digits") {
            Some(d) => self.step("play", &[("digits", json!(d))]),
            None => self.step("play", &[("url", json!(v.text.trim()))]),
        }
        self.clock += 3;
    }

    fn pause(&mut self, v: &Element) {
        let length = v
            .attr("length")
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(1);
        self.step("pause", &[("length", json!(length))]);
        self.clock += length;
    }

    fn gather(&mut self, v: &Element, doc_url: &str) -> Flow {
        for child in &v.children {
            match child.name.as_str() {
                "Say" => self.say(child),
                "Play" => self.play(child),
                "Pause" => self.pause(child),
                _ => {}
            }
        }
        let modes = v.attr("input").unwrap_or("dtmf");
        let timeout = v
            .attr("timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(5);
        let input = self.script.inputs.get(self.inputs).cloned();
        self.inputs += 1;
        let mut extra = Form::new();
        match input {
            Some(i) if i.digits.is_some() && modes.contains("dtmf") => {
                let finish = v.attr("finishOnKey").unwrap_or("#");
                let mut digits: String = i.digits.unwrap_or_default();
                if let Some(pos) = digits.find(|c: char| !finish.is_empty() && finish.contains(c)) {
                    extra.push("FinishedOnKey", &digits[pos..pos + 1]);
                    digits.truncate(pos);
                }
                if let Some(n) = v.attr("numDigits").and_then(|n| n.parse::<usize>().ok()) {
                    digits = digits.chars().take(n).collect();
                }
                self.step("gather", &[("digits", json!(digits))]);
                extra.push("Digits", digits);
                self.clock += 2;
            }
            Some(i) if i.speech.is_some() && modes.contains("speech") => {
                let speech = i.speech.unwrap_or_default();
                self.step("gather", &[("speech", json!(speech))]);
                extra
                    .push("SpeechResult", speech)
                    .push("Confidence", "0.92");
                self.clock += 3;
            }
            _ => {
                self.clock += timeout;
                self.step("gather", &[("timeout", json!(true))]);
                if v.attr("actionOnEmptyResult") != Some("true") {
                    return Flow::Next;
                }
                extra.push("Digits", "");
            }
        }
        let url =
            resolve(doc_url, v.attr("action").unwrap_or("")).unwrap_or_else(|| doc_url.to_string());
        Flow::Goto {
            url,
            method: v.attr("method").unwrap_or("POST").to_string(),
            extra,
        }
    }

    async fn dial(&mut self, v: &Element, doc_url: &str) -> Flow {
        let mut targets: Vec<String> = v
            .children
            .iter()
            .filter(|c| {
                matches!(
                    c.name.as_str(),
                    "Number" | "Client" | "Sip" | "Conference" | "Queue"
                )
            })
            .map(|c| c.text.trim().to_string())
            .collect();
        if targets.is_empty() && !v.text.trim().is_empty() {
            targets.push(v.text.trim().to_string());
        }
        let timeout = v
            .attr("timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(30);
        let outcomes: Vec<(String, String)> = targets
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    self.script
                        .dial
                        .get(t)
                        .or(self.script.dial.get("default"))
                        .cloned()
                        .unwrap_or_else(|| "answer".into()),
                )
            })
            .collect();
        // Simultaneous ring: the first to answer wins; otherwise busy beats no-answer beats failed.
        let answered = outcomes
            .iter()
            .find(|(_, o)| o == "answer")
            .map(|(n, _)| n.clone());
        let status = if answered.is_some() {
            "completed"
        } else if outcomes.iter().any(|(_, o)| o == "busy") {
            "busy"
        } else if outcomes.iter().any(|(_, o)| o == "no-answer") {
            "no-answer"
        } else {
            "failed"
        };
        let talk = self.script.talk_secs.unwrap_or(30);
        let child = self.child_leg(
            answered
                .as_deref()
                .or(targets.first().map(String::as_str))
                .unwrap_or_default(),
            v.attr("callerId"),
            status,
            if answered.is_some() { talk } else { 0 },
        );
        self.clock += match status {
            "completed" => 5 + talk,
            "no-answer" => timeout,
            _ => 2,
        };
        self.step(
            "dial",
            &[
                ("numbers", json!(targets)),
                (
                    "outcomes",
                    json!(outcomes
                        .iter()
                        .map(|(n, o)| json!({"number": n, "outcome": o}))
                        .collect::<Vec<_>>()),
                ),
                ("status", json!(status)),
                ("answered_by", json!(answered)),
            ],
        );
        let mut extra = Form::new();
        extra
            .push("DialCallStatus", status)
            .push("DialCallSid", &child)
            .push(
                "DialCallDuration",
                if answered.is_some() {
                    talk.to_string()
                } else {
                    "0".into()
                },
            )
            .push("DialBridged", answered.is_some().to_string());
        let record = v
            .attr("record")
            .is_some_and(|r| r.starts_with("record-from"));
        if record && answered.is_some() {
            let rec = self.new_recording("DialVerb", talk, None);
            extra
                .push(
                    "RecordingUrl",
                    audio_url(&self.sim, &rec.account_sid, &rec.sid),
                )
                .push("RecordingSid", &rec.sid)
                .push("RecordingDuration", rec.duration.to_string());
            if let Some(cb) = v
                .attr("recordingStatusCallback")
                .and_then(|u| resolve(doc_url, u))
            {
                self.recording_callback(
                    &cb,
                    v.attr("recordingStatusCallbackMethod").unwrap_or("POST"),
                    &rec,
                )
                .await;
            }
        }
        match v.attr("action") {
            Some(a) => Flow::Goto {
                url: resolve(doc_url, a).unwrap_or_else(|| doc_url.to_string()),
                method: v.attr("method").unwrap_or("POST").to_string(),
                extra,
            },
            None => Flow::Next,
        }
    }

    /// Records the dialled leg as a call of its own, as Twilio does.
    fn child_leg(&self, to: &str, caller_id: Option<&str>, status: &str, talk: u64) -> String {
        let sid = state::new_sid("CA");
        let mut w = self.sim.world();
        let Some(parent) = w.calls.get(&self.sid).cloned() else {
            return sid;
        };
        let seq = w.seq();
        let now = Utc::now();
        w.calls.insert(
            sid.clone(),
            Call {
                seq,
                sid: sid.clone(),
                account_sid: parent.account_sid.clone(),
                parent_call_sid: Some(parent.sid.clone()),
                from: caller_id.unwrap_or(&parent.to).to_string(),
                to: to.to_string(),
                direction: "outbound-dial".into(),
                status: status.parse().unwrap_or(CallStatus::Completed),
                phone_number_sid: None,
                url: None,
                method: "POST".into(),
                twiml: None,
                status_callback: None,
                status_callback_method: "POST".into(),
                status_callback_events: vec![],
                record: false,
                recording_status_callback: None,
                timeout: 30,
                created: now,
                updated: now,
                start: (status == "completed").then_some(now),
                end: Some(now),
                duration: Some(talk),
                steps: vec![],
                pending_update: None,
            },
        );
        sid
    }

    fn new_recording(&self, source: &str, duration: u64, transcript: Option<&Spoken>) -> Recording {
        let mut w = self.sim.world();
        let account_sid = w
            .calls
            .get(&self.sid)
            .map(|c| c.account_sid.clone())
            .unwrap_or_default();
        let now = Utc::now();
        let mut rec = Recording {
            sid: state::new_sid("RE"),
            account_sid: account_sid.clone(),
            call_sid: self.sid.clone(),
            duration,
            source: source.into(),
            status: "completed".into(),
            created: now,
            transcription_sid: None,
        };
        if let Some(spoken) = transcript {
            let t = Transcription {
                sid: state::new_sid("TR"),
                account_sid,
                recording_sid: rec.sid.clone(),
                // Twilio transcribes recordings of up to two minutes.
                status: if duration <= 120 {
                    "completed".into()
                } else {
                    "failed".into()
                },
                text: if duration <= 120 {
                    spoken.text.clone()
                } else {
                    String::new()
                },
                duration,
                created: now,
            };
            rec.transcription_sid = Some(t.sid.clone());
            w.transcriptions.insert(t.sid.clone(), t);
        }
        w.recordings.insert(rec.sid.clone(), rec.clone());
        rec
    }

    async fn recording_callback(&self, url: &str, method: &str, rec: &Recording) {
        let mut p = Form::new();
        p.push("AccountSid", &rec.account_sid)
            .push("CallSid", &rec.call_sid)
            .push("RecordingSid", &rec.sid)
            .push(
                "RecordingUrl",
                audio_url(&self.sim, &rec.account_sid, &rec.sid),
            )
            .push("RecordingStatus", &rec.status)
            .push("RecordingDuration", rec.duration.to_string())
            .push("RecordingChannels", "1")
            .push("RecordingSource", &rec.source)
            .push("RecordingStartTime", twilio::types::rfc2822(rec.created));
        let _ = webhooks::send(&self.sim, "recording-status", url, method, &p, &self.token).await;
    }

    async fn record(&mut self, v: &Element, doc_url: &str) -> Flow {
        let max = v
            .attr("maxLength")
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(3600);
        let spoken = self
            .script
            .recordings
            .get(self.recordings)
            .cloned()
            .unwrap_or(Spoken {
                duration_secs: 5,
                text: "Hello".into(),
            });
        self.recordings += 1;
        let duration = spoken.duration_secs.min(max);
        if v.attr("playBeep") != Some("false") {
            self.step("beep", &[]);
        }
        let transcribe =
            v.attr("transcribe") == Some("true") || v.attr("transcribeCallback").is_some();
        if duration == 0 {
            // Nothing said: Twilio keeps no recording and moves on.
            self.clock += v
                .attr("timeout")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(5);
            self.step(
                "record",
                &[("recording_sid", Value::Null), ("duration", json!(0))],
            );
            return Flow::Next;
        }
        let rec = self.new_recording("RecordVerb", duration, transcribe.then_some(&spoken));
        self.clock += duration;
        let hung_up = self
            .script
            .hangup_after_secs
            .is_some_and(|s| self.clock >= s);
        self.step(
            "record",
            &[
                ("recording_sid", json!(rec.sid)),
                ("duration", json!(duration)),
                ("said", json!(spoken.text)),
            ],
        );
        if let Some(cb) = v
            .attr("recordingStatusCallback")
            .and_then(|u| resolve(doc_url, u))
        {
            self.recording_callback(
                &cb,
                v.attr("recordingStatusCallbackMethod").unwrap_or("POST"),
                &rec,
            )
            .await;
        }
        if let (Some(tsid), Some(cb)) = (
            rec.transcription_sid.clone(),
            v.attr("transcribeCallback")
                .and_then(|u| resolve(doc_url, u)),
        ) {
            let t = self.sim.world().transcriptions.get(&tsid).cloned();
            if let Some(t) = t {
                let Some(c) = self.call() else {
                    return Flow::Next;
                };
                let mut p = self.base_params(&c);
                p.push("TranscriptionSid", &t.sid)
                    .push("TranscriptionText", &t.text)
                    .push("TranscriptionStatus", &t.status)
                    .push(
                        "TranscriptionUrl",
                        format!(
                            "{}/api/2010-04-01/Accounts/{}/Transcriptions/{}",
                            self.sim.base_url(),
                            t.account_sid,
                            t.sid
                        ),
                    )
                    .push("RecordingSid", &rec.sid)
                    .push(
                        "RecordingUrl",
                        audio_url(&self.sim, &rec.account_sid, &rec.sid),
                    );
                let _ =
                    webhooks::send(&self.sim, "transcription", &cb, "POST", &p, &self.token).await;
            }
        }
        let mut extra = Form::new();
        extra
            .push(
                "RecordingUrl",
                audio_url(&self.sim, &rec.account_sid, &rec.sid),
            )
            .push("RecordingDuration", duration.to_string())
            .push("RecordingSid", &rec.sid)
            .push(
                "Digits",
                if hung_up {
                    "hangup".to_string()
                } else {
                    v.attr("finishOnKey")
                        .unwrap_or("#")
                        .chars()
                        .next()
                        .map(String::from)
                        .unwrap_or_default()
                },
            );
        // Without an action Twilio requests the current document again.
        let url =
            resolve(doc_url, v.attr("action").unwrap_or("")).unwrap_or_else(|| doc_url.to_string());
        Flow::Goto {
            url,
            method: v.attr("method").unwrap_or("POST").to_string(),
            extra,
        }
    }

    fn message(&mut self, v: &Element) {
        let Some(c) = self.call() else { return };
        let body = match v
            .children_named("Body")
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
        {
            parts if parts.is_empty() => v.text.clone(),
            parts => parts.concat(),
        };
        let own = if c.direction == "inbound" {
            &c.to
        } else {
            &c.from
        };
        let other = if c.direction == "inbound" {
            &c.from
        } else {
            &c.to
        };
        let to = v.attr("to").unwrap_or(other).to_string();
        let from = v.attr("from").unwrap_or(own).to_string();
        let sid = crate::handset::send_message(
            &self.sim,
            &c.account_sid,
            &from,
            &to,
            &body,
            v.attr("statusCallback").map(str::to_string),
            twilio::types::MessageDirection::OutboundCall,
        );
        self.step(
            "message",
            &[
                ("to", json!(to)),
                ("body", json!(body)),
                ("sid", json!(sid)),
            ],
        );
    }
}
