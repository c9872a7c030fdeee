//! Turning a call flow into TwiML, one round trip at a time. Steps that need no answer from the
//! caller (say, play, pause, business hours) run together; a step that waits for the caller or
//! for Twilio (menu, forward, voicemail) ends the document with an action URL that brings the
//! result back to `/twilio/voice/step`. Steps that need our own I/O (asking the app, another
//! flow) redirect to our endpoints. Everything here is a plain function of its inputs.

use super::flow::{CallerId, Flow, Menu, MenuInput, Prompt, Ring, Step};
use chrono::{DateTime, Utc};
use twilio::twiml::{
    Dial, DialRecord, Gather, GatherInput, Method, Number, Pause, Play, Record, Redirect, Reject,
    RejectReason, Response, Say,
};

/// Steps run in one document at the most (validated flows cannot loop forever, but a long
/// chain of says should still end).
const MAX_STEPS_PER_DOCUMENT: usize = 50;

/// Where the call is: what the renderer needs to know besides the flow.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// Our public URL (no trailing slash).
    pub base: &'a str,
    pub call_id: &'a str,
    /// The turn of the flow this document is (rides in its URLs, so that a replayed request
    /// can be told from a new one).
    pub turn: i64,
    pub now: DateTime<Utc>,
    /// The caller's number and the tenant's number that was called.
    pub caller: &'a str,
    pub number: &'a str,
    /// Ask Twilio to transcribe voicemails (false when our own speech-to-text does it).
    pub twilio_transcribe: bool,
}

/// Work the call asks of the server besides the TwiML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Text the caller this template (missed-call SMS), within the step's window rules.
    SendTemplate {
        template: String,
        window_minutes: u32,
        known_contacts_only: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub twiml: Response,
    /// The steps this document ran through, in order (the call's path).
    pub path: Vec<String>,
    pub effects: Vec<Effect>,
}

/// What Twilio reported back for a waiting step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// A menu's `<Gather>`: digits and/or speech (both empty when the caller said nothing).
    Menu {
        digits: String,
        speech: String,
        attempt: u32,
    },
    /// A forward's `<Dial>`: DialCallStatus, and which number (sequential ringing).
    Forward { dial_status: String, index: usize },
    /// A voicemail's `<Record>` finished.
    Voicemail,
}

fn step_url(ctx: &Ctx, step: &str, extra: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "{}/twilio/voice/step?call={}&turn={}&step={}{extra}",
        ctx.base,
        enc(ctx.call_id),
        ctx.turn,
        enc(step)
    )
}

fn say(p: &Prompt) -> Option<Say> {
    match p {
        Prompt::Say {
            say,
            voice,
            language,
        } => {
            let mut s = Say::new(say.clone());
            if let Some(v) = voice {
                s = s.voice(v.clone());
            }
            if let Some(l) = language {
                s = s.language(l.clone());
            }
            Some(s)
        }
        Prompt::Play { .. } => None,
    }
}

fn add_prompt(r: Response, p: &Prompt) -> Response {
    match p {
        Prompt::Play { play } => r.play(Play::new(play.clone())),
        Prompt::Say { .. } => r.say(say(p).expect("a say prompt")),
    }
}

fn gather_prompt(g: Gather, p: &Prompt) -> Gather {
    match p {
        Prompt::Play { play } => g.play(Play::new(play.clone())),
        Prompt::Say { .. } => g.say(say(p).expect("a say prompt")),
    }
}

/// Runs the flow from `start` until a step waits for an answer or the call ends.
pub fn render_from(flow: &Flow, start: &str, ctx: &Ctx) -> Rendered {
    render_into(flow, start, ctx, Response::new(), Vec::new())
}

