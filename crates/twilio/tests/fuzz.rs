//! Property-based fuzzing of what reaches the server from outside: webhook forms, their
//! signatures and TwiML documents. Nothing may panic, whatever the input. The number of cases
//! is proptest's (`PROPTEST_CASES`, 256 by default; CI runs more).

use proptest::prelude::*;
use twilio::webhook::{check_form, InboundMessage, MessageStatusCallback, VoiceWebhook};
use twilio::Form;

/// Names Twilio sends, and some it does not.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "MessageSid",
            "SmsSid",
            "SmsMessageSid",
            "AccountSid",
            "From",
            "To",
            "Body",
            "NumMedia",
            "NumSegments",
            "MediaUrl0",
            "MediaContentType0",
            "MessageStatus",
            "SmsStatus",
            "ErrorCode",
            "CallSid",
            "ParentCallSid",
            "CallStatus",
            "RecordingSid",
            "RecordingUrl",
            "Digits",
            "MessagingServiceSid",
            "OptOutType",
        ])
        .prop_map(str::to_string),
        any::<String>(),
        "[A-Za-z]{0,80}",
    ]
}

/// Values: ids of the right and wrong shape, numbers, and anything.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "(SM|MM|CA|RE|AC|MG)[0-9a-f]{32}",
        "(SM|AC)[0-9a-fA-Z]{0,40}",
        "[0-9]{0,25}",
        "-?[0-9]{1,30}",
        "\\+[0-9]{0,20}",
        any::<String>(),
        ".{0,20}\u{0}.{0,5}",
    ]
}

fn form() -> impl Strategy<Value = Form> {
    prop::collection::vec((name(), value()), 0..40).prop_map(Form)
}

/// Text made of TwiML's pieces, more likely than random text to reach deep into the parser.
fn twiml_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<Response>",
                "</Response>",
                "<Say>",
                "</Say>",
                "<Say voice=\"alice\" loop=\"2\">",
                "<Gather action=\"",
                "\" numDigits=\"1\">",
                "</Gather>",
                "<Dial>",
                "</Dial>",
                "<Number>",
                "</Number>",
                "<Record/>",
                "<Hangup/>",
                "<Redirect method=\"POST\">",
                "</Redirect>",
                "<Message to=\"+1\">",
                "</Message>",
                "<Body>",
                "</Body>",
                "<Media>",
                "&amp;",
                "&lt;",
                "&#x1F600;",
                "&#0;",
                "&bogus;",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "<",
                ">",
                "\"",
                "'",
                "/",
                "=",
                " ",
            ])
            .prop_map(str::to_string),
            any::<String>(),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn webhook_parsers_never_panic(f in form()) {
        let _ = check_form(&f);
        let _ = InboundMessage::from_form(&f);
        let _ = MessageStatusCallback::from_form(&f);
        let _ = VoiceWebhook::from_form(&f, true);
        let _ = VoiceWebhook::from_form(&f, false);
    }

    #[test]
    fn form_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let f = Form::parse(&bytes);
        let _ = check_form(&f);
        let _ = InboundMessage::from_form(&f);
        let _ = f.encode();
    }

    #[test]
    fn parsed_webhooks_hold_only_valid_ids(f in form()) {
        if let Ok(m) = InboundMessage::from_form(&f) {
            prop_assert!(twilio::sid::is_any_sid(&m.message_sid));
            prop_assert!(twilio::sid::is_sid(&m.account_sid, "AC"));
            let nul = m.body.contains(char::from(0));
            prop_assert!(!nul);
        }
        if let Ok(v) = VoiceWebhook::from_form(&f, false) {
            prop_assert!(twilio::sid::is_sid(&v.call_sid, "CA"));
        }
    }

    #[test]
    fn signature_checks_never_panic(
        token in any::<String>(),
        url in any::<String>(),
        f in form(),
        sig in proptest::option::of(any::<String>()),
    ) {
        let _ = twilio::signature::validate(&token, &url, f.pairs(), sig.as_deref());
    }

    #[test]
    fn only_the_signed_webhook_validates(
        token in "[0-9a-f]{32}",
        f in form(),
        extra in value(),
    ) {
        let url = "https://sb.example.com/twilio/messaging?mid=msg_1";
        let sig = twilio::signature::sign(&token, url, f.pairs());
        prop_assert!(twilio::signature::validate(&token, url, f.pairs(), Some(&sig)));
        let mut changed = f.clone();
        changed.push("Injected", extra);
        prop_assert!(!twilio::signature::validate(&token, url, changed.pairs(), Some(&sig)));
        prop_assert!(!twilio::signature::validate(&token, "https://sb.example.com/other", f.pairs(), Some(&sig)));
        prop_assert!(!twilio::signature::validate(&token, url, f.pairs(), None));
    }

    #[test]
    fn twiml_parser_never_panics(doc in twiml_like()) {
        let _ = twilio::twiml::parse(&doc);
    }

    #[test]
    fn twiml_parser_takes_any_text(doc in any::<String>()) {
        let _ = twilio::twiml::parse(&doc);
    }
}
