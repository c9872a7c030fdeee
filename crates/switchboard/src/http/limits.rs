//! What one client may take: request rates per API key and per client IP (token buckets,
//! answered `429` with `Retry-After`), and who the client is behind trusted proxies.
//! Twilio's webhooks are not rate-limited: they are signature-checked, and Twilio does not
//! retry an inbound text that was refused.

use crate::error::ApiError;
use crate::App;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An IP network, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| "not an IP address".to_string())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("prefix length is 0 to {max}"))?,
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.bits as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.bits as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address
/// in `X-Forwarded-For` that is not one (addresses further left are the client's to forge).
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// Token buckets by key: `rate` per second, bursts of twice that.
pub struct Buckets {
    rate: f64,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Keys kept before idle ones are dropped.
const MAX_KEYS: usize = 100_000;

impl Buckets {
    pub fn new(rate: f64) -> Self {
        Buckets {
            rate,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn burst(&self) -> f64 {
        (self.rate * 2.0).max(1.0)
    }

    /// Takes a token for `key` at `now`; Err with the wait until one is free.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let burst = self.burst();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            // A full bucket is the same as no bucket: drop those.
            let rate = self.rate;
            map.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = map.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// The rate limits of one server.
pub struct RateLimits {
    pub per_key: Buckets,
    pub per_ip: Buckets,
}

impl RateLimits {
    pub fn new(l: &crate::config::Limits) -> Self {
        RateLimits {
            per_key: Buckets::new(l.rate_per_key),
            per_ip: Buckets::new(l.rate_per_ip),
        }
    }
}

fn limited(wait: Duration, what: &str) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::too_many_requests(
        "rate_limited",
        format!("too many requests from this {what}; try again in {secs} s"),
        secs,
    )
    .into_response()
}

/// Applies the per-IP and per-key limits to everything but Twilio's webhooks and probes.
pub async fn layer(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/twilio/") || path == "/healthz" || path == "/metrics" {
        return next.run(req).await;
    }
    let limits = app.rate_limits();
    let now = Instant::now();
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = client_ip(
            req.headers(),
            peer.ip(),
            &app.config().limits.trusted_proxies,
        );
        if let Err(wait) = limits.per_ip.take(&ip.to_string(), now) {
            app.metrics().rate_limited("ip");
            return limited(wait, "address");
        }
    }
    let key = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| crate::crypto::hash_api_key(k.trim()));
    if let Some(key) = key {
        if let Err(wait) = limits.per_key.take(&key, now) {
            app.metrics().rate_limited("api_key");
            return limited(wait, "API key");
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_their_addresses() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 2.2.2.2, 10.0.0.5".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            client_ip(&h, proxy, &trusted),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        let direct: IpAddr = "3.3.3.3".parse().unwrap();
        assert_eq!(client_ip(&h, direct, &trusted), direct);
        assert_eq!(client_ip(&h, proxy, &[]), proxy);
    }

    #[test]
    fn buckets_allow_bursts_then_pace() {
        let b = Buckets::new(10.0);
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(b.take("k", t0).is_ok());
        }
        let wait = b.take("k", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(b.take("other", t0).is_ok(), "keys are separate");
        assert!(b.take("k", t0 + Duration::from_millis(100)).is_ok());
        assert!(Buckets::new(0.0).take("k", t0).is_ok(), "0 is off");
    }
}