fn render_into(
    flow: &Flow,
    start: &str,
    ctx: &Ctx,
    mut r: Response,
    mut path: Vec<String>,
) -> Rendered {
    let mut effects = Vec::new();
    let mut current = Some(start.to_string());
    for _ in 0..MAX_STEPS_PER_DOCUMENT {
        let Some(name) = current.take() else {
            r = r.hangup();
            return Rendered {
                twiml: r,
                path,
                effects,
            };
        };
        let Some(step) = flow.steps.get(&name) else {
            // Validation prevents this; a flow edited under a live call could still do it.
            r = r
                .say(Say::new(
                    "We are sorry, this line is not available right now. Goodbye.",
                ))
                .hangup();
            return Rendered {
                twiml: r,
                path,
                effects,
            };
        };
        path.push(name.clone());
        match step {
            Step::Say {
                text,
                voice,
                language,
                loops,
                next,
            } => {
                let mut s = Say::new(text.clone());
                if let Some(v) = voice {
                    s = s.voice(v.clone());
                }
                if let Some(l) = language {
                    s = s.language(l.clone());
                }
                if *loops > 1 {
                    s = s.loop_(*loops);
                }
                r = r.say(s);
                current = next.clone();
            }
            Step::Play { url, loops, next } => {
                let mut p = Play::new(url.clone());
                if *loops > 1 {
                    p = p.loop_(*loops);
                }
                r = r.play(p);
                current = next.clone();
            }
            Step::Pause { seconds, next } => {
                r = r.pause(Pause::new().length(*seconds));
                current = next.clone();
            }
            Step::BusinessHours(b) => {
                current = Some(if b.is_open(ctx.now) {
                    b.open.clone()
                } else {
                    b.closed.clone()
                });
            }
            Step::Menu(m) => {
                r = menu(r, m, &name, 0, ctx, None);
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
            Step::Forward(f) => {
                if f.record {
                    if let Some(d) = &f.disclosure {
                        r = r.say(Say::new(d.clone()));
                    }
                }
                r = r.dial(dial(f, &name, 0, ctx));
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
            Step::Voicemail(v) => {
                if let Some(g) = &v.greeting {
                    r = add_prompt(r, g);
                }
                let mut rec = Record::new()
                    .action(step_url(ctx, &name, ""))
                    .method(Method::Post)
                    .max_length(v.max_seconds)
                    .play_beep(v.beep)
                    .finish_on_key("#")
                    .recording_status_callback(format!(
                        "{}/twilio/voice/recording?call={}",
                        ctx.base, ctx.call_id
                    ));
                if v.transcribe && ctx.twilio_transcribe {
                    rec = rec.transcribe(true).transcribe_callback(format!(
                        "{}/twilio/voice/transcription?call={}",
                        ctx.base, ctx.call_id
                    ));
                }
                r = r.record(rec);
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
            Step::MissedCallSms(s) => {
                // Not answering keeps the call free for the caller.
                effects.push(Effect::SendTemplate {
                    template: s.template.clone(),
                    window_minutes: s.window_minutes,
                    known_contacts_only: s.known_contacts_only,
                });
                r = r.reject(Reject::new().reason(RejectReason::Busy));
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
            Step::AskApp(_) => {
                r = r.redirect(
                    Redirect::new(format!(
                        "{}/twilio/voice/ask?call={}&turn={}&step={}",
                        ctx.base, ctx.call_id, ctx.turn, name
                    ))
                    .method(Method::Post),
                );
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
            Step::Redirect { flow: other } => {
                let enc: String = url::form_urlencoded::byte_serialize(other.as_bytes()).collect();
                r = r.redirect(
                    Redirect::new(format!(
                        "{}/twilio/voice/flow?call={}&turn={}&flow={enc}",
                        ctx.base, ctx.call_id, ctx.turn
                    ))
                    .method(Method::Post),
                );
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
            Step::Hangup => {
                r = r.hangup();
                return Rendered {
                    twiml: r,
                    path,
                    effects,
                };
            }
        }
    }
    r = r.hangup();
    Rendered {
        twiml: r,
        path,
        effects,
    }
}

fn menu(
    mut r: Response,
    m: &Menu,
    name: &str,
    attempt: u32,
    ctx: &Ctx,
    retry: Option<&Prompt>,
) -> Response {
    if let Some(p) = retry {
        r = add_prompt(r, p);
    }
    let input: &[GatherInput] = match m.input {
        MenuInput::Dtmf => &[GatherInput::Dtmf],
        MenuInput::Speech => &[GatherInput::Speech],
        MenuInput::Both => &[GatherInput::Dtmf, GatherInput::Speech],
    };
    let mut g = Gather::new()
        .input(input)
        .action(step_url(ctx, name, &format!("&attempt={attempt}")))
        .method(Method::Post)
        .timeout(m.timeout_seconds)
        // No input comes back to us too, so that retries and the fallback are ours to run.
        .action_on_empty_result(true);
    let keys: Vec<&String> = m.choices.keys().collect();
    if m.input != MenuInput::Speech && keys.iter().all(|k| k.chars().count() == 1) {
        g = g.num_digits(1);
    }
    if m.input != MenuInput::Dtmf {
        let words: Vec<&str> = keys
            .iter()
            .filter(|k| {
                !k.chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            })
            .map(|k| k.as_str())
            .collect();
        if !words.is_empty() {
            g = g.hints(words.join(", "));
        }
    }
    r.gather(gather_prompt(g, &m.prompt))
}

fn dial(f: &super::flow::Forward, name: &str, index: usize, ctx: &Ctx) -> Dial {
    let mut d = Dial::new()
        .action(step_url(ctx, name, &format!("&index={index}")))
        .method(Method::Post)
        .timeout(f.timeout_seconds)
        .caller_id(match f.caller_id {
            CallerId::Caller => ctx.caller.to_string(),
            CallerId::Number => ctx.number.to_string(),
        });
    if f.record {
        d = d
            .record(DialRecord::RecordFromAnswerDual)
            .recording_status_callback(format!(
                "{}/twilio/voice/recording?call={}",
                ctx.base, ctx.call_id
            ));
    }
    let targets: Vec<&String> = match f.ring {
        Ring::Simultaneous => f.numbers.iter().collect(),
        Ring::Sequential => f.numbers.get(index).into_iter().collect(),
    };
    for n in targets {
        d = d.number(Number::new(n.clone()));
    }
    d
}

/// Continues the flow with what Twilio reported for the waiting step `name`.
pub fn continue_from(flow: &Flow, name: &str, result: &StepResult, ctx: &Ctx) -> Rendered {
    let hang_up = |path: Vec<String>| Rendered {
        twiml: Response::new().hangup(),
        path,
        effects: vec![],
    };
    let Some(step) = flow.steps.get(name) else {
        return hang_up(vec![]);
    };
    let next = |target: &Option<String>, path: Vec<String>| match target {
        Some(t) => render_into(flow, t, ctx, Response::new(), path),
        None => hang_up(path),
    };
    match (step, result) {
        (
            Step::Menu(m),
            StepResult::Menu {
                digits,
                speech,
                attempt,
            },
        ) => {
            let said = speech.trim().to_lowercase();
            let choice = m.choices.get(digits.as_str()).or_else(|| {
                m.choices
                    .iter()
                    .find(|(k, _)| {
                        !said.is_empty()
                            && (said == k.to_lowercase()
                                || said.split_whitespace().any(|w| {
                                    w.trim_matches(|c: char| !c.is_alphanumeric())
                                        == k.to_lowercase()
                                }))
                    })
                    .map(|(_, v)| v)
            });
            if let Some(target) = choice {
                return render_into(flow, target, ctx, Response::new(), vec![]);
            }
            let nothing = digits.is_empty() && said.is_empty();
            if *attempt < m.retries {
                let default_retry = Prompt::Say {
                    say: if nothing {
                        "Sorry, I didn't get that.".into()
                    } else {
                        "Sorry, that is not one of the choices.".into()
                    },
                    voice: None,
                    language: None,
                };
                let retry = m.retry_prompt.as_ref().unwrap_or(&default_retry);
                let twiml = menu(Response::new(), m, name, attempt + 1, ctx, Some(retry));
                return Rendered {
                    twiml,
                    path: vec![name.to_string()],
                    effects: vec![],
                };
            }
            let target = if nothing {
                &m.on_no_input
            } else {
                m.on_invalid
                    .as_ref()
                    .map_or(&m.on_no_input, |_| &m.on_invalid)
            };
            next(target, vec![])
        }
        (Step::Forward(f), StepResult::Forward { dial_status, index }) => {
            let answered = matches!(dial_status.as_str(), "completed" | "answered");
            if !answered && f.ring == Ring::Sequential && index + 1 < f.numbers.len() {
                let twiml = Response::new().dial(dial(f, name, index + 1, ctx));
                return Rendered {
                    twiml,
                    path: vec![name.to_string()],
                    effects: vec![],
                };
            }
            let target = match dial_status.as_str() {
                "completed" | "answered" => &f.on_answered,
                "busy" => &f.on_busy,
                "no-answer" => &f.on_no_answer,
                _ => &f.on_failed,
            };
            next(target, vec![])
        }
        (Step::Voicemail(v), StepResult::Voicemail) => match &v.next {
            Some(_) => next(&v.next, vec![]),
            None => Rendered {
                twiml: Response::new()
                    .say(Say::new("Thank you. Goodbye."))
                    .hangup(),
                path: vec![],
                effects: vec![],
            },
        },
        // A result that does not fit the step (the flow changed under the call): end politely.
        _ => Rendered {
            twiml: Response::new().say(Say::new("Goodbye.")).hangup(),
            path: vec![],
            effects: vec![],
        },
    }
}

/// TwiML as a string, for webhook answers.
pub fn document(r: &Rendered) -> String {
    r.twiml.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::flow::validate;
    use chrono::TimeZone;
    use twilio::twiml;

    fn ctx(now: DateTime<Utc>) -> Ctx<'static> {
        Ctx {
            base: "https://sb.example.com",
            call_id: "call_1",
            turn: 0,
            now,
            caller: "+14155550199",
            number: "+14155550100",
            twilio_transcribe: true,
        }
    }

    fn flow(json: serde_json::Value) -> Flow {
        let mut f: Flow = serde_json::from_value(json).unwrap();
        validate(&mut f, "US").unwrap();
        f
    }

    fn advisor() -> Flow {
        flow(serde_json::json!({
            "name": "Advisor",
            "start": "hours",
            "steps": {
                "hours": {"type": "business_hours", "timezone": "America/New_York", "weekly": {"mon": ["09:00-17:00"]}, "open": "welcome", "closed": "after_hours"},
                "welcome": {"type": "say", "text": "Thanks for calling Smith & Jones <Advisors>.", "next": "menu"},
                "menu": {"type": "menu", "prompt": {"say": "Press 1 to book, 2 to speak to an advisor."}, "choices": {"1": "book", "2": "advisor"}, "retries": 1, "on_no_input": "voicemail"},
                "book": {"type": "say", "text": "Visit our website to book."},
                "advisor": {"type": "forward", "numbers": ["+14155550142", "+14155550143"], "ring": "sequential", "record": true, "disclosure": "This call may be recorded.", "on_no_answer": "voicemail", "on_busy": "voicemail"},
                "voicemail": {"type": "voicemail", "greeting": {"say": "Please leave a message."}, "max_seconds": 90},
                "after_hours": {"type": "missed_call_sms", "template": "hours", "window_minutes": 30}
            }
        }))
    }

    const OPEN: (i32, u32, u32, u32) = (2026, 11, 23, 15); // Monday 10:00 in New York

    fn open() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(OPEN.0, OPEN.1, OPEN.2, OPEN.3, 0, 0)
            .unwrap()
    }

    #[test]
    fn open_hours_greet_and_offer_the_menu() {
        let f = advisor();
        let r = render_from(&f, &f.start, &ctx(open()));
        assert_eq!(r.path, ["hours", "welcome", "menu"]);
        let doc = document(&r);
        assert!(
            doc.contains("<Say>Thanks for calling Smith &amp; Jones &lt;Advisors&gt;.</Say>"),
            "{doc}"
        );
        assert!(doc.contains(r#"<Gather action="https://sb.example.com/twilio/voice/step?call=call_1&amp;turn=0&amp;step=menu&amp;attempt=0" actionOnEmptyResult="true" input="dtmf" method="POST" numDigits="1" timeout="5">"#), "{doc}");
        let parsed = twiml::parse(&doc).unwrap();
        assert_eq!(parsed.children.len(), 2);
    }

    #[test]
    fn closed_hours_reject_and_text() {
        let f = advisor();
        let r = render_from(
            &f,
            &f.start,
            &ctx(Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap()),
        );
        assert_eq!(r.path, ["hours", "after_hours"]);
        assert_eq!(
            document(&r),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy" /></Response>"#
        );
        assert_eq!(
            r.effects,
            [Effect::SendTemplate {
                template: "hours".into(),
                window_minutes: 30,
                known_contacts_only: false
            }]
        );
    }

    #[test]
    fn menu_choices_retries_and_fallback() {
        let f = advisor();
        let c = ctx(open());
        let r = continue_from(
            &f,
            "menu",
            &StepResult::Menu {
                digits: "1".into(),
                speech: String::new(),
                attempt: 0,
            },
            &c,
        );
        assert_eq!(r.path, ["book"]);
        assert!(
            document(&r).ends_with("<Say>Visit our website to book.</Say><Hangup /></Response>")
        );
        // A wrong key: offered again with a retry prompt.
        let r = continue_from(
            &f,
            "menu",
            &StepResult::Menu {
                digits: "7".into(),
                speech: String::new(),
                attempt: 0,
            },
            &c,
        );
        let doc = document(&r);
        assert!(
            doc.contains("not one of the choices") && doc.contains("attempt=1"),
            "{doc}"
        );
        // Retries used up with no input: voicemail.
        let r = continue_from(
            &f,
            "menu",
            &StepResult::Menu {
                digits: String::new(),
                speech: String::new(),
                attempt: 1,
            },
            &c,
        );
        assert_eq!(r.path, ["voicemail"]);
        let doc = document(&r);
        assert!(
            doc.contains("<Record ")
                && doc.contains(r#"maxLength="90""#)
                && doc.contains(r#"transcribe="true""#),
            "{doc}"
        );
    }

    #[test]
    fn sequential_forward_then_voicemail() {
        let f = advisor();
        let c = ctx(open());
        let r = continue_from(
            &f,
            "menu",
            &StepResult::Menu {
                digits: "2".into(),
                speech: String::new(),
                attempt: 0,
            },
            &c,
        );
        let doc = document(&r);
        assert!(
            doc.contains("<Say>This call may be recorded.</Say>"),
            "{doc}"
        );
        assert!(
            doc.contains("<Number>+14155550142</Number></Dial>") && !doc.contains("+14155550143"),
            "{doc}"
        );
        assert!(
            doc.contains(r#"callerId="+14155550199""#)
                && doc.contains(r#"record="record-from-answer-dual""#)
        );
        let r = continue_from(
            &f,
            "advisor",
            &StepResult::Forward {
                dial_status: "no-answer".into(),
                index: 0,
            },
            &c,
        );
        assert!(document(&r).contains("<Number>+14155550143</Number>"));
        let r = continue_from(
            &f,
            "advisor",
            &StepResult::Forward {
                dial_status: "busy".into(),
                index: 1,
            },
            &c,
        );
        assert_eq!(r.path, ["voicemail"]);
        let r = continue_from(
            &f,
            "advisor",
            &StepResult::Forward {
                dial_status: "completed".into(),
                index: 1,
            },
            &c,
        );
        assert_eq!(
            document(&r),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>"#
        );
        let r = continue_from(&f, "voicemail", &StepResult::Voicemail, &c);
        assert!(document(&r).contains("Goodbye"));
    }

    #[test]
    fn speech_menus_match_words() {
        let f = flow(serde_json::json!({"name": "s", "start": "m", "steps": {
            "m": {"type": "menu", "input": "both", "prompt": {"say": "Say billing or press 1"}, "choices": {"1": "b", "billing": "b"}},
            "b": {"type": "hangup"}}}));
        let c = ctx(open());
        let doc = document(&render_from(&f, "m", &c));
        assert!(
            doc.contains(r#"hints="billing""#) && doc.contains(r#"input="dtmf speech""#),
            "{doc}"
        );
        let r = continue_from(
            &f,
            "m",
            &StepResult::Menu {
                digits: String::new(),
                speech: "Billing, please.".into(),
                attempt: 0,
            },
            &c,
        );
        assert_eq!(r.path, ["b"]);
    }
}
