//! Integration tests: the real server over HTTP, on SQLite and on PostgreSQL, with the twin
//! as Twilio.

mod adversarial;
mod browser;
mod core;
mod crash;
mod examples;
mod fuzz;
mod harness;
mod inbound;
mod openapi;
mod sending;
mod tenancy;
mod verify;
mod voice;
