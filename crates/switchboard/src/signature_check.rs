//! `switchboard signature check`: tells whether a signature fits a URL and parameters, and
//! shows exactly what was signed, to find proxy and URL mismatches.

use std::fmt::Write;
use twilio::signature::{self, Payload};

pub struct Input {
    pub url: String,
    pub token: String,
    pub signature: String,
    /// `KEY=VALUE` form parameters (the value may be empty; repeats allowed).
    pub params: Vec<(String, String)>,
    /// A raw (JSON) body, checked with `bodySHA256`.
    pub body: Option<Vec<u8>>,
}

/// Splits `KEY=VALUE` at the first `=`.
pub fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("-d takes KEY=VALUE, got {s:?}")),
    }
}

/// The verdict and the report to print.
pub fn check(input: &Input) -> (bool, String) {
    let payload = match &input.body {
        Some(b) => Payload::Body(b),
        None => Payload::Form(&input.params),
    };
    let report = signature::check(&input.token, &input.url, payload, Some(&input.signature));
    let mut out = String::new();
    let _ = writeln!(out, "{}", if report.valid { "valid" } else { "invalid" });
    if let Some(ok) = report.body_hash_matches {
        let _ = writeln!(
            out,
            "body SHA-256: {} ({})",
            signature::body_sha256(input.body.as_deref().unwrap_or_default()),
            if ok {
                "matches bodySHA256 in the URL"
            } else {
                "does NOT match bodySHA256 in the URL"
            }
        );
    }
    let _ = writeln!(out, "signature given: {}", input.signature);
    for a in &report.attempts {
        let _ = writeln!(out, "\nURL form: {}", a.url);
        let _ = writeln!(out, "  signed string: {}", a.signed);
        let _ = writeln!(
            out,
            "  expected signature: {}{}",
            a.expected,
            if a.matched { "  <- matches" } else { "" }
        );
    }
    if !report.valid {
        let _ = writeln!(
            out,
            "\nNo URL form matched. Check that --url is exactly the URL Twilio calls (scheme, host, \
             port, path and query as configured in Twilio; behind a proxy that is the public URL, \
             not the one your server sees), that every parameter Twilio posted is given with -d, \
             and that --token is the auth token of the account that owns the number."
        );
    }
    (report.valid, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_valid_and_invalid() {
        let params = vec![
            ("Body".to_string(), "hi".to_string()),
            ("Digits".into(), String::new()),
        ];
        let sig = signature::sign("tok", "https://example.com/hook", &params);
        let input = Input {
            url: "https://example.com:443/hook".into(),
            token: "tok".into(),
            signature: sig.clone(),
            params: params.clone(),
            body: None,
        };
        let (ok, out) = check(&input);
        assert!(ok);
        assert!(out.starts_with("valid\n"));
        assert!(out.contains("https://example.com/hookBodyhiDigits"));
        let (ok, out) = check(&Input {
            token: "other".into(),
            ..input
        });
        assert!(!ok);
        assert!(out.starts_with("invalid\n"));
        assert!(out.contains("No URL form matched"));
    }

    #[test]
    fn params_parse() {
        assert_eq!(parse_param("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(
            parse_param("Digits=").unwrap(),
            ("Digits".into(), String::new())
        );
        assert!(parse_param("nope").is_err());
        assert!(parse_param("=x").is_err());
    }
}
