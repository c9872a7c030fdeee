//! TwiML: a typed builder for the verbs and nouns Twilio executes, and a parser that reads any
//! TwiML document back into a plain element tree.
//!
//! Output follows the Python SDK byte for byte: an XML declaration, no whitespace, attributes
//! sorted by name, `<Verb />` for empty elements. Text and attribute values are escaped and
//! characters that XML 1.0 forbids are removed, so any text a user supplies is safe to embed.

mod parse;
mod verbs;
mod xml;

pub use parse::{parse, Element, ParseError};
pub use verbs::*;
pub use xml::{escape_attr, escape_text, strip_forbidden};

/// An attribute value, as written into the document.
pub trait AttrValue {
    fn to_attr(&self) -> String;
}

impl AttrValue for &str {
    fn to_attr(&self) -> String {
        (*self).to_string()
    }
}
impl AttrValue for String {
    fn to_attr(&self) -> String {
        self.clone()
    }
}
impl AttrValue for bool {
    fn to_attr(&self) -> String {
        if *self { "true" } else { "false" }.to_string()
    }
}
impl AttrValue for u32 {
    fn to_attr(&self) -> String {
        self.to_string()
    }
}
impl AttrValue for f64 {
    fn to_attr(&self) -> String {
        self.to_string()
    }
}
/// Multi-valued attributes (`input="dtmf speech"`, `statusCallbackEvent="initiated ringing"`).
impl<T: AttrValue> AttrValue for &[T] {
    fn to_attr(&self) -> String {
        self.iter()
            .map(AttrValue::to_attr)
            .collect::<Vec<_>>()
            .join(" ")
    }
}
impl<T: AttrValue, const N: usize> AttrValue for [T; N] {
    fn to_attr(&self) -> String {
        self.as_slice().to_attr()
    }
}

/// A node of the output document: a name, sorted attributes, optional text and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    name: &'static str,
    attrs: std::collections::BTreeMap<&'static str, String>,
    text: Option<String>,
    children: Vec<Node>,
}

impl Node {
    pub(crate) fn new(name: &'static str) -> Self {
        Node {
            name,
            attrs: Default::default(),
            text: None,
            children: Vec::new(),
        }
    }

    pub(crate) fn with_text(name: &'static str, text: impl Into<String>) -> Self {
        let mut n = Node::new(name);
        n.text = Some(text.into());
        n
    }

    pub(crate) fn set(&mut self, name: &'static str, value: String) {
        self.attrs.insert(name, value);
    }

    pub(crate) fn push(&mut self, child: Node) {
        self.children.push(child);
    }

    /// Attribute value by name, as it will be written.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            xml::push_escaped_attr(out, v);
            out.push('"');
        }
        let text = self.text.as_deref().unwrap_or("");
        if text.is_empty() && self.children.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        xml::push_escaped_text(out, text);
        for c in &self.children {
            c.write(out);
        }
        out.push_str("</");
        out.push_str(self.name);
        out.push('>');
    }
}

/// The declaration every document starts with.
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
