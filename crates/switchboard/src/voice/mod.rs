//! Voice: call flows and, built on them, answering calls with TwiML.

pub mod calls;
pub mod flow;
pub mod flows;
pub mod outbound;
pub mod recordings;
pub mod render;
pub mod store;
pub mod webhooks;
