//! `X-Twilio-Signature`: how Twilio signs the webhooks it sends, and how to check them.
//!
//! The signed string is the full URL exactly as configured followed by every form parameter,
//! sorted by name, as `name + value` with no separators. Values of a repeated name are
//! de-duplicated and sorted (as the Python, Node and PHP SDKs do). The signature is the
//! base64 of HMAC-SHA1 over that string keyed with the account's auth token.
//!
//! Receivers try several forms of the URL (as given, port stripped, default port added, and `'`
//! versus `%27` in the query) because proxies and load balancers disagree on them; every
//! official SDK accepts more than one form.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header Twilio puts its signature in.
pub const HEADER: &str = "X-Twilio-Signature";

/// The query parameter that carries the SHA-256 of a non-form (JSON) body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// The string Twilio signs for `url` and the decoded form parameters `params`.
pub fn signing_string<K: AsRef<str>, V: AsRef<str>>(url: &str, params: &[(K, V)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    // Sorting the pairs sorts by name, then by value, which is the order the SDKs produce
    // for repeated names; dedup drops exact repeats of a name and value.
    pairs.sort_unstable();
    pairs.dedup();
    let mut s = String::with_capacity(url.len() + pairs.len() * 24);
    s.push_str(url);
    for (k, v) in pairs {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// HMAC-SHA1 of `data` keyed by `token`, base64 encoded (28 characters).
pub fn hmac_base64(token: &str, data: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The signature Twilio would send for a form request to `url` with `params`.
pub fn sign<K: AsRef<str>, V: AsRef<str>>(token: &str, url: &str, params: &[(K, V)]) -> String {
    hmac_base64(token, &signing_string(url, params))
}

/// Lowercase hex SHA-256 of a raw body, as Twilio puts it in `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// For a JSON (non-form) request: the URL with `bodySHA256` appended and the signature over it.
pub fn sign_json(token: &str, url: &str, body: &[u8]) -> (String, String) {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}{BODY_SHA256_PARAM}={}", body_sha256(body));
    let sig = hmac_base64(token, &url);
    (url, sig)
}

/// One URL form that was tried, with what was signed and what the signature should have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub url: String,
    pub signed: String,
    pub expected: String,
    pub matched: bool,
}

/// The full outcome of a check, for diagnostics (`switchboard signature check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub valid: bool,
    pub attempts: Vec<Attempt>,
    /// For body checks: whether the URL's `bodySHA256` matched the body (None for form checks).
    pub body_hash_matches: Option<bool>,
}

/// What a request carried, as a receiver sees it.
pub enum Payload<'a, K, V> {
    /// `application/x-www-form-urlencoded` POST (or a GET, with no parameters here).
    Form(&'a [(K, V)]),
    /// Any other body: checked with `bodySHA256`.
    Body(&'a [u8]),
}

/// Checks a form request. `url` is the URL Twilio was configured to call.
pub fn validate<K: AsRef<str>, V: AsRef<str>>(
    token: &str,
    url: &str,
    params: &[(K, V)],
    signature: Option<&str>,
) -> bool {
    check(token, url, Payload::Form(params), signature).valid
}

/// Checks a request whose body is not a form (JSON): the URL must carry `bodySHA256`.
pub fn validate_body(token: &str, url: &str, body: &[u8], signature: Option<&str>) -> bool {
    check::<&str, &str>(token, url, Payload::Body(body), signature).valid
}

/// Checks a request and reports every URL form tried.
pub fn check<K: AsRef<str>, V: AsRef<str>>(
    token: &str,
    url: &str,
    payload: Payload<'_, K, V>,
    signature: Option<&str>,
) -> Report {
    let given = signature.unwrap_or("").trim();
    let empty: &[(&str, &str)] = &[];
    let mut body_hash_matches = None;
    if let Payload::Body(body) = payload {
        let want = body_sha256(body);
        let got = query_param(url, BODY_SHA256_PARAM).unwrap_or_default();
        body_hash_matches = Some(bool::from(
            got.to_ascii_lowercase().as_bytes().ct_eq(want.as_bytes()),
        ));
    }
    let mut attempts = Vec::new();
    let mut valid = false;
    for candidate in url_variants(url) {
        let signed = match &payload {
            Payload::Form(p) => signing_string(&candidate, p),
            Payload::Body(_) => signing_string(&candidate, empty),
        };
        let expected = hmac_base64(token, &signed);
        // Every candidate is compared (no early exit) in constant time per comparison.
        let matched = !given.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
        valid |= matched;
        attempts.push(Attempt {
            url: candidate,
            signed,
            expected,
            matched,
        });
    }
    if body_hash_matches == Some(false) {
        valid = false;
    }
    Report {
        valid,
        attempts,
        body_hash_matches,
    }
}

/// The forms of `url` a receiver should accept: as given, with its port removed, with the
/// scheme's default port added, and each of those with `'` and `%27` swapped in the query.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    if let Some(parts) = UrlParts::split(url) {
        let stripped = parts.with_port(None);
        let with_default = match (parts.port, default_port(parts.scheme)) {
            (None, Some(p)) => Some(parts.with_port(Some(p))),
            _ => None,
        };
        out.push(stripped);
        out.extend(with_default);
    }
    let mut quoted = Vec::new();
    for u in &out {
        if let Some(q) = u.find('?') {
            let (head, query) = u.split_at(q);
            if query.contains('\'') {
                quoted.push(format!("{head}{}", query.replace('\'', "%27")));
            }
            if query.contains("%27") {
                quoted.push(format!("{head}{}", query.replace("%27", "'")));
            }
        }
    }
    out.extend(quoted);
    let mut seen = std::collections::HashSet::new();
    out.retain(|u| seen.insert(u.clone()));
    out
}

