//! Twilio's wire protocol, and nothing of any application built on it: request signatures,
//! TwiML, webhook payloads and a typed REST client with per-product base URLs.

pub mod errors;
pub mod keywords;
pub mod rest;
pub mod segments;
pub mod sid;
pub mod signature;
pub mod twiml;
pub mod types;
pub mod webhook;

pub use rest::{ApiError, BaseUrl, Client, Credentials, Error, Form};
