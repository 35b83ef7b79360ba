//! Access tokens: HS256 JWTs with `typ: at+jwt`, issued for one session and
//! checked strictly (algorithm, type, issuer, audience, expiry).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Millis;

use super::model::ErrorCode;

/// The `typ` header of an access token (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

/// A signed access token and its lifetime in seconds (`expires_in`).
pub struct SignedAccessToken {
    pub token: String,
    pub expires_in: u64,
}

impl AccessTokens {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl: Duration) -> Self {
        // Only HS256 under our key; exp and nbf are checked below against the
        // injectable clock, so the library's wall-clock checks are off.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl,
        }
    }

    pub fn issue(&self, user_id: &str, session_id: &str, now: Millis) -> SignedAccessToken {
        let iat = now.div_euclid(1000);
        let expires_in = self.ttl.as_secs().max(1);
        let exp = iat + expires_in as i64;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat,
            exp,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TOKEN_TYPE.to_string());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        SignedAccessToken { token, expires_in }
    }

    /// Verifies signature, algorithm, `typ`, `iss`, `aud`, `exp` and `nbf`.
    /// `kid`, `jku` and `jwk` headers are ignored: the key is always ours.
    pub fn verify(&self, token: &str, now: Millis) -> Result<Claims, ErrorCode> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ErrorCode::InvalidToken)?;
        if data.header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(ErrorCode::InvalidToken);
        }
        let now_secs = now.div_euclid(1000);
        if let Some(nbf) = data.claims.nbf {
            if nbf > now_secs + LEEWAY_SECS {
                return Err(ErrorCode::InvalidToken);
            }
        }
        if data.claims.exp + LEEWAY_SECS <= now_secs {
            return Err(ErrorCode::TokenExpired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

    const KEY: &[u8] = b"an access key of at least thirty-two bytes";
    const NOW: Millis = 1_800_000_000_000;

    fn tokens() -> AccessTokens {
        AccessTokens::new(
            KEY,
            "http://app.test",
            "silent-refresh",
            Duration::from_secs(900),
        )
    }

    fn sign(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{h}.{c}").as_bytes());
        format!(
            "{h}.{c}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "http://app.test", "aud": "silent-refresh", "sub": "u1", "sid": "s1",
            "iat": NOW / 1000, "exp": NOW / 1000 + 900, "jti": "j1"
        })
    }

    fn header() -> serde_json::Value {
        serde_json::json!({ "alg": "HS256", "typ": "at+jwt" })
    }

    #[test]
    fn issued_tokens_verify() {
        let t = tokens();
        let issued = t.issue("u1", "s1", NOW);
        assert_eq!(issued.expires_in, 900);
        let verified = t.verify(&issued.token, NOW).unwrap();
        assert_eq!((verified.sub.as_str(), verified.sid.as_str()), ("u1", "s1"));
        let decoded = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(decoded.typ.as_deref(), Some("at+jwt"));
        // A hand-built token with the same fields verifies too, so the
        // negative cases below differ from a valid one in one thing only.
        assert!(t.verify(&sign(&header(), &claims(), KEY), NOW).is_ok());
    }

    #[test]
    fn expiry_has_at_most_five_seconds_leeway() {
        let t = tokens();
        let issued = t.issue("u1", "s1", NOW);
        assert!(t.verify(&issued.token, NOW + 900_000 + 4_000).is_ok());
        assert_eq!(
            t.verify(&issued.token, NOW + 900_000 + 5_000),
            Err(ErrorCode::TokenExpired)
        );
    }

    #[test]
    fn forged_and_altered_tokens_are_rejected() {
        let t = tokens();
        let c = claims();
        let mut cases: Vec<(&str, String)> = vec![
            ("alg none", {
                let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
                let p = URL_SAFE_NO_PAD.encode(c.to_string());
                format!("{h}.{p}.")
            }),
            (
                "alg None",
                sign(
                    &serde_json::json!({"alg": "None", "typ": "at+jwt"}),
                    &c,
                    KEY,
                ),
            ),
            (
                "alg missing",
                sign(&serde_json::json!({"typ": "at+jwt"}), &c, KEY),
            ),
            ("HS512 same key", {
                let mut h = Header::new(Algorithm::HS512);
                h.typ = Some("at+jwt".into());
                jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(KEY)).unwrap()
            }),
            ("HS384 same key", {
                let mut h = Header::new(Algorithm::HS384);
                h.typ = Some("at+jwt".into());
                jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(KEY)).unwrap()
            }),
            (
                "other key",
                sign(&header(), &c, b"another key of at least thirty-two bytes!"),
            ),
            (
                "wrong typ",
                sign(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &c, KEY),
            ),
            (
                "no typ",
                sign(&serde_json::json!({"alg": "HS256"}), &c, KEY),
            ),
            ("not a jwt", "definitely-not-a-token".into()),
            ("empty", String::new()),
        ];
        for (field, value) in [
            ("iss", serde_json::json!("http://evil.test")),
            ("aud", serde_json::json!("another-app")),
            ("nbf", serde_json::json!(NOW / 1000 + 60)),
            ("exp", serde_json::json!(NOW / 1000 - 60)),
        ] {
            let mut altered = c.clone();
            altered[field] = value;
            cases.push((field, sign(&header(), &altered, KEY)));
        }
        let valid = sign(&header(), &c, KEY);
        let (h, rest) = valid.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut tampered = c.clone();
        tampered["sub"] = serde_json::json!("admin");
        cases.push((
            "tampered payload",
            format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(tampered.to_string())),
        ));
        let mut bad_sig = valid.clone();
        let last = bad_sig.pop().unwrap();
        bad_sig.push(if last == 'A' { 'B' } else { 'A' });
        cases.push(("tampered signature", bad_sig));

        for (name, token) in cases {
            assert!(t.verify(&token, NOW).is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn key_location_headers_are_ignored() {
        let t = tokens();
        // Pointing at another key changes nothing: ours signs, ours verifies.
        let header = serde_json::json!({
            "alg": "HS256", "typ": "at+jwt", "kid": "attacker",
            "jku": "https://evil.test/jwks.json",
        });
        assert!(t.verify(&sign(&header, &claims(), KEY), NOW).is_ok());
        let forged = sign(
            &header,
            &claims(),
            b"attacker key of at least thirty-two bytes",
        );
        assert!(t.verify(&forged, NOW).is_err());
        let with_jwk = serde_json::json!({
            "alg": "HS256", "typ": "at+jwt",
            "jwk": { "kty": "oct", "k": URL_SAFE_NO_PAD.encode(b"attacker key of at least thirty-two bytes") },
        });
        let forged = sign(
            &with_jwk,
            &claims(),
            b"attacker key of at least thirty-two bytes",
        );
        assert!(t.verify(&forged, NOW).is_err());
    }
}
