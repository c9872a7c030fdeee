//! SQL for messaging, by role: messages with their events, statuses and sending
//! (`messages.rs`), contacts (`contacts.rs`), inbound media (`media.rs`), threads (`threads.rs`), templates (`templates.rs`), opt-outs and keywords
//! (`compliance.rs`). Every query that reads or changes a tenant's rows names the tenant.

mod compliance;
mod contacts;
mod media;
mod messages;
mod templates;
mod threads;

pub use crate::db::Tx;
pub use compliance::*;
pub use contacts::*;
pub use media::*;
pub use messages::*;
pub use templates::*;
pub use threads::*;
