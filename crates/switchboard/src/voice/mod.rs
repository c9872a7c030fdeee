//! Voice: call flows and, built on them, answering calls with TwiML.

pub mod flow;
pub mod render;
