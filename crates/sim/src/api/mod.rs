//! The Twilio-compatible REST API (`/2010-04-01/...`), with Twilio's authentication and errors.

pub(crate) mod messages;
pub(crate) mod numbers;

use crate::error::{SimError, SimResult};
use crate::state::{new_secret, new_sid, Account, ApiKey};
use crate::Sim;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};
use twilio::types::rfc2822;
use twilio::Form;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/Accounts/{file}", get(fetch_account))
        .route(
            "/Accounts/{account}/Messages.json",
            get(messages::list).post(messages::create),
        )
        .route(
            "/Accounts/{account}/Messages/{file}",
            get(messages::fetch)
                .post(messages::update)
                .delete(messages::delete),
        )
        .route(
            "/Accounts/{account}/Messages/{message}/Media.json",
            get(messages::list_media),
        )
        .route(
            "/Accounts/{account}/Messages/{message}/Media/{file}",
            get(messages::fetch_media).delete(messages::delete_media),
        )
        .route(
            "/Accounts/{account}/IncomingPhoneNumbers.json",
            get(numbers::list).post(numbers::create_handler),
        )
        .route(
            "/Accounts/{account}/IncomingPhoneNumbers/{file}",
            get(numbers::fetch)
                .post(numbers::update)
                .delete(numbers::delete),
        )
        .route(
            "/Accounts/{account}/Keys.json",
            get(list_keys).post(create_key),
        )
        .merge(crate::voice::api::router())
        .fallback(|uri: axum::http::Uri| async move { SimError::not_found(uri.path()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            SimError::new(405, 20004, format!("Method {method} not allowed"))
        })
}

/// `{sid}.json` → `sid`; anything else is not a resource of ours.
pub(crate) fn json_file(file: &str) -> SimResult<&str> {
    file.strip_suffix(".json")
        .ok_or_else(|| SimError::not_found(file))
}

/// Checks HTTP Basic credentials as Twilio does: the account SID with its auth token, or an
/// API key SID with its secret, acting on the account named in the path.
pub(crate) fn authenticate(
    sim: &Sim,
    headers: &HeaderMap,
    account_sid: &str,
) -> SimResult<Account> {
    let (user, pass) = basic_credentials(headers).ok_or_else(SimError::authenticate)?;
    let w = sim.world();
    let acting_for = if user.starts_with("SK") {
        let key = w.keys.get(&user).filter(|k| ct_eq(&k.secret, &pass));
        key.map(|k| k.account_sid.clone())
    } else {
        w.accounts
            .get(&user)
            .filter(|a| ct_eq(&a.auth_token, &pass))
            .map(|a| a.sid.clone())
    };
    match acting_for {
        Some(sid) if sid == account_sid => Ok(w.accounts[&sid].clone()),
        _ => Err(SimError::authenticate()),
    }
}

/// The account HTTP Basic credentials act for, for APIs without the account in the path
/// (Verify v2 and the other `{product}.twilio.com/v…` APIs).
pub(crate) fn authenticate_any(sim: &Sim, headers: &HeaderMap) -> SimResult<Account> {
    let (user, _) = basic_credentials(headers).ok_or_else(SimError::authenticate)?;
    let account = if user.starts_with("SK") {
        sim.world().keys.get(&user).map(|k| k.account_sid.clone())
    } else {
        Some(user)
    };
    authenticate(sim, headers, &account.ok_or_else(SimError::authenticate)?)
}

