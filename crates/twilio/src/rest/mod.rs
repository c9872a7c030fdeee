//! A typed client for Twilio's REST API (the 2010-04-01 API for Messages, Media and phone
//! numbers). Requests are form-encoded with HTTP Basic auth; responses and errors are typed.
//!
//! The client never retries: a create that timed out may have been carried out, and only the
//! caller (which can reconcile against Twilio's list) may decide to send again.

mod calls;
mod error;
mod form;
mod lookups;
mod messages;
mod numbers;
mod verify;

pub use calls::*;
pub use error::{ApiError, Error};
pub use form::Form;
pub use messages::*;
pub use numbers::*;
pub use verify::*;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The API version every 2010 resource lives under.
pub const API_VERSION: &str = "2010-04-01";

/// Where each Twilio product is reached: a template such as `https://{product}.twilio.com`
/// (the default) or `http://127.0.0.1:8080/sim/{product}` for the twin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub const TWILIO: &'static str = "https://{product}.twilio.com";

    pub fn new(template: impl Into<String>) -> Result<Self, Error> {
        let t: String = template.into();
        let t = t.trim_end_matches('/').to_string();
        let probe = t.replace("{product}", "api");
        let parsed = url::Url::parse(&probe)
            .map_err(|e| Error::Config(format!("Twilio base URL {t:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "Twilio base URL {t:?} must be http or https"
            )));
        }
        Ok(BaseUrl(t))
    }

    pub fn twilio() -> Self {
        BaseUrl(Self::TWILIO.to_string())
    }

    /// The origin-and-prefix of one product, e.g. `https://api.twilio.com`.
    pub fn product(&self, product: &str) -> String {
        if self.0.contains("{product}") {
            self.0.replace("{product}", product)
        } else {
            format!("{}/{product}", self.0)
        }
    }

    /// A full URL for a path (starting with `/`) of a product.
    pub fn url(&self, product: &str, path: &str) -> String {
        format!("{}{}", self.product(product), path)
    }

    pub fn template(&self) -> &str {
        &self.0
    }

    /// Whether `url` lies under one of this base's products (so credentials may be sent to it).
    pub fn covers(&self, url: &str) -> bool {
        // Parsing normalises the host's case and a default port, as the template's own URLs are.
        let Ok(target) = url::Url::parse(url).map(String::from) else {
            return false;
        };
        let (prefix, suffix) = match self.0.split_once("{product}") {
            Some((p, s)) => (p.to_string(), s.to_string()),
            None => (format!("{}/", self.0), String::new()),
        };
        let Some(rest) = target.strip_prefix(&prefix) else {
            return false;
        };
        // The product is one label of letters (`api`, `verify`, …) followed by the suffix.
        let label_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        label_end > 0 && rest[label_end..].starts_with(&suffix) && {
            let after = &rest[label_end + suffix.len()..];
            after.is_empty() || after.starts_with('/') || after.starts_with('?')
        }
    }
}

impl Default for BaseUrl {
    fn default() -> Self {
        Self::twilio()
    }
}

/// Who the client authenticates as.
#[derive(Clone)]
pub enum Credentials {
    /// Account SID and auth token.
    AuthToken {
        account_sid: String,
        auth_token: String,
    },
    /// API key SID (`SK…`) and secret, acting on `account_sid`.
    ApiKey {
        account_sid: String,
        key_sid: String,
        secret: String,
    },
}

impl Credentials {
    pub fn account_sid(&self) -> &str {
        match self {
            Credentials::AuthToken { account_sid, .. }
            | Credentials::ApiKey { account_sid, .. } => account_sid,
        }
    }

    fn basic(&self) -> (&str, &str) {
        match self {
            Credentials::AuthToken {
                account_sid,
                auth_token,
            } => (account_sid, auth_token),
            Credentials::ApiKey {
                key_sid, secret, ..
            } => (key_sid, secret),
        }
    }
}

