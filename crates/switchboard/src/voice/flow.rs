//! Call flows: what happens when someone calls a number, as declarative data. A flow is a set
//! of named steps and a start step; each step says what to do and where to go next (no `next`
//! hangs up). Validation names the step at fault: unknown steps and fields, references to
//! missing steps, unreachable steps, loops the call could never leave, bad numbers and times.

use crate::phone::E164;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub name: String,
    pub start: String,
    pub steps: BTreeMap<String, Step>,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Something said or played to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Prompt {
    Say {
        say: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voice: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    Play {
        play: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MenuInput {
    #[default]
    Dtmf,
    Speech,
    Both,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    pub prompt: Prompt,
    #[serde(default)]
    pub input: MenuInput,
    /// Key pressed (`1`, `0`, `*`) or word said (`sales`) → the step it leads to.
    pub choices: BTreeMap<String, String>,
    #[serde(default = "five")]
    pub timeout_seconds: u32,
    /// How many more times the menu is offered after no input or a wrong choice.
    #[serde(default = "two")]
    pub retries: u32,
    /// Said before offering the menu again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_prompt: Option<Prompt>,
    /// Where to go when the retries are used up with no input (none: hang up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_input: Option<String>,
    /// Where to go when the retries are used up on wrong choices (default: as on_no_input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_invalid: Option<String>,
}

fn five() -> u32 {
    5
}
fn two() -> u32 {
    2
}
fn twenty() -> u32 {
    20
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Ring {
    /// All numbers at once; the first to answer takes the call.
    #[default]
    Simultaneous,
    /// One after another, each for `timeout_seconds`.
    Sequential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallerId {
    /// The person called sees the original caller's number.
    #[default]
    Caller,
    /// The person called sees the tenant's number.
    Number,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub numbers: Vec<String>,
    #[serde(default)]
    pub ring: Ring,
    #[serde(default = "twenty")]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub caller_id: CallerId,
    #[serde(default)]
    pub record: bool,
    /// Said to the caller before a recorded call is connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<String>,
    /// After a conversation (none: hang up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_answered: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_busy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voicemail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<Prompt>,
    #[serde(default = "one_twenty")]
    pub max_seconds: u32,
    #[serde(default = "yes")]
    pub beep: bool,
    #[serde(default = "yes")]
    pub transcribe: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn one_twenty() -> u32 {
    120
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// An IANA time zone, e.g. `America/New_York`.
    pub timezone: String,
    /// `mon`…`sun` → opening ranges like `09:00-12:30`.
    pub weekly: BTreeMap<String, Vec<String>>,
    /// Closed all day (`2026-12-25`).
    #[serde(default)]
    pub holidays: Vec<String>,
    pub open: String,
    pub closed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissedCallSms {
    /// The template (name or id) texted to the caller, rendered with the contact's attributes.
    pub template: String,
    /// At most one text per caller within this many minutes.
    #[serde(default = "sixty")]
    pub window_minutes: u32,
    /// Text only callers who are already contacts.
    #[serde(default)]
    pub known_contacts_only: bool,
}

fn sixty() -> u32 {
    60
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskApp {
    /// The host application's URL; it answers with the steps to run next.
    pub url: String,
    #[serde(default = "three_thousand")]
    pub timeout_ms: u32,
    /// Where to go when the app does not answer in time or answers badly.
    pub fallback: String,
}

fn three_thousand() -> u32 {
    3000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Say {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voice: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        #[serde(default = "one")]
        loops: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    Play {
        url: String,
        #[serde(default = "one")]
        loops: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    Pause {
        seconds: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    Menu(Menu),
    Forward(Forward),
    Voicemail(Voicemail),
    BusinessHours(BusinessHours),
    MissedCallSms(MissedCallSms),
    AskApp(AskApp),
    /// Continue with another flow of the tenant's.
    Redirect {
        flow: String,
    },
    Hangup,
}

/// What is wrong with a flow, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowError {
    pub step: Option<String>,
    pub message: String,
}

impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(s) => write!(f, "step {s:?}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn o(s: &Option<String>) -> Option<&str> {
    s.as_deref()
}

impl Step {
    /// The steps this one can lead to, with the field naming each; `None` targets hang up.
    pub fn edges(&self) -> Vec<(&'static str, Option<&str>)> {
        match self {
            Step::Say { next, .. } | Step::Play { next, .. } | Step::Pause { next, .. } => {
                vec![("next", o(next))]
            }
            Step::Menu(m) => {
                let mut e: Vec<_> = m
                    .choices
                    .values()
                    .map(|t| ("choices", Some(t.as_str())))
                    .collect();
                e.push(("on_no_input", o(&m.on_no_input)));
                e.push(("on_invalid", o(&m.on_invalid).or(o(&m.on_no_input))));
                e
            }
            Step::Forward(f) => vec![
                ("on_answered", o(&f.on_answered)),
                ("on_no_answer", o(&f.on_no_answer)),
                ("on_busy", o(&f.on_busy)),
                ("on_failed", o(&f.on_failed)),
            ],
            Step::Voicemail(v) => vec![("next", o(&v.next))],
            Step::BusinessHours(b) => vec![
                ("open", Some(b.open.as_str())),
                ("closed", Some(b.closed.as_str())),
            ],
            Step::AskApp(a) => vec![
                ("fallback", Some(a.fallback.as_str())),
                ("the app's answer", None),
            ],
            Step::MissedCallSms(_) | Step::Redirect { .. } | Step::Hangup => vec![("end", None)],
        }
    }
}

fn parse_range(s: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = s.split_once('-')?;
    let a = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let b = if b.trim() == "24:00" {
        NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999)?
    } else {
        NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?
    };
    (a < b).then_some((a, b))
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

impl BusinessHours {
    /// Whether the schedule is open at `t`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let Ok(tz) = self.timezone.parse::<chrono_tz::Tz>() else {
            return false;
        };
        let local = t.with_timezone(&tz);
        let date = local.date_naive().format("%Y-%m-%d").to_string();
        if self.holidays.contains(&date) {
            return false;
        }
        let time = local.time();
        self.weekly.iter().any(|(day, ranges)| {
            weekday(day) == Some(local.weekday())
                && ranges
                    .iter()
                    .filter_map(|r| parse_range(r))
                    .any(|(a, b)| time >= a && time < b)
        })
    }
}

fn check_prompt(p: &Prompt, err: &mut dyn FnMut(String)) {
    match p {
        Prompt::Say { say, .. } if say.trim().is_empty() => err("a prompt's `say` is empty".into()),
        Prompt::Play { play } if !is_http(play) => {
            err(format!("`play` {play:?} is not an http(s) URL"))
        }
        _ => {}
    }
}

fn is_http(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
}

/// Checks a flow and returns every problem found, naming the step of each. Forwarded numbers
/// are normalised to E.164 (with `region` for numbers written without a country code).
pub fn validate(flow: &mut Flow, region: &str) -> Result<(), Vec<FlowError>> {
    let mut errors = Vec::new();
    let names: BTreeSet<String> = flow.steps.keys().cloned().collect();
    if flow.name.trim().is_empty() || flow.name.len() > 100 {
        errors.push(FlowError {
            step: None,
            message: "a flow needs a name of 1 to 100 characters".into(),
        });
    }
    if flow.steps.is_empty() {
        errors.push(FlowError {
            step: None,
            message: "a flow needs at least one step".into(),
        });
    }
    if !names.contains(&flow.start) {
        errors.push(FlowError {
            step: None,
            message: format!("start step {:?} does not exist", flow.start),
        });
    }
    for (name, step) in flow.steps.iter_mut() {
        let mut err = |message: String| {
            errors.push(FlowError {
                step: Some(name.clone()),
                message,
            })
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            err("step names use 1 to 64 letters, digits, `_` or `-`".into());
        }
        for (field, target) in step.edges() {
            if let Some(t) = target {
                if !names.contains(t) {
                    err(format!(
                        "`{field}` leads to {t:?}, which is not a step of this flow"
                    ));
                }
            }
        }
        match step {
            Step::Say { text, loops, .. } => {
                if text.trim().is_empty() {
                    err("`text` is empty".into());
                }
                if !(1..=10).contains(loops) {
                    err("`loops` is 1 to 10".into());
                }
            }
            Step::Play { url, loops, .. } => {
                if !is_http(url) {
                    err(format!("`url` {url:?} is not an http(s) URL"));
                }
                if !(1..=10).contains(loops) {
                    err("`loops` is 1 to 10".into());
                }
            }
            Step::Pause { seconds, .. } => {
                if !(1..=60).contains(seconds) {
                    err("`seconds` is 1 to 60".into());
                }
            }
            Step::Menu(m) => {
                check_prompt(&m.prompt, &mut err);
                if m.choices.is_empty() {
                    err("a menu needs at least one choice".into());
                }
                for key in m.choices.keys() {
                    let keypad = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
                    if m.input == MenuInput::Dtmf && !keypad {
                        err(format!("choice {key:?} is not keypad keys (use input: speech or both for words)"));
                    }
                    if key.trim().is_empty() {
                        err("a choice key is empty".into());
                    }
                }
                if !(1..=60).contains(&m.timeout_seconds) {
                    err("`timeout_seconds` is 1 to 60".into());
                }
                if m.retries > 5 {
                    err("`retries` is 0 to 5".into());
                }
                if let Some(p) = &m.retry_prompt {
                    check_prompt(p, &mut err);
                }
            }
            Step::Forward(f) => {
                if f.numbers.is_empty() || f.numbers.len() > 10 {
                    err("forward to 1 to 10 numbers".into());
                }
                for n in f.numbers.iter_mut() {
                    match E164::parse(n, region) {
                        Ok(e) => *n = e.to_string(),
                        Err(e) => err(format!("number {e}")),
                    }
                }
                if !(5..=600).contains(&f.timeout_seconds) {
                    err("`timeout_seconds` is 5 to 600".into());
                }
            }
            Step::Voicemail(v) => {
                if let Some(p) = &v.greeting {
                    check_prompt(p, &mut err);
                }
                if !(1..=3600).contains(&v.max_seconds) {
                    err("`max_seconds` is 1 to 3600".into());
                }
            }
            Step::BusinessHours(b) => {
                if b.timezone.parse::<chrono_tz::Tz>().is_err() {
                    err(format!(
                        "{:?} is not an IANA time zone such as America/New_York",
                        b.timezone
                    ));
                }
                for (day, ranges) in &b.weekly {
                    if weekday(day).is_none() {
                        err(format!(
                            "{day:?} is not a day: use mon, tue, wed, thu, fri, sat, sun"
                        ));
                    }
                    for r in ranges {
                        if parse_range(r).is_none() {
                            err(format!("{r:?} is not an opening range like 09:00-17:00"));
                        }
                    }
                }
                for h in &b.holidays {
                    if NaiveDate::parse_from_str(h, "%Y-%m-%d").is_err() {
                        err(format!("holiday {h:?} is not a date like 2026-12-25"));
                    }
                }
            }
            Step::MissedCallSms(s) => {
                if s.template.trim().is_empty() {
                    err("`template` is empty".into());
                }
                if !(1..=10_080).contains(&s.window_minutes) {
                    err("`window_minutes` is 1 to 10080 (a week)".into());
                }
            }
            Step::AskApp(a) => {
                if !is_http(&a.url) {
                    err(format!("`url` {:?} is not an http(s) URL", a.url));
                }
                if !(100..=15_000).contains(&a.timeout_ms) {
                    err("`timeout_ms` is 100 to 15000".into());
                }
            }
            Step::Redirect { flow } => {
                if flow.trim().is_empty() {
                    err("`flow` is empty".into());
                }
            }
            Step::Hangup => {}
        }
    }
    if errors.is_empty() {
        check_graph(flow, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates steps an app adds to a running flow: the same checks, except that steps of the
/// flow the new ones do not lead to are not "unreachable".
pub fn validate_extension(flow: &mut Flow, region: &str) -> Result<(), Vec<FlowError>> {
    match validate(flow, region) {
        Ok(()) => Ok(()),
        Err(errors) => {
            let rest: Vec<FlowError> = errors
                .into_iter()
                .filter(|e| !e.message.starts_with("no path from the start step"))
                .collect();
            if rest.is_empty() {
                Ok(())
            } else {
                Err(rest)
            }
        }
    }
}

/// Every step must be reachable from the start, and from every step the call must be able to
/// end (a loop such as say → say → say with no way out is refused).
fn check_graph(flow: &Flow, errors: &mut Vec<FlowError>) {
    let mut reached = BTreeSet::new();
    let mut queue = VecDeque::from([flow.start.as_str()]);
    while let Some(s) = queue.pop_front() {
        if !reached.insert(s) {
            continue;
        }
        if let Some(step) = flow.steps.get(s) {
            queue.extend(step.edges().into_iter().filter_map(|(_, t)| t));
        }
    }
    for name in flow.steps.keys() {
        if !reached.contains(name.as_str()) {
            errors.push(FlowError {
                step: Some(name.clone()),
                message: format!("no path from the start step {:?} leads here", flow.start),
            });
        }
    }
    // Steps that can end the call, then everything that can reach one of them.
    let mut can_end: BTreeSet<&str> = flow
        .steps
        .iter()
        .filter(|(_, s)| s.edges().iter().any(|(_, t)| t.is_none()))
        .map(|(n, _)| n.as_str())
        .collect();
    loop {
        let before = can_end.len();
        for (name, step) in &flow.steps {
            if step
                .edges()
                .iter()
                .any(|(_, t)| t.is_some_and(|t| can_end.contains(t)))
            {
                can_end.insert(name.as_str());
            }
        }
        if can_end.len() == before {
            break;
        }
    }
    for name in reached {
        if flow.steps.contains_key(name) && !can_end.contains(name) {
            errors.push(FlowError {
                step: Some(name.to_string()),
                message: "this step is in a loop the call can never leave".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn flow(json: serde_json::Value) -> Flow {
        serde_json::from_value(json).unwrap()
    }

    fn errors(mut f: Flow) -> Vec<String> {
        validate(&mut f, "US")
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_good_flow_validates_and_normalises_numbers() {
        let mut f = flow(serde_json::json!({
            "name": "Front desk",
            "start": "hours",
            "steps": {
                "hours": {"type": "business_hours", "timezone": "America/New_York", "weekly": {"mon": ["09:00-17:00"]}, "open": "menu", "closed": "voicemail"},
                "menu": {"type": "menu", "prompt": {"say": "Press 1 for sales"}, "choices": {"1": "sales"}, "on_no_input": "voicemail"},
                "sales": {"type": "forward", "numbers": ["(415) 555-0142"], "record": true, "disclosure": "This call is recorded", "on_no_answer": "voicemail"},
                "voicemail": {"type": "voicemail", "greeting": {"say": "Leave a message"}}
            }
        }));
        validate(&mut f, "US").unwrap();
        let Step::Forward(fw) = &f.steps["sales"] else {
            panic!()
        };
        assert_eq!(fw.numbers, ["+14155550142"]);
    }

    #[test]
    fn unknown_steps_and_fields_are_refused_by_name() {
        let e = serde_json::from_value::<Flow>(
            serde_json::json!({"name": "x", "start": "a", "steps": {"a": {"type": "teleport"}}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("teleport"), "{e}");
        let e = serde_json::from_value::<Flow>(serde_json::json!({"name": "x", "start": "a", "steps": {"a": {"type": "say", "text": "hi", "colour": "red"}}})).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn references_reachability_and_loops() {
        let f = flow(
            serde_json::json!({"name": "x", "start": "a", "steps": {"a": {"type": "say", "text": "hi", "next": "ghost"}}}),
        );
        assert_eq!(
            errors(f),
            ["step \"a\": `next` leads to \"ghost\", which is not a step of this flow"]
        );
        let f = flow(
            serde_json::json!({"name": "x", "start": "a", "steps": {"a": {"type": "hangup"}, "b": {"type": "hangup"}}}),
        );
        assert_eq!(
            errors(f),
            ["step \"b\": no path from the start step \"a\" leads here"]
        );
        let f = flow(serde_json::json!({"name": "x", "start": "a", "steps": {
            "a": {"type": "say", "text": "one", "next": "b"},
            "b": {"type": "pause", "seconds": 1, "next": "a"}}}));
        let e = errors(f);
        assert_eq!(e.len(), 2);
        assert!(e
            .iter()
            .all(|m| m.contains("loop the call can never leave")));
        // A menu that returns to itself is fine: no input eventually hangs up.
        let f = flow(serde_json::json!({"name": "x", "start": "m", "steps": {
            "m": {"type": "menu", "prompt": {"say": "Press 9 to hear this again"}, "choices": {"9": "m"}}}}));
        assert!(errors(f).is_empty());
        let f = flow(
            serde_json::json!({"name": "x", "start": "nope", "steps": {"a": {"type": "hangup"}}}),
        );
        assert!(errors(f)[0].contains("start step \"nope\""));
    }

    #[test]
    fn field_checks_name_the_step() {
        let f = flow(serde_json::json!({"name": "x", "start": "f", "steps": {
            "f": {"type": "forward", "numbers": ["12"], "timeout_seconds": 1},
        }}));
        let e = errors(f);
        assert!(e.iter().any(|m| m.starts_with("step \"f\": number")));
        assert!(e.iter().any(|m| m.contains("timeout_seconds")));
        let f = flow(serde_json::json!({"name": "x", "start": "h", "steps": {
            "h": {"type": "business_hours", "timezone": "Mars/Olympus", "weekly": {"funday": ["17:00-09:00"]}, "holidays": ["someday"], "open": "z", "closed": "z"},
            "z": {"type": "hangup"}}}));
        let e = errors(f);
        assert_eq!(e.len(), 4, "{e:?}");
        let f = flow(serde_json::json!({"name": "x", "start": "m", "steps": {
            "m": {"type": "menu", "prompt": {"say": "Say sales"}, "choices": {"sales": "z"}}, "z": {"type": "hangup"}}}));
        assert!(errors(f)[0].contains("not keypad keys"));
    }

    #[test]
    fn business_hours_in_their_time_zone() {
        let b = BusinessHours {
            timezone: "America/New_York".into(),
            weekly: [(
                "mon".to_string(),
                vec!["09:00-12:00".to_string(), "13:00-17:00".to_string()],
            )]
            .into(),
            holidays: vec!["2026-11-30".into()],
            open: "o".into(),
            closed: "c".into(),
        };
        // Monday 2026-11-23, 10:00 in New York is 15:00 UTC.
        assert!(b.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()));
        assert!(
            !b.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 17, 30, 0).unwrap()),
            "lunch"
        );
        assert!(
            !b.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap()),
            "08:00 local"
        );
        assert!(
            !b.is_open(Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap()),
            "tuesday"
        );
        assert!(
            !b.is_open(Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap()),
            "holiday"
        );
    }
}
