//! Switchboard: one self-hosted server between applications and Twilio.

pub mod cli;
pub mod signature_check;
pub mod sim_server;
