//! Authentication: HS256 JWTs (`{sub, role, exp, iat}`) and argon2id password hashes.
//!
//! Only HS256 is accepted: a token whose header says `none` or any other algorithm, signed
//! with another key, expired, or not a JWT at all is refused the same way (401).

use crate::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use seckill_core::UserId;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The claims of every token (the CLI's `users seed` writes the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (`users.id` as a string); also the buyer id given to the module.
    pub sub: String,
    pub role: Role,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Keys and rules for issuing and checking tokens.
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl Jwt {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// Issues a token for `sub`; returns it with its expiry (unix seconds).
    pub fn issue(&self, sub: &str, role: Role, now_secs: u64) -> anyhow::Result<(String, u64)> {
        let exp = now_secs + self.ttl_secs;
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp,
            iat: now_secs,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Checks signature, algorithm and expiry, and that `sub` is a usable user id.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "token has expired",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
                _ => "token is malformed",
            };
            ApiError::Unauthorized(why.into())
        })?;
        let user = UserId::parse(&data.claims.sub)
            .map_err(|_| ApiError::Unauthorized("token subject is not a valid user id".into()))?;
        Ok(Caller {
            user,
            role: data.claims.role,
        })
    }
}

/// Extracts the token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let value = header.ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("authorization must be 'Bearer <token>'".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "authorization must be 'Bearer <token>'".into(),
        ));
    }
    Ok(token.trim())
}

/// argon2id hash in PHC format. CPU-heavy: call from `spawn_blocking`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("Failed to hash a password: {e}"))
}

/// Checks a password against a PHC hash; a malformed stored hash counts as a mismatch.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Verifies against a fixed hash so a login for an unknown user costs the same time as one
/// with a wrong password (no username probing by timing).
pub fn burn_password_check(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
    let _ = verify_password(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

    fn now() -> u64 {
        1_800_000_000
    }

    fn real_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn issued_tokens_verify() {
        let jwt = Jwt::new(SECRET, 3600);
        let (token, exp) = jwt.issue("42", Role::Admin, real_now()).unwrap();
        assert!(exp > real_now());
        let caller = jwt.verify(&token).unwrap();
        assert_eq!(caller.user.as_str(), "42");
        assert!(caller.is_admin());
    }

    #[test]
    fn bad_tokens_are_unauthorized() {
        let jwt = Jwt::new(SECRET, 3600);
        let other = Jwt::new(b"another-secret-another-secret-0000", 3600);
        let (wrong_key, _) = other.issue("42", Role::User, real_now()).unwrap();
        let (expired, _) = Jwt::new(SECRET, 1)
            .issue("42", Role::User, now() - 10_000_000)
            .unwrap();
        let payload = format!(
            r#"{{"sub":"42","role":"admin","exp":{},"iat":1}}"#,
            real_now() + 3600
        );
        let alg_none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&payload)
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                sub: "42".into(),
                role: Role::User,
                exp: real_now() + 3600,
                iat: 1,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let bad_sub = jwt.issue("a b", Role::User, real_now()).unwrap().0;
        for (name, token) in [
            ("wrong key", wrong_key.as_str()),
            ("expired", &expired),
            ("alg none", &alg_none),
            ("hs512", &hs512),
            ("garbage", "not.a.token"),
            ("empty", ""),
            ("bad sub", &bad_sub),
        ] {
            let err = jwt.verify(token).err();
            assert!(
                matches!(err, Some(ApiError::Unauthorized(_))),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")).ok(), Some("abc"));
        assert_eq!(bearer_token(Some("bearer abc")).ok(), Some("abc"));
        for bad in [
            None,
            Some(""),
            Some("Basic abc"),
            Some("Bearer"),
            Some("Bearer   "),
        ] {
            assert!(bearer_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