// Secrets never reach logs.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::AuthToken { account_sid, .. } => f
                .debug_struct("AuthToken")
                .field("account_sid", account_sid)
                .field("auth_token", &"<redacted>")
                .finish(),
            Credentials::ApiKey {
                account_sid,
                key_sid,
                ..
            } => f
                .debug_struct("ApiKey")
                .field("account_sid", account_sid)
                .field("key_sid", key_sid)
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Paging fields every 2010 list response carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PageMeta {
    pub first_page_uri: Option<String>,
    pub next_page_uri: Option<String>,
    pub previous_page_uri: Option<String>,
    pub uri: Option<String>,
    pub page: u32,
    pub page_size: u32,
    pub start: u32,
    pub end: u32,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub meta: PageMeta,
    pub items: Vec<T>,
}

/// A resource that comes in lists, and the key its list response holds it under.
pub trait Listed: DeserializeOwned {
    const LIST_KEY: &'static str;
}

impl<T: Listed> Page<T> {
    fn from_json(v: serde_json::Value) -> Result<Self, Error> {
        let serde_json::Value::Object(mut map) = v else {
            return Err(Error::Decode("list response is not an object".into()));
        };
        let items = map
            .remove(T::LIST_KEY)
            .ok_or_else(|| Error::Decode(format!("list response has no {:?}", T::LIST_KEY)))?;
        let items: Vec<T> =
            serde_json::from_value(items).map_err(|e| Error::Decode(e.to_string()))?;
        let meta: PageMeta = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Page { meta, items })
    }
}

/// Timeouts for every request the client makes.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

/// What one request to Twilio did, for whoever keeps metrics.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    pub method: &'a str,
    /// The resource, e.g. `Messages` or `Calls` (SIDs and `.json` left out).
    pub resource: &'a str,
    /// The HTTP status, or None when no answer came (timeout, connection refused).
    pub status: Option<u16>,
    pub elapsed: Duration,
}

