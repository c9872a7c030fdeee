//! The guard against SMS pumping, in front of both engines: a code goes only to an allowed
//! country, and only while the destination number, the client's address, the number's prefix
//! (its digits but the last four) and its country stay under their hourly counts and the tenant
//! under its daily spend. A blocked attempt is kept with its reason and sends nothing.

use super::store::{self, Attempt};
use super::Settings;
use crate::db::DbResult;
use crate::error::ApiError;
use crate::App;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Who asks for a code, and where it goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant_id: String,
    pub to: String,
    pub channel: String,
    pub client_ip: String,
    /// What sending it is estimated to cost, in millionths of a dollar.
    pub cost_micros: i64,
}

impl Target {
    /// The number without its last four digits: neighbouring numbers share it, and pumping
    /// sends to ranges of them.
    pub fn prefix(&self) -> String {
        let cut = self.to.len().saturating_sub(4).max(2);
        self.to[..cut].to_string()
    }

    /// The number's country (ISO 3166 alpha-2), `ZZ` when unknown.
    pub fn country(&self) -> String {
        country_of(&self.to)
    }
}

pub fn country_of(e164: &str) -> String {
    phonenumber::parse(None, e164)
        .ok()
        .and_then(|p| p.country().id())
        .map(|id| format!("{id:?}"))
        .unwrap_or_else(|| "ZZ".into())
}

/// Why an attempt was blocked, and what the client is told.
#[derive(Debug)]
pub struct Blocked {
    pub reason: &'static str,
    pub error: ApiError,
}

fn too_many(reason: &'static str, what: &str, free_at: Option<i64>, now: i64) -> Blocked {
    let secs = free_at
        .map(|t| ((t - now).max(1000) + 999) / 1000)
        .unwrap_or(60) as u64;
    Blocked {
        reason,
        error: ApiError::too_many_requests(
            "too_many_requests",
            format!("too many verification codes {what}; try again later"),
            secs,
        ),
    }
}

/// Checks an attempt against the tenant's limits, keeping it (sent or blocked) in one go
/// with the answer. Ok(id) means the code may go; the attempt is `id`, to mark refused if
/// sending fails after all ([`refused`]).
pub async fn admit(
    app: &App,
    s: &Settings,
    t: &Target,
    default_region: &str,
) -> DbResult<Result<String, Blocked>> {
    let now = app.clock().now_ms();
    let (prefix, country) = (t.prefix(), t.country());
    let verdict = judge(app, s, t, &prefix, &country, default_region, now).await?;
    let (outcome, reason) = match &verdict {
        Ok(()) => ("sent", None),
        Err(b) => ("blocked", Some(b.reason)),
    };
    let id = crate::ids::new_id("vat");
    store::insert_attempt(
        app.db().pool(),
        &Attempt {
            id: &id,
            tenant_id: &t.tenant_id,
            verification_id: None,
            to: &t.to,
            prefix: &prefix,
            country: &country,
            client_ip: &t.client_ip,
            channel: &t.channel,
            outcome,
            reason,
            cost_micros: if verdict.is_ok() { t.cost_micros } else { 0 },
            now,
        },
    )
    .await?;
    if let Err(b) = &verdict {
        tracing::warn!(
            tenant_id = %t.tenant_id,
            reason = b.reason,
            %prefix,
            %country,
            client_ip = %t.client_ip,
            "verification code blocked"
        );
        app.metrics().verification_blocked(b.reason);
    }
    Ok(verdict.map(|()| id))
}

/// An admitted attempt that did not go out after all (Twilio refused it, the recipient opted
/// out): it no longer counts, and says why.
pub async fn refused(app: &App, attempt_id: &str, reason: &str) -> DbResult<()> {
    store::attempt_refused(app.db(), attempt_id, reason).await
}

async fn judge(
    app: &App,
    s: &Settings,
    t: &Target,
    prefix: &str,
    country: &str,
    default_region: &str,
    now: i64,
) -> DbResult<Result<(), Blocked>> {
    let allowed = if s.allowed_countries.is_empty() {
        vec![default_region.to_uppercase()]
    } else {
        s.allowed_countries.clone()
    };
    if !allowed.iter().any(|c| c == country) {
        return Ok(Err(Blocked {
            reason: "country_not_allowed",
            error: ApiError::unprocessable(
                "country_not_allowed",
                format!(
                    "codes are not sent to {country} numbers (allowed: {})",
                    allowed.join(", ")
                ),
            ),
        }));
    }
    let l = &s.limits;
    let db = app.db();
    let windows: [(&'static str, &'static str, &str, i64, i64, &str); 4] = [
        (
            "to_number",
            "per_number",
            &t.to,
            HOUR,
            l.per_number_per_hour,
            "to this number",
        ),
        (
            "client_ip",
            "per_ip",
            &t.client_ip,
            HOUR,
            l.per_ip_per_hour,
            "from this address",
        ),
        (
            "prefix",
            "per_prefix",
            prefix,
            10 * MINUTE,
            l.per_prefix_per_10_minutes,
            "to numbers like this one",
        ),
        (
            "country",
            "per_country",
            country,
            HOUR,
            l.per_country_per_hour,
            "to this country",
        ),
    ];
    for (column, reason, value, window, max, what) in windows {
        let (n, oldest) = store::sent_since(db, &t.tenant_id, column, value, now - window).await?;
        if n >= max {
            return Ok(Err(too_many(reason, what, oldest.map(|o| o + window), now)));
        }
    }
    let cap = (l.daily_spend_usd * 1_000_000.0) as i64;
    let (spent, oldest) = store::spent_since(db, &t.tenant_id, now - DAY).await?;
    if spent + t.cost_micros > cap {
        return Ok(Err(too_many(
            "daily_spend",
            "today: the daily spend cap is reached",
            oldest.map(|o| o + DAY),
            now,
        )));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_countries() {
        let t = Target {
            tenant_id: "t".into(),
            to: "+14155550123".into(),
            channel: "sms".into(),
            client_ip: "1.2.3.4".into(),
            cost_micros: 0,
        };
        assert_eq!(t.prefix(), "+1415555");
        assert_eq!(t.country(), "US");
        assert_eq!(country_of("+442071838750"), "GB");
        assert_eq!(country_of("nonsense"), "ZZ");
    }
}
