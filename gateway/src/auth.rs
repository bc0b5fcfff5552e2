//! Who is calling: the bearer token of a request, verified into a [`Caller`]. Tokens and
//! password hashes themselves are `seckill_core::auth` (shared with the CLI); this module
//! adds the lifetime of the tokens the gateway issues and the HTTP error of a refused one.

use crate::error::ApiError;
use seckill_core::auth::JwtKeys;
pub use seckill_core::auth::{Claims, Role};
use seckill_core::UserId;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    pub role: Role,
}

impl Caller {
    pub(crate) fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Keys for issuing and checking tokens, and the lifetime of issued ones.
pub struct Jwt {
    keys: JwtKeys,
    ttl_secs: u64,
}

impl Jwt {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Self {
            keys: JwtKeys::new(secret),
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
        Ok((self.keys.sign(&claims)?, exp))
    }

    /// Checks signature, algorithm and expiry, and that `sub` is a usable user id.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let v = self
            .keys
            .verify(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        Ok(Caller {
            user: v.user,
            role: v.role,
        })
    }
}

/// Extracts the token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
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

    #[test]
    fn issued_tokens_verify() {
        let jwt = Jwt::new(SECRET, 3600);
        let (token, exp) = jwt.issue("42", Role::Admin, real_now()).unwrap();
        assert!(exp > real_now());
        let caller = jwt.verify(&token).unwrap();
        assert_eq!(caller.user.as_str(), "42");
        assert!(caller.is_admin());
    }

    /// Every refusal of `seckill_core::auth` (tested there, case by case) is a 401 here.
    #[test]
    fn refused_tokens_are_unauthorized() {
        let jwt = Jwt::new(SECRET, 3600);
        let (wrong_key, _) = Jwt::new(b"another-secret-another-secret-0000", 3600)
            .issue("42", Role::User, real_now())
            .unwrap();
        let err = jwt.verify(&wrong_key).err();
        assert!(matches!(err, Some(ApiError::Unauthorized(_))), "{err:?}");
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
}
