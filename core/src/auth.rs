//! Tokens and password hashes, written once for the gateway (login, every authenticated
//! request) and the CLI (`users seed` tokens, `users create-admin` hashes).
//!
//! Tokens are HS256 JWTs with claims `{sub, role, exp, iat}`: `sub` is the user id
//! (`users.id` as a string, also the buyer id the module sees), `role` is `user` or `admin`,
//! `exp`/`iat` are unix seconds. Only HS256 is accepted: a token whose header says `none` or any
//! other algorithm, signed with another key, expired, or not a JWT at all is refused.
//!
//! Passwords are argon2id PHC strings with the crate's default parameters; hashing is
//! CPU-heavy, so callers run it off the async executor.

use crate::ids::UserId;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
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

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The claims of every token.
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

impl Claims {
    /// Claims for `user_id` valid `ttl_secs` from `now` (unix seconds).
    pub fn new(user_id: u64, role: Role, now: u64, ttl_secs: u64) -> Self {
        Self {
            sub: user_id.to_string(),
            role,
            iat: now,
            exp: now.saturating_add(ttl_secs),
        }
    }
}

/// Why a token was refused (each becomes the same 401, with a different message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token algorithm is not accepted")]
    BadAlgorithm,
    #[error("token is malformed")]
    Malformed,
    #[error("token subject is not a valid user id")]
    BadSubject,
}

/// A verified token: the caller's user id and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: UserId,
    pub role: Role,
    /// The token's `exp` (unix seconds).
    pub exp: u64,
}

impl Verified {
    /// Whether the token is past its `exp` at `now` (unix seconds), by the same rule and
    /// leeway as the full check: for a caller that keeps verified tokens and must stop
    /// accepting them on time.
    pub fn expired_at(&self, now: u64) -> bool {
        self.exp.saturating_add(LEEWAY_SECS) < now
    }
}

/// Clocks of the CLI that signs seeded tokens and of the gateway may differ slightly.
const LEEWAY_SECS: u64 = 5;

/// Keys and rules for issuing and checking tokens.
pub struct JwtKeys {
    /// `None` for an empty secret, which signs nothing and verifies nothing (configuration
    /// checks refuse empty secrets before this is built; this keeps construction infallible).
    keys: Option<(EncodingKey, DecodingKey)>,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let keys = EncodingKey::from_secret(secret)
            .and_then(|e| Ok((e, DecodingKey::from_secret(secret)?)))
            .ok();
        Self { keys, validation }
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let (encoding, _) = self.keys.as_ref().ok_or_else(|| {
            jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)
        })?;
        encode(&Header::new(Algorithm::HS256), claims, encoding)
    }

    /// Checks signature, algorithm and expiry, returning the claims.
    pub fn claims(&self, token: &str) -> Result<Claims, TokenError> {
        let (_, decoding) = self.keys.as_ref().ok_or(TokenError::BadSignature)?;
        decode::<Claims>(token, decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::InvalidAlgorithm => TokenError::BadAlgorithm,
                    _ => TokenError::Malformed,
                }
            })
    }

    /// Like [`JwtKeys::claims`], and `sub` must be a usable user id.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let claims = self.claims(token)?;
        let user = UserId::parse(&claims.sub).map_err(|_| TokenError::BadSubject)?;
        Ok(Verified {
            user,
            role: claims.role,
            exp: claims.exp,
        })
    }
}

/// Signs `claims` with `secret` (HS256).
pub fn sign(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    JwtKeys::new(secret).sign(claims)
}

/// Verifies `token` with `secret` and returns its claims.
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, TokenError> {
    JwtKeys::new(secret).claims(token)
}

/// argon2id hash in PHC format. CPU-heavy: call it off the async executor.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
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
        let keys = JwtKeys::new(SECRET);
        let token = keys
            .sign(&Claims::new(42, Role::Admin, real_now(), 3600))
            .unwrap();
        let v = keys.verify(&token).unwrap();
        assert_eq!(v.user.as_str(), "42");
        assert_eq!(v.role, Role::Admin);
        assert_eq!(verify(SECRET, &token).unwrap().role, "admin");
    }

    #[test]
    fn bad_tokens_are_refused() {
        let keys = JwtKeys::new(SECRET);
        let now = real_now();
        let wrong_key = sign(
            b"another-secret-another-secret-0000",
            &Claims::new(42, Role::User, now, 3600),
        )
        .unwrap();
        let expired = keys
            .sign(&Claims::new(42, Role::User, now - 10_000_000, 1))
            .unwrap();
        let payload = format!(
            r#"{{"sub":"42","role":"admin","exp":{},"iat":1}}"#,
            now + 3600
        );
        let alg_none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&payload)
        );
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &Claims::new(42, Role::User, now, 3600),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        let bad_sub = keys
            .sign(&Claims {
                sub: "a b".into(),
                role: Role::User,
                exp: now + 3600,
                iat: now,
            })
            .unwrap();
        for (name, token, want) in [
            ("wrong key", wrong_key.as_str(), TokenError::BadSignature),
            ("expired", &expired, TokenError::Expired),
            ("alg none", &alg_none, TokenError::Malformed),
            ("hs512", &hs512, TokenError::BadAlgorithm),
            ("garbage", "not.a.token", TokenError::Malformed),
            ("empty", "", TokenError::Malformed),
            ("bad sub", &bad_sub, TokenError::BadSubject),
        ] {
            assert_eq!(keys.verify(token).err(), Some(want), "{name}");
        }
        let empty = JwtKeys::new(b"");
        assert!(empty.sign(&Claims::new(1, Role::User, now, 60)).is_err());
        assert_eq!(empty.verify(&expired).err(), Some(TokenError::BadSignature));
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
