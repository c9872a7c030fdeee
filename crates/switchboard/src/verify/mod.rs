//! Phone verification: one-time codes sent by SMS or read out in a call, checked once.
//!
//! Two engines behind one API (`/v1/verifications`): the built-in one, whose codes come from
//! a CSPRNG-seeded derivation under the tenant's key and go through the normal durable send
//! path, and Twilio Verify, whose answers are mapped to the same statuses and errors. Both sit
//! behind the same anti-pumping guard (`guard.rs`). Built-in codes are never stored: a
//! verification keeps a random salt (the code is derived from it under a key only the server
//! holds) and an HMAC of the code to check against in constant time; the texts and calls that
//! carry a code keep it masked, and it is put in only when Twilio is asked to send it.

pub mod api;
pub mod guard;
pub mod store;

use crate::App;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sends of one verification at most (the first and four more).
pub const MAX_SENDS: i64 = 5;
/// Wrong codes one verification takes; the next check is refused.
pub const MAX_CHECKS: i64 = 5;

/// Which engine sends and checks a tenant's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    #[default]
    Builtin,
    Twilio,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Builtin => "builtin",
            Engine::Twilio => "twilio",
        }
    }
}

/// Limits against SMS pumping: counted over sent codes, per destination, client address,
/// number prefix (the number without its last four digits) and country, and money per day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Codes sent to one number per hour.
    pub per_number_per_hour: i64,
    /// Codes requested from one client address per hour.
    pub per_ip_per_hour: i64,
    /// Codes sent to one prefix per 10 minutes: a burst to neighbouring numbers is the mark of
    /// pumping.
    pub per_prefix_per_10_minutes: i64,
    /// Codes sent to one country per hour.
    pub per_country_per_hour: i64,
    /// Estimated spend on codes per day, in US dollars.
    pub daily_spend_usd: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_number_per_hour: 10,
            per_ip_per_hour: 30,
            per_prefix_per_10_minutes: 10,
            per_country_per_hour: 500,
            daily_spend_usd: 20.0,
        }
    }
}

/// A tenant's verification settings (`GET`/`PUT /v1/verifications/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub engine: Engine,
    /// The Verify Service (`VA…`) the Twilio engine uses.
    pub twilio_service_sid: Option<String>,
    /// Digits of a built-in code, 4 to 10.
    pub code_length: u32,
    /// How long a code can be checked, 1 to 1440 minutes.
    pub expiry_minutes: u32,
    /// The name in the text ("Your {app} code is …"); the tenant's name when absent.
    pub app_name: Option<String>,
    /// Adds the `@domain #code` line that lets browsers (WebOTP) and Android fill the code in.
    pub web_otp_domain: Option<String>,
    /// Texts by locale, with `{app}` and `{code}`; they replace the built-in ones.
    pub templates: BTreeMap<String, String>,
    /// Countries (ISO 3166 alpha-2) codes may go to; the tenant's own region when empty.
    pub allowed_countries: Vec<String>,
    /// Ask Twilio's Lookup for the line type first, and refuse texts to landlines.
    pub lookup: bool,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: Engine::Builtin,
            twilio_service_sid: None,
            code_length: 6,
            expiry_minutes: 10,
            app_name: None,
            web_otp_domain: None,
            templates: BTreeMap::new(),
            allowed_countries: vec![],
            lookup: false,
            limits: Limits::default(),
        }
    }
}

impl Settings {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(4..=10).contains(&self.code_length) {
            return Some("code_length is 4 to 10".into());
        }
        if !(1..=1440).contains(&self.expiry_minutes) {
            return Some("expiry_minutes is 1 to 1440".into());
        }
        if self.engine == Engine::Twilio
            && !self
                .twilio_service_sid
                .as_deref()
                .is_some_and(|s| twilio::sid::is_sid(s, "VA"))
        {
            return Some("the twilio engine needs twilio_service_sid (VA…)".into());
        }
        if let Some(n) = &self.app_name {
            if n.trim().is_empty() || n.chars().count() > 30 {
                return Some("app_name has 1 to 30 characters".into());
            }
        }
        if let Some(d) = &self.web_otp_domain {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                return Some("web_otp_domain is a host name such as example.com".into());
            }
        }
        for (locale, t) in &self.templates {
            if !t.contains("{code}") || t.chars().count() > 300 || locale.len() > 10 {
                return Some(format!(
                    "the {locale:?} template must contain {{code}} (and be at most 300 characters)"
                ));
            }
        }
        if self
            .allowed_countries
            .iter()
            .any(|c| c.len() != 2 || !c.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Some("allowed_countries are ISO 3166 codes such as \"US\"".into());
        }
        let l = &self.limits;
        let counts = [
            l.per_number_per_hour,
            l.per_ip_per_hour,
            l.per_prefix_per_10_minutes,
            l.per_country_per_hour,
        ];
        if counts.iter().any(|n| *n < 1) || l.daily_spend_usd.is_nan() || l.daily_spend_usd < 0.0 {
            return Some("limits are positive numbers".into());
        }
        None
    }
}