fn default_port(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some("443")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("80")
    } else {
        None
    }
}

/// A URL cut into the pieces that matter here, without normalising anything
/// (case, escapes and slashes stay exactly as given).
struct UrlParts<'a> {
    scheme: &'a str,
    /// `scheme://` plus any `user:pass@`.
    prefix: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    /// Path, query and fragment.
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let scheme_end = url.find("://")?;
        let scheme = &url[..scheme_end];
        let after = scheme_end + 3;
        let auth_end = url[after..]
            .find(['/', '?', '#'])
            .map(|i| after + i)
            .unwrap_or(url.len());
        let authority = &url[after..auth_end];
        let host_start = authority.rfind('@').map(|i| after + i + 1).unwrap_or(after);
        let hostport = &url[host_start..auth_end];
        // The port follows the last ':' unless that colon sits inside an IPv6 literal.
        let (host, port) = match hostport.rfind(':') {
            Some(i) if !hostport[i..].contains(']') => {
                let port = &hostport[i + 1..];
                if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (&hostport[..i], Some(port))
            }
            _ => (hostport, None),
        };
        Some(UrlParts {
            scheme,
            prefix: &url[..host_start],
            host,
            port,
            rest: &url[auth_end..],
        })
    }

    fn with_port(&self, port: Option<&str>) -> String {
        match port {
            Some(p) => format!("{}{}:{}{}", self.prefix, self.host, p, self.rest),
            None => format!("{}{}{}", self.prefix, self.host, self.rest),
        }
    }
}