/// Test credentials reach only the resources Twilio allows them.
pub(crate) fn live_only(account: &Account) -> SimResult<()> {
    if account.test {
        Err(SimError::new(
            403,
            20008,
            "Resource not accessible with Test Account Credentials",
        ))
    } else {
        Ok(())
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// A form-encoded request body. Bodies over the limit or unreadable get Twilio's error shape.
pub(crate) struct FormBody(pub Form);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormBody {
    type Rejection = SimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, SimError> {
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        Ok(FormBody(Form::parse(&bytes)))
    }
}

/// Paging as the 2010 API does it: `Page`, `PageSize` (default 50, at most 1000) and an opaque
/// `PageToken` naming the last item already seen.
pub(crate) struct Paging {
    pub page: u32,
    pub page_size: u32,
    pub after: Option<String>,
}

impl Paging {
    pub fn from_query(q: &Form) -> SimResult<Self> {
        let num = |k: &str, default: u32| -> SimResult<u32> {
            match q.non_empty(k) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| {
                    SimError::bad_request(20001, format!("{k} must be a whole number, not {v:?}"))
                }),
            }
        };
        let page_size = num("PageSize", 50)?;
        if !(1..=1000).contains(&page_size) {
            return Err(SimError::bad_request(
                20001,
                "PageSize must be between 1 and 1000",
            ));
        }
        let after = q
            .non_empty("PageToken")
            .map(|t| {
                t.strip_prefix("PA")
                    .map(str::to_string)
                    .ok_or_else(|| SimError::bad_request(20001, format!("Invalid PageToken {t:?}")))
            })
            .transpose()?;
        Ok(Paging {
            page: num("Page", 0)?,
            page_size,
            after,
        })
    }

    /// Cuts one page out of `items` (already filtered and ordered) and writes the list
    /// response. `sid_of` names an item for the next page's token; `filters` are the query
    /// parameters to repeat in page URIs.
    pub fn respond<T>(
        &self,
        path: &str,
        key: &str,
        items: Vec<T>,
        sid_of: impl Fn(&T) -> String,
        view: impl Fn(&T) -> Value,
        filters: &Form,
    ) -> SimResult<Json<Value>> {
        let start_idx = match &self.after {
            None => (self.page as usize) * (self.page_size as usize),
            Some(sid) => items
                .iter()
                .position(|i| &sid_of(i) == sid)
                .map(|p| p + 1)
                .ok_or_else(|| {
                    SimError::bad_request(20001, "PageToken does not name an item of this list")
                })?,
        };
        let rest = items.len().saturating_sub(start_idx);
        let take = rest.min(self.page_size as usize);
        let page_items = &items[start_idx.min(items.len())..start_idx.min(items.len()) + take];
        let uri = |page: u32, token: Option<String>| {
            let mut q = filters.clone();
            q.push("PageSize", self.page_size.to_string());
            q.push("Page", page.to_string());
            if let Some(t) = token {
                q.push("PageToken", t);
            }
            format!("{path}?{}", q.encode())
        };
        let next = (rest > take).then(|| {
            let last = page_items.last().map(&sid_of).unwrap_or_default();
            uri(self.page + 1, Some(format!("PA{last}")))
        });
        let previous = (self.page > 0).then(|| uri(self.page - 1, None));
        let start = start_idx as u32;
        Ok(Json(json!({
            key: page_items.iter().map(view).collect::<Vec<_>>(),
            "end": start + take.saturating_sub(1) as u32,
            "first_page_uri": uri(0, None),
            "next_page_uri": next,
            "page": self.page,
            "page_size": self.page_size,
            "previous_page_uri": previous,
            "start": start,
            "uri": uri(self.page, self.after.as_ref().map(|a| format!("PA{a}"))),
        })))
    }
}

async fn fetch_account(
    State(sim): State<Sim>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let sid = json_file(&file)?;
    let a = authenticate(&sim, &headers, sid)?;
    live_only(&a)?;
    Ok(Json(json!({
        "sid": a.sid,
        "owner_account_sid": a.sid,
        "friendly_name": a.friendly_name,
        "status": "active",
        "type": if a.test { "Trial" } else { "Full" },
        "date_created": rfc2822(a.created),
        "date_updated": rfc2822(a.created),
        "uri": format!("/2010-04-01/Accounts/{}.json", a.sid),
    })))
}

fn key_view(k: &ApiKey, with_secret: bool) -> Value {
    let created = k.created.map(rfc2822);
    let mut v = json!({
        "sid": k.sid,
        "friendly_name": k.friendly_name,
        "date_created": created,
        "date_updated": created,
    });
    if with_secret {
        v["secret"] = json!(k.secret);
    }
    v
}

/// `POST /Keys.json`: a new API key; its secret is shown only here.
async fn create_key(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> SimResult<(StatusCode, Json<Value>)> {
    let a = authenticate(&sim, &headers, &account)?;
    live_only(&a)?;
    let key = ApiKey {
        sid: new_sid("SK"),
        secret: new_secret(),
        account_sid: a.sid.clone(),
        friendly_name: form.get("FriendlyName").unwrap_or_default().to_string(),
        created: Some(Utc::now()),
    };
    sim.world().keys.insert(key.sid.clone(), key.clone());
    Ok((StatusCode::CREATED, Json(key_view(&key, true))))
}

async fn list_keys(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> SimResult<Json<Value>> {
    let a = authenticate(&sim, &headers, &account)?;
    live_only(&a)?;
    let keys: Vec<Value> = sim
        .world()
        .keys
        .values()
        .filter(|k| k.account_sid == a.sid)
        .map(|k| key_view(k, false))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}
