//! The JWT the gateway accepts: HS256, claims `{sub, role, exp, iat}`, secret from
//! `auth.jwt_secret` (env `SECKILL_AUTH__JWT_SECRET`). `sub` is the user id (`users.id`) as a
//! string, `role` is `user` or `admin`, `exp`/`iat` are unix seconds.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub exp: i64,
    pub iat: i64,
}

impl Claims {
    pub fn new(user_id: u64, role: &str, now: i64, ttl_secs: i64) -> Self {
        Self {
            sub: user_id.to_string(),
            role: role.to_owned(),
            iat: now,
            exp: now + ttl_secs,
        }
    }
}

pub fn sign(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Verifies signature, algorithm (HS256 only, so `alg: none` is refused) and expiry.
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "sub", "iat"]);
    v.leeway = 0;
    decode::<Claims>(token, &DecodingKey::from_secret(secret), &v).map(|d| d.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let now = chrono::Utc::now().timestamp();
        let c = Claims::new(42, "user", now, 3600);
        let t = sign(b"secret", &c).unwrap();
        assert_eq!(verify(b"secret", &t).unwrap(), c);
        assert!(verify(b"other", &t).is_err(), "wrong key");
        let expired = sign(b"secret", &Claims::new(1, "user", now - 7200, 3600)).unwrap();
        assert!(verify(b"secret", &expired).is_err(), "expired");
        // alg: none with the same claims.
        let none = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            t.split('.').nth(1).unwrap()
        );
        assert!(verify(b"secret", &none).is_err(), "alg none");
    }
}
