//! Refresh tokens: opaque 256-bit values, and the keys that hash them for
//! storage and derive their successors. What a presented token gets
//! (rotation, grace replay, reuse) is the store's rule: `store::rules`.
//!
//! Successors are derived, not drawn: successor = HMAC(k_derive, parent).
//! So a racing duplicate inside the grace window can be answered with the
//! very successor the first call issued, without storing any token.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use rand_core::RngCore as _;
use sha2::Sha256;

const TOKEN_BYTES: usize = 32;

/// A refresh token as the cookie carries it; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken([u8; TOKEN_BYTES]);

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Anything that isn't exactly 32 base64url bytes is not a token.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

/// Two keys derived from `REFRESH_TOKEN_SECRET` with distinct labels: with a
/// single key, a token's stored hash would be its successor in plaintext.
#[derive(Clone)]
pub struct RefreshKeys {
    hash_key: [u8; 32],
    derive_key: [u8; 32],
}

impl RefreshKeys {
    pub fn new(secret: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"silent-refresh/refresh-token"), secret);
        let mut hash_key = [0u8; 32];
        let mut derive_key = [0u8; 32];
        hkdf.expand(b"hash at rest v1", &mut hash_key)
            .expect("32 bytes is a valid HKDF length");
        hkdf.expand(b"derive successor v1", &mut derive_key)
            .expect("32 bytes is a valid HKDF length");
        Self {
            hash_key,
            derive_key,
        }
    }

    /// What the database stores and looks tokens up by.
    pub fn hash(&self, token: &RefreshToken) -> Vec<u8> {
        mac(&self.hash_key, &token.0).to_vec()
    }

    pub fn successor(&self, parent: &RefreshToken) -> RefreshToken {
        RefreshToken(mac(&self.derive_key, &parent.0))
    }
}

fn mac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_malformed_text() {
        let token = RefreshToken::generate();
        let text = token.encode();
        assert_eq!(text.len(), 43);
        assert_eq!(RefreshToken::parse(&text), Some(token));
        for bad in [
            "",
            "short",
            &"A".repeat(44),
            &format!("{}=", &text[..42]),
            "a.b.c",
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{:?}", RefreshToken::generate()).contains(&text));
    }

    #[test]
    fn stored_hash_is_not_the_successor() {
        let keys = RefreshKeys::new(b"a refresh secret of at least 32 bytes");
        let token = RefreshToken::generate();
        let successor = keys.successor(&token);
        assert_ne!(keys.hash(&token), successor.0.to_vec());
        assert_ne!(successor, token);
        // Derivation is deterministic: a replay gets the same successor.
        assert_eq!(keys.successor(&token), successor);
    }
}
