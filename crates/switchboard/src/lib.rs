//! Switchboard: one self-hosted server between applications and Twilio.

pub mod app;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod egress;
pub mod error;
pub mod http;
pub mod ids;
pub mod messaging;
pub mod numbers;
pub mod phone;
pub mod queue;
pub mod routes;
pub mod server;
pub mod signature_check;
pub mod sim_server;
pub mod status;
pub mod storage;
pub mod telemetry;
pub mod tenants;
pub mod verify;
pub mod voice;
pub mod workers;

pub use app::App;
