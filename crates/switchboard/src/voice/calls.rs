//! Calls as the API shows them (`/v1/calls`): one shape from create, fetch and list, with
//! the direction and status vocabulary shared with messages. The voice webhooks that move
//! calls are in `webhooks.rs`; their SQL in `store.rs`.

use super::store;
use crate::error::{ApiError, ApiResult};
use crate::http::{Auth, PathId, QueryParams};
use crate::App;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/calls", get(list).post(super::outbound::create))
        .route("/v1/calls/{id}", get(fetch))
}

pub use crate::status::{CallStatus, Direction};

/// The rank of a call status Twilio or a client names (see [`CallStatus::rank`]); None for
/// one we do not know.
pub fn call_rank(status: &str) -> Option<i64> {
    CallStatus::parse(status).map(CallStatus::rank)
}

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub status: CallStatus,
    pub twilio_sid: Option<String>,
    pub number_id: Option<String>,
    pub flow_id: Option<String>,
    pub path: Vec<String>,
    pub ringing_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration: Option<i64>,
    /// What the app attached when it placed the call (`{}` otherwise).
    pub metadata: Value,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// What `error_code` means.
    pub error_description: Option<&'static str>,
    /// Tries at placing an outbound call with Twilio.
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(skip)]
    pub created_ms: i64,
    /// The flow with the steps an app added during the call.
    #[serde(skip)]
    pub flow_override: Option<String>,
    /// Documents of the flow served so far (a replayed request names an earlier one).
    #[serde(skip)]
    pub turns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    phone: Option<String>,
    direction: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(app): State<App>,
    auth: Auth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => return Err(ApiError::bad_request("invalid_query", "limit is 1 to 500")),
    };
    let phone = q
        .phone
        .as_deref()
        .map(|p| {
            crate::phone::E164::parse(p, &auth.tenant.default_region)
                .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))
        })
        .transpose()?;
    if let Some(d) = &q.direction {
        if !["inbound", "outbound-api", "outbound-dial", "outbound"].contains(&d.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "direction is inbound or outbound",
            ));
        }
    }
    if let Some(s) = &q.status {
        if call_rank(s).is_none() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown status {s:?}"),
            ));
        }
    }
    let time = |name: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("{name} is an RFC 3339 time"),
                        )
                    })
            })
            .transpose()
    };
    let (since, until) = (time("since", &q.since)?, time("until", &q.until)?);
    let before = q
        .cursor
        .as_deref()
        .map(crate::messaging::api::decode_cursor)
        .transpose()?;
    let direction = q
        .direction
        .as_deref()
        .map(|d| if d == "outbound" { "outbound%" } else { d });
    let filter = store::Filter {
        phone: phone.map(|p| p.to_string()),
        direction: direction.map(str::to_string),
        status: q.status.clone(),
        since_ms: since,
        until_ms: until,
        before,
        limit: limit + 1,
    };
    let mut data = store::list(app.db(), &auth.tenant.id, &filter).await?;
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next = if more {
        data.last()
            .map(|c| crate::messaging::api::encode_cursor(c.created_ms, &c.id))
    } else {
        None
    };
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}

async fn fetch(State(app): State<App>, auth: Auth, PathId(id): PathId) -> ApiResult<Json<Value>> {
    let mut c = store::find(app.db(), &auth.tenant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    c.events = Some(store::events(app.db(), &auth.tenant.id, &c.id).await?);
    let (recordings, voicemail) =
        super::recordings::for_call(app.db(), &auth.tenant.id, &c.id).await?;
    let mut v = serde_json::to_value(&c).unwrap_or_default();
    v["recordings"] = json!(recordings);
    v["voicemail"] = json!(voicemail);
    Ok(Json(v))
}
