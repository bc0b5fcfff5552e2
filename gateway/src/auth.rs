//! Who is calling: the bearer token of a request, verified into a [`Caller`]. Tokens and
//! password hashes themselves are `seckill_core::auth` (shared with the CLI); this module
//! adds the lifetime of the tokens the gateway issues and the HTTP error of a refused one.

use crate::error::ApiError;
pub use seckill_core::auth::{Claims, Role};
use seckill_core::auth::{JwtKeys, TokenError, Verified};
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

/// Keys for issuing and checking tokens, the lifetime of issued ones, and the tokens already
/// verified.
pub struct Jwt {
    keys: JwtKeys,
    ttl_secs: u64,
    /// Tokens that passed the full check, with what they said. A sale's crowd sends the same
    /// token with every click, retry and result poll, and the full check (base64, the header
    /// and claims parsed, HMAC-SHA256) was 7% of the gateway's CPU under load. Keyed by the
    /// whole token, so a hit is a token this key already accepted, byte for byte; its expiry
    /// is checked again on every hit. Refused tokens are never kept. Bounded; `None` when
    /// `auth.verified_tokens` is 0.
    verified: Option<quick_cache::sync::Cache<String, Verified>>,
}

/// How many verified tokens [`Jwt::new`] keeps.
pub const VERIFIED_TOKENS: usize = 65_536;

impl Jwt {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Self::with_cache(secret, ttl_secs, VERIFIED_TOKENS)
    }

    /// Like [`Jwt::new`], keeping up to `verified_tokens` verified tokens (0: none).
    pub fn with_cache(secret: &[u8], ttl_secs: u64, verified_tokens: usize) -> Self {
        Self {
            keys: JwtKeys::new(secret),
            ttl_secs,
            verified: (verified_tokens > 0).then(|| quick_cache::sync::Cache::new(verified_tokens)),
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
        self.verify_at(token, crate::handlers::now_ms() / 1000)
    }

    /// [`Jwt::verify`] with `now` (unix seconds) for the expiry of a token verified before;
    /// a token checked in full is checked against the system clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Caller, ApiError> {
        if let Some(cache) = &self.verified {
            if let Some(v) = cache.get(token) {
                if v.expired_at(now) {
                    cache.remove(token);
                    return Err(ApiError::Unauthorized(TokenError::Expired.to_string()));
                }
                return Ok(Caller {
                    user: v.user,
                    role: v.role,
                });
            }
        }
        let v = self
            .keys
            .verify(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if let Some(c) = &self.verified {
            c.insert(token.to_owned(), v.clone());
        }
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

    /// A token verified before is accepted from the cache until its `exp` (plus the same
    /// leeway as the full check), then refused, and never comes back.
    #[test]
    fn verified_tokens_still_expire() {
        let jwt = Jwt::new(SECRET, 60);
        let now = real_now();
        let (token, exp) = jwt.issue("42", Role::User, now).unwrap();
        assert_eq!(jwt.verify_at(&token, now).unwrap().user.as_str(), "42");
        assert!(jwt
            .verified
            .as_ref()
            .is_some_and(|c| c.get(&token).is_some()));
        assert!(jwt.verify_at(&token, exp + 5).is_ok(), "within the leeway");
        let late = jwt.verify_at(&token, exp + 6).err();
        assert!(matches!(late, Some(ApiError::Unauthorized(_))), "{late:?}");
        assert!(jwt
            .verified
            .as_ref()
            .is_some_and(|c| c.get(&token).is_none()));
    }

    /// A refused token is never kept: the same bytes are checked in full again.
    #[test]
    fn refused_tokens_are_not_kept() {
        let jwt = Jwt::new(SECRET, 3600);
        let (good, _) = jwt.issue("42", Role::User, real_now()).unwrap();
        // Same header and claims, one character inside the signature changed.
        let at = good.len() - 10;
        let was = &good[at..=at];
        let forged = format!(
            "{}{}{}",
            &good[..at],
            if was == "A" { "B" } else { "A" },
            &good[at + 1..]
        );
        for _ in 0..2 {
            assert!(jwt.verify(&forged).is_err());
        }
        assert!(jwt
            .verified
            .as_ref()
            .is_some_and(|c| c.get(&forged).is_none()));
        assert!(jwt.verify(&good).is_ok());
        assert!(
            jwt.verify(&forged).is_err(),
            "a kept good token does not let its forgery in"
        );
    }

    #[test]
    fn no_cache_when_configured_off() {
        let jwt = Jwt::with_cache(SECRET, 3600, 0);
        let (token, _) = jwt.issue("42", Role::User, real_now()).unwrap();
        assert!(jwt.verify(&token).is_ok());
        assert!(jwt.verified.is_none());
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
