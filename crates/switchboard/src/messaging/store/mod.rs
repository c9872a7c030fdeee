//! SQL for messaging, by role: messages with their events, statuses and sending
//! (`messages.rs`), contacts and threads (`threads.rs`), opt-outs and keywords
//! (`compliance.rs`). Every query that reads or changes a tenant's rows names the tenant.

mod compliance;
mod messages;
mod threads;

pub use crate::db::Tx;
pub use compliance::*;
pub use messages::*;
pub use threads::*;
