//! Reading TwiML back: any well-formed document becomes a tree of [`Element`]s. Twilio accepts
//! indentation, comments, single-quoted attributes and documents without a declaration, so this
//! does too.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::collections::BTreeMap;

/// One parsed element: its name, attributes (unescaped), text (unescaped, the concatenation
/// of its direct text nodes) and child elements in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// Children with the given element name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("TwiML is not well-formed XML: {0}")]
    Xml(String),
    #[error("TwiML has no root element")]
    Empty,
    #[error("TwiML root element is <{0}>, expected <Response>")]
    NotResponse(String),
}

/// Parses a TwiML document and returns its `<Response>` element.
pub fn parse(doc: &str) -> Result<Element, ParseError> {
    let mut reader = Reader::from_str(doc);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let err = |e: &dyn std::fmt::Display| ParseError::Xml(e.to_string());
    loop {
        let ev = reader.read_event().map_err(|e| err(&e))?;
        match ev {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(ParseError::Xml("content after the root element".into()));
                }
                stack.push(element_from(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(ParseError::Xml("content after the root element".into()));
                }
                let el = element_from(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                // quick-xml checks that end tags match their start tags.
                let el = stack
                    .pop()
                    .ok_or_else(|| ParseError::Xml("unexpected end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| err(&e))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(ParseError::Xml("text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let text = std::str::from_utf8(&raw).map_err(|e| err(&e))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(text);
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions and doctypes carry no TwiML.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::Xml("unclosed element".into()));
    }
    let root = root.ok_or(ParseError::Empty)?;
    if root.name != "Response" {
        return Err(ParseError::NotResponse(root.name));
    }
    Ok(root)
}

fn element_from(start: &BytesStart<'_>) -> Result<Element, ParseError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = BTreeMap::new();
    for a in start.attributes() {
        let a = a.map_err(|e| ParseError::Xml(e.to_string()))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|e| ParseError::Xml(e.to_string()))?
            .into_owned();
        attrs.insert(key, value);
    }
    Ok(Element {
        name,
        attrs,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twiml::{Message, Response, Say};
    use proptest::prelude::*;

    #[test]
    fn reads_forms_twilio_accepts() {
        let doc = "<!-- hi -->\n<Response>\n  <Say voice='alice'>Hi &amp; bye</Say>\n  <Hangup/>\n</Response>";
        let r = parse(doc).unwrap();
        assert_eq!(r.children.len(), 2);
        assert_eq!(r.children[0].attr("voice"), Some("alice"));
        assert_eq!(r.children[0].text, "Hi & bye");
        assert_eq!(r.children[1].name, "Hangup");
    }

    #[test]
    fn rejects_broken_documents() {
        assert!(matches!(
            parse("<Response><Say>x</Response>"),
            Err(ParseError::Xml(_))
        ));
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("<Foo/>"), Err(ParseError::NotResponse("Foo".into())));
        assert!(parse("<Response/><Response/>").is_err());
        assert!(parse("<Response>").is_err());
    }

    /// Characters XML 1.0 allows in a document.
    fn xml_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just('\t'),
            Just('\n'),
            Just('\r'),
            Just('&'),
            Just('<'),
            Just('>'),
            Just('"'),
            Just('\''),
            Just(']'),
            proptest::char::range('\u{20}', '\u{7e}'),
            proptest::char::range('\u{a0}', '\u{d7ff}'),
            proptest::char::range('\u{e000}', '\u{fffd}'),
            proptest::char::range('\u{10000}', '\u{10ffff}'),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn say_and_body_text_round_trip(chars in proptest::collection::vec(xml_char(), 0..64)) {
            let text: String = chars.into_iter().collect();
            let doc = Response::new()
                .say(Say::new(text.clone()))
                .message(Message::empty().body(text.clone()))
                .message(Message::new(text.clone()).to(text.clone()))
                .to_string();
            let r = parse(&doc).unwrap();
            prop_assert_eq!(&r.children[0].text, &text);
            prop_assert_eq!(&r.children[1].children[0].text, &text);
            prop_assert_eq!(&r.children[2].text, &text);
            prop_assert_eq!(r.children[2].attr("to").unwrap(), text.as_str());
        }

        #[test]
        fn any_string_is_safe_and_loses_only_forbidden_chars(text in any::<String>()) {
            let doc = Response::new().say(Say::new(text.clone())).to_string();
            let r = parse(&doc).unwrap();
            prop_assert_eq!(r.children.len(), 1);
            prop_assert_eq!(&r.children[0].text, &crate::twiml::strip_forbidden(&text));
        }
    }
}