/// Called after every request the client makes.
pub type Observer = std::sync::Arc<dyn Fn(&Exchange<'_>) + Send + Sync>;

/// The REST client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: BaseUrl,
    creds: Credentials,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

/// The resource a request URL names: its last path segment that is not a SID.
fn resource_of(url: &reqwest::Url) -> String {
    url.path_segments()
        .into_iter()
        .flatten()
        .map(|s| s.trim_end_matches(".json"))
        .rfind(|s| !s.is_empty() && !looks_like_sid(s))
        .unwrap_or("")
        .to_string()
}

fn looks_like_sid(s: &str) -> bool {
    s.len() == 34
        && s[..2].bytes().all(|b| b.is_ascii_uppercase())
        && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Client {
    pub fn new(creds: Credentials, base: BaseUrl) -> Result<Self, Error> {
        Self::with_timeouts(creds, base, Timeouts::default())
    }

    pub fn with_timeouts(creds: Credentials, base: BaseUrl, t: Timeouts) -> Result<Self, Error> {
        Ok(Client {
            http: Self::http_client(t)?,
            base,
            creds,
            observer: None,
        })
    }

    /// Tells `observer` about every request this client makes.
    pub fn observed(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A client sharing an existing HTTP client (its timeouts apply).
    pub fn with_http(http: reqwest::Client, creds: Credentials, base: BaseUrl) -> Self {
        Client {
            http,
            base,
            creds,
            observer: None,
        }
    }

    /// An HTTP client with these timeouts, to share among many [`Client`]s.
    pub fn http_client(t: Timeouts) -> Result<reqwest::Client, Error> {
        reqwest::Client::builder()
            .connect_timeout(t.connect)
            .timeout(t.total)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(e.to_string()))
    }

    pub fn account_sid(&self) -> &str {
        self.creds.account_sid()
    }

    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// `/2010-04-01/Accounts/{AccountSid}` + `rest`.
    fn account_path(&self, rest: &str) -> String {
        format!("/{API_VERSION}/Accounts/{}{rest}", self.account_sid())
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let (user, pass) = self.creds.basic();
        self.http
            .request(method, url)
            .basic_auth(user, Some(pass))
            .header("Accept", "application/json")
    }

    /// Sends a request, telling the observer how it went.
    async fn execute(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        let req = rb.build().map_err(Error::from_transport)?;
        let Some(observer) = &self.observer else {
            return self.http.execute(req).await.map_err(Error::from_transport);
        };
        let method = req.method().as_str().to_string();
        let resource = resource_of(req.url());
        let started = std::time::Instant::now();
        let result = self.http.execute(req).await;
        observer(&Exchange {
            method: &method,
            resource: &resource,
            status: result.as_ref().ok().map(|r| r.status().as_u16()),
            elapsed: started.elapsed(),
        });
        result.map_err(Error::from_transport)
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let resp = self.execute(rb).await?;
        let status = resp.status();
        let retry_after = error::retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(Error::from_transport)?;
        if !status.is_success() {
            return Err(Error::from_response(status.as_u16(), &bytes, retry_after));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    async fn send_empty(&self, rb: reqwest::RequestBuilder) -> Result<(), Error> {
        let resp = self.execute(rb).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = error::retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(Error::from_transport)?;
        Err(Error::from_response(status.as_u16(), &bytes, retry_after))
    }

    async fn get_page<T: Listed>(&self, url: &str) -> Result<Page<T>, Error> {
        let v: serde_json::Value = self
            .send_json(self.request(reqwest::Method::GET, url))
            .await?;
        Page::from_json(v)
    }

    /// The page after `page`, if there is one. Twilio's `next_page_uri` is relative to the
    /// product's host.
    pub async fn next_page<T: Listed>(
        &self,
        page: &Page<T>,
        product: &str,
    ) -> Result<Option<Page<T>>, Error> {
        match &page.meta.next_page_uri {
            Some(uri) if !uri.is_empty() => {
                let url = self.base.url(product, uri);
                self.get_page(&url).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Downloads a URL with the account's credentials, refusing URLs outside the configured
    /// Twilio base (credentials go to Twilio only). Redirects to other hosts are followed
    /// without the credentials. Returns the content type and the bytes.
    pub async fn download(
        &self,
        url: &str,
        max_bytes: usize,
    ) -> Result<(Option<String>, bytes::Bytes), Error> {
        if !self.base.covers(url) {
            return Err(Error::Config(format!(
                "refusing to send Twilio credentials to {url}: not under {}",
                self.base.template()
            )));
        }
        let resp = self
            .request(reqwest::Method::GET, url)
            .header("Accept", "*/*")
            .send()
            .await
            .map_err(Error::from_transport)?;
        let status = resp.status();
        let retry_after = error::retry_after(resp.headers());
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(len) = resp.content_length() {
            if len as usize > max_bytes {
                return Err(Error::TooLarge(max_bytes));
            }
        }
        let bytes = resp.bytes().await.map_err(Error::from_transport)?;
        if !status.is_success() {
            return Err(Error::from_response(status.as_u16(), &bytes, retry_after));
        }
        if bytes.len() > max_bytes {
            return Err(Error::TooLarge(max_bytes));
        }
        Ok((content_type, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = BaseUrl::twilio();
        assert_eq!(
            b.url("api", "/2010-04-01/x"),
            "https://api.twilio.com/2010-04-01/x"
        );
        assert!(b.covers("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"));
        assert!(!b.covers("https://api.twilio.com.evil.example/x"));
        assert!(!b.covers("https://evil.example/api.twilio.com/x"));
        assert!(!b.covers("http://api.twilio.com/x"));
        let t = BaseUrl::new("http://127.0.0.1:8080/sim/{product}/").unwrap();
        assert_eq!(
            t.url("api", "/2010-04-01"),
            "http://127.0.0.1:8080/sim/api/2010-04-01"
        );
        assert!(t.covers("http://127.0.0.1:8080/sim/api/2010-04-01/Accounts"));
        assert!(!t.covers("http://127.0.0.1:8081/sim/api/2010-04-01/Accounts"));
        assert!(!t.covers("http://127.0.0.1:8080/other/api/x"));
        let plain = BaseUrl::new("http://localhost:9000/sim").unwrap();
        assert_eq!(plain.url("api", "/x"), "http://localhost:9000/sim/api/x");
        assert!(plain.covers("http://localhost:9000/sim/api/x"));
        assert!(BaseUrl::new("not a url").is_err());
        assert!(BaseUrl::new("ftp://{product}.example").is_err());
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::AuthToken {
            account_sid: "AC1".into(),
            auth_token: "supersecret".into(),
        };
        assert!(!format!("{c:?}").contains("supersecret"));
        let c = Credentials::ApiKey {
            account_sid: "AC1".into(),
            key_sid: "SK1".into(),
            secret: "supersecret".into(),
        };
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
