//! Lookup v2 (`lookups.twilio.com/v2/PhoneNumbers/{PhoneNumber}`), with the
//! `line_type_intelligence` field: every number is `mobile` unless the control API says
//! otherwise (`PUT /sim/control/lines/{number}`).

use crate::api::authenticate_any;
use crate::error::{SimError, SimResult};
use crate::Sim;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

impl Sim {
    /// Sets the line type Lookup reports for a number (`landline`, `fixedVoip`, …).
    pub fn set_line_type(&self, number: &str, kind: &str) {
        self.world()
            .line_types
            .insert(number.to_string(), kind.to_string());
    }
}

pub fn router() -> Router<Sim> {
    Router::new().route("/PhoneNumbers/{number}", get(fetch))
}

#[derive(Deserialize)]
struct Params {
    #[serde(rename = "Fields")]
    fields: Option<String>,
}

async fn fetch(
    State(sim): State<Sim>,
    Path(number): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    authenticate_any(&sim, &headers)?;
    let valid = number
        .strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if !valid && !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SimError::not_found(&format!("/v2/PhoneNumbers/{number}")));
    }
    let wants = |f: &str| {
        p.fields
            .as_deref()
            .is_some_and(|fs| fs.split(',').any(|x| x.trim() == f))
    };
    let line_type = sim
        .world()
        .line_types
        .get(&number)
        .cloned()
        .unwrap_or_else(|| "mobile".into());
    let us = number.starts_with("+1");
    let lti = wants("line_type_intelligence").then(|| {
        json!({
            "mobile_country_code": if us { "310" } else { "234" },
            "mobile_network_code": "456",
            "carrier_name": "Twin Wireless",
            "type": line_type,
            "error_code": null,
        })
    });
    Ok(Json(json!({
        "calling_country_code": if us { "1" } else { "44" },
        "country_code": if us { "US" } else { "GB" },
        "phone_number": number,
        "national_format": number,
        "valid": valid,
        "validation_errors": if valid { json!([]) } else { json!(["INVALID_BUT_POSSIBLE"]) },
        "caller_name": null,
        "sim_swap": null,
        "call_forwarding": null,
        "line_type_intelligence": lti,
        "line_status": null,
        "identity_match": null,
        "reassigned_number": null,
        "sms_pumping_risk": null,
        "phone_number_quality_score": null,
        "pre_fill": null,
        "url": format!("{}/lookups/v2/PhoneNumbers/{number}", sim.base_url()),
    })))
}
