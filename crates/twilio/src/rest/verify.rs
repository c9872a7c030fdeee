//! Verify v2 (`verify.twilio.com/v2`): services, verifications and checks. Requests are
//! form-encoded; responses are snake_case JSON.

use super::messages::seg;
use super::{Client, Error, Form};
use serde::{Deserialize, Serialize};

/// A Verify service (`VA…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyService {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub code_length: u32,
}

/// A verification (`VE…`), as created, fetched, updated or checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub sid: String,
    pub service_sid: String,
    pub account_sid: String,
    pub to: String,
    pub channel: String,
    /// pending, approved, canceled, max_attempts_reached, deleted, failed, expired.
    pub status: String,
    #[serde(default)]
    pub valid: bool,
    #[serde(default)]
    pub send_code_attempts: Vec<serde_json::Value>,
}

/// What a new verification asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateVerification {
    pub to: String,
    /// `sms` or `call`.
    pub channel: String,
    pub locale: Option<String>,
    pub custom_friendly_name: Option<String>,
}

/// Which verification a code is checked against.
#[derive(Debug, Clone)]
pub enum CheckTarget {
    To(String),
    Sid(String),
}

impl Client {
    fn verify_url(&self, path: &str) -> String {
        self.base.url("verify", &format!("/v2{path}"))
    }

    async fn verify_post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &Form,
    ) -> Result<T, Error> {
        let rb = self
            .request(reqwest::Method::POST, &self.verify_url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.encode());
        self.send_json(rb).await
    }

    pub async fn create_verify_service(
        &self,
        friendly_name: &str,
        code_length: Option<u32>,
    ) -> Result<VerifyService, Error> {
        let mut f = Form::new();
        f.push("FriendlyName", friendly_name)
            .push_opt("CodeLength", code_length);
        self.verify_post("/Services", &f).await
    }

    /// Starts a verification, or sends the pending one's code again.
    pub async fn create_verification(
        &self,
        service_sid: &str,
        req: &CreateVerification,
    ) -> Result<Verification, Error> {
        let mut f = Form::new();
        f.push("To", req.to.as_str())
            .push("Channel", req.channel.as_str())
            .push_opt("Locale", req.locale.as_deref())
            .push_opt("CustomFriendlyName", req.custom_friendly_name.as_deref());
        let path = format!("/Services/{}/Verifications", seg(service_sid));
        self.verify_post(&path, &f).await
    }

    pub async fn fetch_verification(
        &self,
        service_sid: &str,
        sid: &str,
    ) -> Result<Verification, Error> {
        let url = self.verify_url(&format!(
            "/Services/{}/Verifications/{}",
            seg(service_sid),
            seg(sid)
        ));
        self.send_json(self.request(reqwest::Method::GET, &url))
            .await
    }

    /// Sets a verification's status (`canceled` or `approved`).
    pub async fn update_verification(
        &self,
        service_sid: &str,
        sid: &str,
        status: &str,
    ) -> Result<Verification, Error> {
        let mut f = Form::new();
        f.push("Status", status);
        let path = format!("/Services/{}/Verifications/{}", seg(service_sid), seg(sid));
        self.verify_post(&path, &f).await
    }

    /// Checks a code: a wrong one is an answer (`pending`, `valid: false`), not an error.
    pub async fn check_verification(
        &self,
        service_sid: &str,
        target: &CheckTarget,
        code: &str,
    ) -> Result<Verification, Error> {
        let mut f = Form::new();
        f.push("Code", code);
        match target {
            CheckTarget::To(to) => f.push("To", to.as_str()),
            CheckTarget::Sid(sid) => f.push("VerificationSid", sid.as_str()),
        };
        let path = format!("/Services/{}/VerificationCheck", seg(service_sid));
        self.verify_post(&path, &f).await
    }
}
