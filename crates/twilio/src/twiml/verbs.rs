//! The TwiML verbs and nouns, each a builder whose setters name Twilio's attributes.

use super::{AttrValue, Node, DECLARATION};
use std::fmt;

macro_rules! setter {
    ($(#[$m:meta])* $method:ident, $attr:literal, str) => {
        $(#[$m])*
        pub fn $method(mut self, v: impl Into<String>) -> Self {
            self.0.set($attr, v.into());
            self
        }
    };
    ($(#[$m:meta])* $method:ident, $attr:literal, [$t:ty]) => {
        $(#[$m])*
        pub fn $method(mut self, v: &[$t]) -> Self {
            self.0.set($attr, AttrValue::to_attr(&v));
            self
        }
    };
    ($(#[$m:meta])* $method:ident, $attr:literal, $t:ty) => {
        $(#[$m])*
        pub fn $method(mut self, v: $t) -> Self {
            self.0.set($attr, AttrValue::to_attr(&v));
            self
        }
    };
}

macro_rules! element {
    ($(#[$m:meta])* $ty:ident { $($method:ident => $attr:literal : $t:tt),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(Node);
        impl $ty {
            $(setter!($method, $attr, $t);)*
            /// The element as it will be written.
            pub fn node(&self) -> &Node {
                &self.0
            }
        }
        impl From<$ty> for Node {
            fn from(v: $ty) -> Node {
                v.0
            }
        }
    };
}

/// Defines a closed set of attribute values.
macro_rules! attr_enum {
    ($(#[$m:meta])* $ty:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty { $($variant),* }
        impl $ty {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
        }
        impl AttrValue for $ty {
            fn to_attr(&self) -> String {
                self.as_str().to_string()
            }
        }
        impl std::str::FromStr for $ty {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($s => Ok(Self::$variant),)* _ => Err(()) }
            }
        }
    };
}

attr_enum!(Method { Get => "GET", Post => "POST" });
attr_enum!(GatherInput { Dtmf => "dtmf", Speech => "speech" });
attr_enum!(DialRecord {
    DoNotRecord => "do-not-record",
    RecordFromAnswer => "record-from-answer",
    RecordFromRinging => "record-from-ringing",
    RecordFromAnswerDual => "record-from-answer-dual",
    RecordFromRingingDual => "record-from-ringing-dual",
});
attr_enum!(Trim { TrimSilence => "trim-silence", DoNotTrim => "do-not-trim" });
attr_enum!(RejectReason { Rejected => "rejected", Busy => "busy" });
attr_enum!(CallEvent {
    Initiated => "initiated",
    Ringing => "ringing",
    Answered => "answered",
    Completed => "completed",
});
attr_enum!(RecordingEvent { InProgress => "in-progress", Completed => "completed", Absent => "absent" });
attr_enum!(ConferenceEvent {
    Start => "start",
    End => "end",
    Join => "join",
    Leave => "leave",
    Mute => "mute",
    Hold => "hold",
    Modify => "modify",
    Speaker => "speaker",
    Announcement => "announcement",
});
attr_enum!(ConferenceRecord { DoNotRecord => "do-not-record", RecordFromStart => "record-from-start" });
attr_enum!(Beep { True => "true", False => "false", OnEnter => "onEnter", OnExit => "onExit" });

/// `<Response>`: the root of every TwiML document, for voice and messaging alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response(Node);

impl Default for Response {
    fn default() -> Self {
        Response(Node::new("Response"))
    }
}

impl Response {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, n: impl Into<Node>) -> Self {
        self.0.push(n.into());
        self
    }

    pub fn say(self, v: Say) -> Self {
        self.add(v)
    }
    pub fn play(self, v: Play) -> Self {
        self.add(v)
    }
    pub fn pause(self, v: Pause) -> Self {
        self.add(v)
    }
    pub fn gather(self, v: Gather) -> Self {
        self.add(v)
    }
    pub fn dial(self, v: Dial) -> Self {
        self.add(v)
    }
    pub fn record(self, v: Record) -> Self {
        self.add(v)
    }
    pub fn redirect(self, v: Redirect) -> Self {
        self.add(v)
    }
    pub fn reject(self, v: Reject) -> Self {
        self.add(v)
    }
    pub fn hangup(self) -> Self {
        self.add(Node::new("Hangup"))
    }
    pub fn enqueue(self, v: Enqueue) -> Self {
        self.add(v)
    }
    pub fn leave(self) -> Self {
        self.add(Node::new("Leave"))
    }
    pub fn message(self, v: Message) -> Self {
        self.add(v)
    }

    /// The verbs in order.
    pub fn verbs(&self) -> &[Node] {
        &self.0.children
    }

    /// The document without the XML declaration.
    pub fn to_xml_fragment(&self) -> String {
        let mut out = String::with_capacity(128);
        self.0.write(&mut out);
        out
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DECLARATION)?;
        f.write_str(&self.to_xml_fragment())
    }
}

element!(
    /// `<Say>`: read text aloud.
    Say {
        voice => "voice": str,
        language => "language": str,
        loop_ => "loop": u32,
    }
);
impl Say {
    pub fn new(text: impl Into<String>) -> Self {
        Say(Node::with_text("Say", text))
    }
}

element!(
    /// `<Play>`: play an audio file, or DTMF tones with `digits`.
    Play {
        loop_ => "loop": u32,
        digits => "digits": str,
    }
);
impl Play {
    pub fn new(url: impl Into<String>) -> Self {
        Play(Node::with_text("Play", url))
    }
    /// `<Play digits="…"/>` with no URL.
    pub fn tones(digits: impl Into<String>) -> Self {
        Play(Node::new("Play")).digits(digits)
    }
}

element!(
    /// `<Pause>`: wait in silence.
    Pause { length => "length": u32 }
);
impl Pause {
    pub fn new() -> Self {
        Pause(Node::new("Pause"))
    }
}
impl Default for Pause {
    fn default() -> Self {
        Self::new()
    }
}

element!(
    /// `<Gather>`: collect digits or speech, prompting with nested Say/Play/Pause.
    Gather {
        action => "action": str,
        method => "method": Method,
        input => "input": [GatherInput],
        timeout => "timeout": u32,
        finish_on_key => "finishOnKey": str,
        num_digits => "numDigits": u32,
        language => "language": str,
        speech_timeout => "speechTimeout": str,
        speech_model => "speechModel": str,
        hints => "hints": str,
        action_on_empty_result => "actionOnEmptyResult": bool,
        partial_result_callback => "partialResultCallback": str,
        profanity_filter => "profanityFilter": bool,
        enhanced => "enhanced": bool,
    }
);
impl Gather {
    pub fn new() -> Self {
        Gather(Node::new("Gather"))
    }
    pub fn say(mut self, v: Say) -> Self {
        self.0.push(v.into());
        self
    }
    pub fn play(mut self, v: Play) -> Self {
        self.0.push(v.into());
        self
    }
    pub fn pause(mut self, v: Pause) -> Self {
        self.0.push(v.into());
        self
    }
}
impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

element!(
    /// `<Dial>`: connect the caller to other parties.
    Dial {
        action => "action": str,
        method => "method": Method,
        timeout => "timeout": u32,
        caller_id => "callerId": str,
        record => "record": DialRecord,
        hangup_on_star => "hangupOnStar": bool,
        time_limit => "timeLimit": u32,
        answer_on_bridge => "answerOnBridge": bool,
        ring_tone => "ringTone": str,
        trim => "trim": Trim,
        recording_status_callback => "recordingStatusCallback": str,
        recording_status_callback_method => "recordingStatusCallbackMethod": Method,
        recording_status_callback_event => "recordingStatusCallbackEvent": [RecordingEvent],
    }
);
impl Dial {
    /// `<Dial>` with nouns added by the methods below.
    pub fn new() -> Self {
        Dial(Node::new("Dial"))
    }
    /// `<Dial>+15551234567</Dial>`: a single number as text.
    pub fn to(number: impl Into<String>) -> Self {
        Dial(Node::with_text("Dial", number))
    }
    pub fn number(mut self, v: Number) -> Self {
        self.0.push(v.into());
        self
    }
    pub fn conference(mut self, v: Conference) -> Self {
        self.0.push(v.into());
        self
    }
    pub fn client(mut self, v: Client) -> Self {
        self.0.push(v.into());
        self
    }
    pub fn sip(mut self, v: Sip) -> Self {
        self.0.push(v.into());
        self
    }
    pub fn queue(mut self, v: Queue) -> Self {
        self.0.push(v.into());
        self
    }
}
impl Default for Dial {
    fn default() -> Self {
        Self::new()
    }
}

element!(
    /// `<Number>` inside `<Dial>`.
    Number {
        send_digits => "sendDigits": str,
        url => "url": str,
        method => "method": Method,
        status_callback => "statusCallback": str,
        status_callback_method => "statusCallbackMethod": Method,
        status_callback_event => "statusCallbackEvent": [CallEvent],
    }
);
impl Number {
    pub fn new(number: impl Into<String>) -> Self {
        Number(Node::with_text("Number", number))
    }
}

element!(
    /// `<Conference>` inside `<Dial>`.
    Conference {
        muted => "muted": bool,
        beep => "beep": Beep,
        start_conference_on_enter => "startConferenceOnEnter": bool,
        end_conference_on_exit => "endConferenceOnExit": bool,
        wait_url => "waitUrl": str,
        wait_method => "waitMethod": Method,
        max_participants => "maxParticipants": u32,
        record => "record": ConferenceRecord,
        trim => "trim": Trim,
        region => "region": str,
        participant_label => "participantLabel": str,
        status_callback => "statusCallback": str,
        status_callback_method => "statusCallbackMethod": Method,
        status_callback_event => "statusCallbackEvent": [ConferenceEvent],
        recording_status_callback => "recordingStatusCallback": str,
        recording_status_callback_method => "recordingStatusCallbackMethod": Method,
        recording_status_callback_event => "recordingStatusCallbackEvent": [RecordingEvent],
    }
);
impl Conference {
    pub fn new(name: impl Into<String>) -> Self {
        Conference(Node::with_text("Conference", name))
    }
}

element!(
    /// `<Client>` inside `<Dial>`.
    Client {
        url => "url": str,
        method => "method": Method,
        status_callback => "statusCallback": str,
        status_callback_event => "statusCallbackEvent": [CallEvent],
    }
);
impl Client {
    pub fn new(identity: impl Into<String>) -> Self {
        Client(Node::with_text("Client", identity))
    }
}

element!(
    /// `<Sip>` inside `<Dial>`.
    Sip {
        username => "username": str,
        password => "password": str,
        url => "url": str,
        status_callback => "statusCallback": str,
        status_callback_event => "statusCallbackEvent": [CallEvent],
    }
);
impl Sip {
    pub fn new(uri: impl Into<String>) -> Self {
        Sip(Node::with_text("Sip", uri))
    }
}

element!(
    /// `<Queue>` inside `<Dial>`.
    Queue { url => "url": str, method => "method": Method }
);
impl Queue {
    pub fn new(name: impl Into<String>) -> Self {
        Queue(Node::with_text("Queue", name))
    }
}

element!(
    /// `<Record>`: record the caller.
    Record {
        action => "action": str,
        method => "method": Method,
        timeout => "timeout": u32,
        finish_on_key => "finishOnKey": str,
        max_length => "maxLength": u32,
        play_beep => "playBeep": bool,
        trim => "trim": Trim,
        recording_status_callback => "recordingStatusCallback": str,
        recording_status_callback_method => "recordingStatusCallbackMethod": Method,
        recording_status_callback_event => "recordingStatusCallbackEvent": [RecordingEvent],
        transcribe => "transcribe": bool,
        transcribe_callback => "transcribeCallback": str,
    }
);
impl Record {
    pub fn new() -> Self {
        Record(Node::new("Record"))
    }
}
impl Default for Record {
    fn default() -> Self {
        Self::new()
    }
}

element!(
    /// `<Redirect>`: continue with the TwiML at another URL.
    Redirect { method => "method": Method }
);
impl Redirect {
    pub fn new(url: impl Into<String>) -> Self {
        Redirect(Node::with_text("Redirect", url))
    }
}

element!(
    /// `<Reject>`: refuse the call without answering it (the caller is not charged).
    Reject { reason => "reason": RejectReason }
);
impl Reject {
    pub fn new() -> Self {
        Reject(Node::new("Reject"))
    }
}
impl Default for Reject {
    fn default() -> Self {
        Self::new()
    }
}

element!(
    /// `<Enqueue>`: put the caller in a queue.
    Enqueue {
        action => "action": str,
        method => "method": Method,
        wait_url => "waitUrl": str,
        wait_url_method => "waitUrlMethod": Method,
        workflow_sid => "workflowSid": str,
    }
);
impl Enqueue {
    pub fn new(name: impl Into<String>) -> Self {
        Enqueue(Node::with_text("Enqueue", name))
    }
}

element!(
    /// `<Message>`: send a message (in reply to an inbound one, or during a call).
    Message {
        to => "to": str,
        from => "from": str,
        action => "action": str,
        method => "method": Method,
        status_callback => "statusCallback": str,
    }
);
impl Message {
    /// `<Message>text</Message>`.
    pub fn new(body: impl Into<String>) -> Self {
        Message(Node::with_text("Message", body))
    }
    /// `<Message>` with `<Body>` and `<Media>` nouns added by the methods below.
    pub fn empty() -> Self {
        Message(Node::new("Message"))
    }
    pub fn body(mut self, text: impl Into<String>) -> Self {
        self.0.push(Node::with_text("Body", text));
        self
    }
    pub fn media(mut self, url: impl Into<String>) -> Self {
        self.0.push(Node::with_text("Media", url));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_strings() {
        let r = Response::new().say(
            Say::new("Hello Monkey")
                .voice("man")
                .language("fr")
                .loop_(3),
        );
        assert_eq!(
            r.to_string(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say language="fr" loop="3" voice="man">Hello Monkey</Say></Response>"#
        );

        let r = Response::new().dial(
            Dial::new()
                .action("/handleDialCallStatus")
                .method(Method::Post)
                .caller_id("+15551112222")
                .record(DialRecord::RecordFromAnswer)
                .timeout(20)
                .number(Number::new("+15558675310")),
        );
        assert_eq!(
            r.to_string(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="/handleDialCallStatus" callerId="+15551112222" method="POST" record="record-from-answer" timeout="20"><Number>+15558675310</Number></Dial></Response>"#
        );

        let r = Response::new()
            .gather(
                Gather::new()
                    .input(&[GatherInput::Speech, GatherInput::Dtmf])
                    .action("/gather")
                    .method(Method::Post)
                    .num_digits(1)
                    .language("en-US")
                    .speech_timeout("auto")
                    .timeout(3)
                    .say(Say::new("Please press 1 or say sales for sales.")),
            )
            .say(Say::new("We didn't receive any input. Goodbye!"));
        assert_eq!(
            r.to_string(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/gather" input="speech dtmf" language="en-US" method="POST" numDigits="1" speechTimeout="auto" timeout="3"><Say>Please press 1 or say sales for sales.</Say></Gather><Say>We didn't receive any input. Goodbye!</Say></Response>"#
        );

        let r = Response::new().record(
            Record::new()
                .action("/handleRecording")
                .finish_on_key("*")
                .max_length(20)
                .method(Method::Get)
                .play_beep(true)
                .transcribe(true)
                .transcribe_callback("/handleTranscription"),
        );
        assert_eq!(
            r.to_string(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Record action="/handleRecording" finishOnKey="*" maxLength="20" method="GET" playBeep="true" transcribe="true" transcribeCallback="/handleTranscription" /></Response>"#
        );

        let r = Response::new().message(
            Message::empty()
                .body("Store Location: 123 Easy St.")
                .media("https://demo.twilio.com/owl.png"),
        );
        assert_eq!(
            r.to_string(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message><Body>Store Location: 123 Easy St.</Body><Media>https://demo.twilio.com/owl.png</Media></Message></Response>"#
        );
    }

    #[test]
    fn empty_elements_and_response() {
        assert_eq!(
            Response::new().to_string(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response />"#
        );
        assert_eq!(
            Response::new()
                .reject(Reject::new().reason(RejectReason::Busy))
                .hangup()
                .to_xml_fragment(),
            r#"<Response><Reject reason="busy" /><Hangup /></Response>"#
        );
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let r = Response::new()
            .say(Say::new("Tom & Jerry <3 \"quotes\"\u{1}"))
            .redirect(Redirect::new("/next?a=1&b=2"))
            .message(Message::new("x").to("a\"b<c>&d"));
        assert_eq!(
            r.to_xml_fragment(),
            r#"<Response><Say>Tom &amp; Jerry &lt;3 "quotes"</Say><Redirect>/next?a=1&amp;b=2</Redirect><Message to="a&quot;b&lt;c&gt;&amp;d">x</Message></Response>"#
        );
    }

    #[test]
    fn every_voice_verb_renders() {
        let r = Response::new()
            .play(Play::new("https://example.com/a.mp3").loop_(2))
            .play(Play::tones("ww1234"))
            .pause(Pause::new().length(2))
            .dial(Dial::to("+15558675310").hangup_on_star(true))
            .dial(
                Dial::new().conference(
                    Conference::new("Room 1")
                        .start_conference_on_enter(true)
                        .beep(Beep::OnEnter),
                ),
            )
            .dial(
                Dial::new()
                    .client(Client::new("alice"))
                    .sip(Sip::new("sip:bob@example.com")),
            )
            .enqueue(Enqueue::new("support").wait_url("/wait"))
            .leave();
        assert_eq!(
            r.to_xml_fragment(),
            concat!(
                r#"<Response><Play loop="2">https://example.com/a.mp3</Play><Play digits="ww1234" /><Pause length="2" />"#,
                r#"<Dial hangupOnStar="true">+15558675310</Dial><Dial><Conference beep="onEnter" startConferenceOnEnter="true">Room 1</Conference></Dial>"#,
                r#"<Dial><Client>alice</Client><Sip>sip:bob@example.com</Sip></Dial><Enqueue waitUrl="/wait">support</Enqueue><Leave /></Response>"#
            )
        );
    }
}