/// The raw (still escaped) value of a query parameter.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
    }

    // Independent computation of the reference vector from the algorithm itself: the
    // concatenation is spelled out by hand and HMAC-SHA1 computed via the library.
    #[test]
    fn signing_string_concatenates_sorted_pairs() {
        let s = signing_string(URL, &params());
        assert_eq!(
            s,
            "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212"
        );
        let sig = sign(TOKEN, URL, &params());
        assert_eq!(sig.len(), 28);
        assert!(sig.ends_with('='));
        assert_eq!(sig, hmac_base64(TOKEN, &s));
    }

    #[test]
    fn hmac_matches_rfc2202_vector() {
        // RFC 2202 test case 2 for HMAC-SHA1: key "Jefe", data "what do ya want for nothing?".
        let b64 = hmac_base64("Jefe", "what do ya want for nothing?");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(hex::encode(raw), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn order_of_params_on_the_wire_does_not_matter() {
        let mut p = params();
        p.reverse();
        assert_eq!(sign(TOKEN, URL, &p), sign(TOKEN, URL, &params()));
    }

    #[test]
    fn sort_is_ordinal_uppercase_first_and_prefix_first() {
        let s = signing_string(
            "u",
            &[
                ("callSid", "3"),
                ("CallSid", "2"),
                ("CALLSID", "1"),
                ("ReasonConferenceEnded", "b"),
                ("Reason", "a"),
            ],
        );
        assert_eq!(s, "uCALLSID1CallSid2ReasonaReasonConferenceEndedbcallSid3");
        // Signed in the wrong order (prefix last) must not validate.
        let wrong = hmac_base64(TOKEN, "uReasonConferenceEndedbReasona");
        assert!(!validate(
            TOKEN,
            "u",
            &[("Reason", "a"), ("ReasonConferenceEnded", "b")],
            Some(&wrong)
        ));
    }

    #[test]
    fn repeated_keys_are_deduplicated_and_sorted() {
        let s = signing_string(
            "u",
            &[("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")],
        );
        assert_eq!(s, "uDigits1234Digits5678");
    }

    #[test]
    fn empty_values_still_count() {
        let s = signing_string("u", &[("Digits", ""), ("A", "1")]);
        assert_eq!(s, "uA1Digits");
        let sig = sign(TOKEN, "u", &[("Digits", ""), ("A", "1")]);
        assert!(validate(
            TOKEN,
            "u",
            &[("A", "1"), ("Digits", "")],
            Some(&sig)
        ));
        assert!(!validate(TOKEN, "u", &[("A", "1")], Some(&sig)));
    }

    #[test]
    fn valid_signature_validates_and_tampering_fails() {
        let sig = sign(TOKEN, URL, &params());
        assert!(validate(TOKEN, URL, &params(), Some(&sig)));
        let mut p = params();
        p[2].1 = "9999";
        assert!(!validate(TOKEN, URL, &p, Some(&sig)));
        assert!(!validate("other", URL, &params(), Some(&sig)));
        assert!(!validate(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params(),
            Some(&sig)
        ));
    }

    #[test]
    fn missing_or_empty_header_is_invalid() {
        assert!(!validate(TOKEN, URL, &params(), None));
        assert!(!validate(TOKEN, URL, &params(), Some("")));
        assert!(!validate(TOKEN, URL, &params(), Some("   ")));
        let empty: &[(&str, &str)] = &[];
        assert!(!validate(TOKEN, "u", empty, None));
    }

    #[test]
    fn signature_without_port_validates_url_with_custom_port() {
        for scheme in ["https", "http"] {
            let plain = format!("{scheme}://mycompany.com/myapp.php?foo=1&bar=2");
            let ported = format!("{scheme}://mycompany.com:1234/myapp.php?foo=1&bar=2");
            let sig = sign(TOKEN, &plain, &params());
            assert!(validate(TOKEN, &ported, &params(), Some(&sig)), "{scheme}");
        }
    }

    #[test]
    fn default_port_and_no_port_are_interchangeable() {
        let sig = sign(
            TOKEN,
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params(),
        );
        assert!(validate(TOKEN, URL, &params(), Some(&sig)));
        let sig = sign(TOKEN, URL, &params());
        assert!(validate(
            TOKEN,
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params(),
            Some(&sig)
        ));
        let sig = sign(TOKEN, "http://mycompany.com:80/myapp.php", &params());
        assert!(validate(
            TOKEN,
            "http://mycompany.com/myapp.php",
            &params(),
            Some(&sig)
        ));
    }

    #[test]
    fn custom_port_is_kept_when_signed_with_it() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1";
        let sig = sign(TOKEN, url, &params());
        assert!(validate(TOKEN, url, &params(), Some(&sig)));
        // ...but the same signature does not fit another custom port.
        assert!(!validate(
            TOKEN,
            "http://mycompany.com:5678/myapp.php?foo=1",
            &params(),
            Some(&sig)
        ));
    }

    #[test]
    fn userinfo_stays_and_port_goes_after_host() {
        let url = "https://user:pass@mycompany.com/myapp.php";
        let variants = url_variants(url);
        assert!(variants.contains(&"https://user:pass@mycompany.com:443/myapp.php".to_string()));
        let sig = sign(
            TOKEN,
            "https://user:pass@mycompany.com:443/myapp.php",
            &params(),
        );
        assert!(validate(TOKEN, url, &params(), Some(&sig)));
        let sig = sign(TOKEN, "https://user@mycompany.com/myapp.php", &params());
        assert!(validate(
            TOKEN,
            "https://user@mycompany.com:8443/myapp.php",
            &params(),
            Some(&sig)
        ));
        // Without the userinfo the string differs.
        let sig = sign(TOKEN, "https://mycompany.com/myapp.php", &params());
        assert!(!validate(TOKEN, url, &params(), Some(&sig)));
    }

    #[test]
    fn url_is_not_normalised() {
        // Host case, percent-escapes, raw UTF-8 and a double slash all stay as given.
        let url = "https://MyCompany.com//myapp.php?name=caf%C3%A9&city=Zürich";
        let sig = sign(TOKEN, url, &params());
        assert!(validate(TOKEN, url, &params(), Some(&sig)));
        assert!(!validate(
            TOKEN,
            "https://mycompany.com//myapp.php?name=caf%C3%A9&city=Zürich",
            &params(),
            Some(&sig)
        ));
        assert!(!validate(
            TOKEN,
            "https://MyCompany.com/myapp.php?name=caf%C3%A9&city=Zürich",
            &params(),
            Some(&sig)
        ));
        assert!(!validate(
            TOKEN,
            "https://MyCompany.com//myapp.php?name=café&city=Zürich",
            &params(),
            Some(&sig)
        ));
    }

    #[test]
    fn quote_and_escaped_quote_are_both_accepted() {
        let sig = sign(TOKEN, "https://example.com/hook?name=O%27Brien", &params());
        assert!(validate(
            TOKEN,
            "https://example.com/hook?name=O'Brien",
            &params(),
            Some(&sig)
        ));
        let sig = sign(TOKEN, "https://example.com/hook?name=O'Brien", &params());
        assert!(validate(
            TOKEN,
            "https://example.com/hook?name=O%27Brien",
            &params(),
            Some(&sig)
        ));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        let v = url_variants("http://[::1]:8080/hook");
        assert!(v.contains(&"http://[::1]/hook".to_string()));
        let v = url_variants("http://[::1]/hook");
        assert!(v.contains(&"http://[::1]:80/hook".to_string()));
    }

    #[test]
    fn json_body_known_hashes() {
        assert_eq!(
            body_sha256(br#"{"property": "value", "boolean": true}"#),
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            body_sha256(b"{}"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn json_body_signature_round_trip() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let (url, sig) = sign_json(TOKEN, "https://mycompany.com/myapp.php?foo=1", body);
        assert!(url.ends_with(
            "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        ));
        assert!(validate_body(TOKEN, &url, body, Some(&sig)));
        // Another body with the same URL and signature fails on the hash.
        assert!(!validate_body(TOKEN, &url, b"{}", Some(&sig)));
        let report = check::<&str, &str>(TOKEN, &url, Payload::Body(b"{}"), Some(&sig));
        assert_eq!(report.body_hash_matches, Some(false));
        // A raw body with no bodySHA256 in the URL is invalid even if the URL signature matches.
        let bare = "https://mycompany.com/myapp.php";
        let sig = hmac_base64(TOKEN, bare);
        assert!(!validate_body(TOKEN, bare, body, Some(&sig)));
    }

    #[test]
    fn uppercase_body_hash_is_accepted() {
        let body = b"{}";
        let url = format!(
            "https://a.example/x?bodySHA256={}",
            body_sha256(body).to_uppercase()
        );
        let sig = hmac_base64(TOKEN, &url);
        assert!(validate_body(TOKEN, &url, body, Some(&sig)));
    }

    #[test]
    fn report_lists_attempts() {
        let r = check(TOKEN, URL, Payload::Form(&params()), Some("bogus"));
        assert!(!r.valid);
        assert!(r.attempts.len() >= 2);
        assert!(r.attempts.iter().all(|a| !a.matched));
        assert_eq!(r.attempts[0].url, URL);
    }
}