/// The built-in texts, by language.
fn builtin_template(locale: &str) -> &'static str {
    match locale.split(['-', '_']).next().unwrap_or_default() {
        "es" => "Tu código de {app} es {code}",
        "fr" => "Votre code {app} est {code}",
        "pt" => "Seu código {app} é {code}",
        "de" => "Ihr {app}-Code lautet {code}",
        "it" => "Il tuo codice {app} è {code}",
        _ => "Your {app} code is {code}",
    }
}

/// The text that carries `code`, in the verification's language.
pub fn sms_text(s: &Settings, locale: &str, app: &str, code: &str) -> String {
    let t = s
        .templates
        .get(locale)
        .map(String::as_str)
        .unwrap_or_else(|| builtin_template(locale));
    let mut text = t.replace("{app}", app).replace("{code}", code);
    if let Some(d) = &s.web_otp_domain {
        text.push_str(&format!("\n\n@{d} #{code}"));
    }
    text
}

/// What a call says: the digits one by one, twice.
pub fn call_text(app: &str, code: &str) -> String {
    let digits: Vec<String> = code.chars().map(|c| c.to_string()).collect();
    let spoken = digits.join(", ");
    format!("Your {app} verification code is: {spoken}. Again, your code is: {spoken}.")
}

/// The key a tenant's codes are derived and hashed under.
fn tenant_key(app: &App, tenant_id: &str) -> String {
    app.config()
        .master_key
        .derive(&format!("verify:{tenant_id}"))
}

fn hmac(key: &str, data: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The code of a built-in verification: derived from its random salt under the tenant's key,
/// so that a re-send sends the same code without the code being stored.
pub fn code(app: &App, tenant_id: &str, verification_id: &str, salt: &str, len: u32) -> String {
    let h = hmac(
        &tenant_key(app, tenant_id),
        &format!("code:{verification_id}:{salt}"),
    );
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let m = 10u64.pow(len.clamp(4, 10));
    format!("{:0width$}", n % m, width = len as usize)
}

/// The HMAC a code is checked against.
pub fn code_hash(app: &App, tenant_id: &str, verification_id: &str, code: &str) -> String {
    hex::encode(hmac(
        &tenant_key(app, tenant_id),
        &format!("check:{verification_id}:{code}"),
    ))
}

/// Whether `given` is the code whose HMAC is `expected`, in constant time.
pub fn code_matches(
    app: &App,
    tenant_id: &str,
    verification_id: &str,
    given: &str,
    expected: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let h = code_hash(app, tenant_id, verification_id, given);
    h.len() == expected.len() && bool::from(h.as_bytes().ct_eq(expected.as_bytes()))
}

/// A fresh salt from the operating system's CSPRNG.
pub fn new_salt() -> String {
    use rand::Rng;
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// The code masked, as texts and calls keep it.
pub fn masked(len: u32) -> String {
    "*".repeat(len as usize)
}

/// What carries a verification's code by `channel` (`sms` or `call`), with the code put in;
/// None when the verification is no longer pending (the code must not go out).
pub async fn code_text(
    app: &App,
    tenant_id: &str,
    verification_id: &str,
    channel: &str,
) -> crate::db::DbResult<Option<String>> {
    let Some(v) = store::get(app.db(), tenant_id, verification_id).await? else {
        return Ok(None);
    };
    if v.status != "pending" || v.expires_at <= app.clock().now_ms() {
        return Ok(None);
    }
    let Some(salt) = v.salt.as_deref() else {
        return Ok(None);
    };
    let settings = store::settings(app.db(), tenant_id).await?;
    let code = code(app, tenant_id, &v.id, salt, v.code_length as u32);
    Ok(Some(match channel {
        "call" => call_text(&v.app_name, &code),
        _ => sms_text(&settings, &v.locale, &v.app_name, &code),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_the_code_in_the_language_asked() {
        let s = Settings::default();
        assert_eq!(
            sms_text(&s, "en", "Acme", "123456"),
            "Your Acme code is 123456"
        );
        assert_eq!(
            sms_text(&s, "es-MX", "Acme", "1234"),
            "Tu código de Acme es 1234"
        );
        let s = Settings {
            web_otp_domain: Some("acme.example".into()),
            ..Default::default()
        };
        assert_eq!(
            sms_text(&s, "en", "Acme", "987654"),
            "Your Acme code is 987654\n\n@acme.example #987654"
        );
        assert!(call_text("Acme", "1234").contains("1, 2, 3, 4. Again"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::default().problem().is_none());
        let bad = Settings {
            code_length: 3,
            ..Default::default()
        };
        assert!(bad.problem().is_some());
        let bad = Settings {
            engine: Engine::Twilio,
            ..Default::default()
        };
        assert!(bad.problem().is_some());
        let bad = Settings {
            templates: [("en".to_string(), "no code here".to_string())].into(),
            ..Default::default()
        };
        assert!(bad.problem().is_some());
    }
}
