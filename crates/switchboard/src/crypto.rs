//! Secrets at rest: tenants' Twilio auth tokens are sealed with XChaCha20-Poly1305 under the
//! master key; API keys are stored as SHA-256 hashes (they are long random strings, so a fast
//! hash is enough) and shown once.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// The key that seals secrets. Its Debug output never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, as 64 hex digits or base64")]
    BadKey,
    #[error("a sealed secret could not be opened: wrong master key or damaged data")]
    Open,
}

impl MasterKey {
    pub fn generate() -> Self {
        MasterKey(rand::rng().random())
    }

    /// Parses 64 hex digits or base64 of 32 bytes.
    pub fn parse(s: &str) -> Result<Self, CryptoError> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).map_err(|_| CryptoError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| B64.decode(s))
                .map_err(|_| CryptoError::BadKey)?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MasterKey(arr))
    }

    /// A secret derived for one purpose (e.g. signing requests to a tenant's app): stable,
    /// and revealing nothing of the master key.
    pub fn derive(&self, label: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(label.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `v1.` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &str) -> String {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1.{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let raw = sealed
            .strip_prefix("v1.")
            .and_then(|b| B64.decode(b).ok())
            .ok_or(CryptoError::Open)?;
        if raw.len() < 24 {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = raw.split_at(24);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let pt = cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Open)
    }
}

/// A new API key: `sk_` + 40 random hex digits.
pub fn new_api_key() -> String {
    let a: u128 = rand::rng().random();
    let b: u32 = rand::rng().random();
    format!("sk_{a:032x}{b:08x}")
}

pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let k = MasterKey::generate();
        let sealed = k.seal("auth-token-123");
        assert!(!sealed.contains("auth-token-123"));
        assert_ne!(sealed, k.seal("auth-token-123"), "nonces differ");
        assert_eq!(k.open(&sealed).unwrap(), "auth-token-123");
        assert_eq!(MasterKey::generate().open(&sealed), Err(CryptoError::Open));
        assert_eq!(k.open("v1.garbage"), Err(CryptoError::Open));
        let again = MasterKey::parse(&k.to_hex()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "auth-token-123");
        assert!(MasterKey::parse("short").is_err());
        assert!(!format!("{k:?}").contains(&k.to_hex()));
    }

    #[test]
    fn api_keys_hash_stably() {
        let key = new_api_key();
        assert!(key.starts_with("sk_") && key.len() == 43);
        assert_eq!(hash_api_key(&key), hash_api_key(&key));
        assert_ne!(hash_api_key(&key), hash_api_key(&new_api_key()));
    }
}
