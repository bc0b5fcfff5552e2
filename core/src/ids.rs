//! Identifiers accepted from outside.
//!
//! An activity id is embedded in key names inside a `{...}` hash tag, so it must not contain
//! braces (that would move the hash tag) and must be short and printable. A user id is stored
//! as a hash field and a stream field, so the same conservative alphabet keeps logs and
//! `redis-cli` output readable.

use std::fmt;

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} id is empty")]
    Empty { kind: &'static str },
    #[error("{kind} id is longer than {MAX_ID_LEN} bytes")]
    TooLong { kind: &'static str },
    #[error("{kind} id may only contain letters, digits, '-', '_', '.' and ':'")]
    BadChar { kind: &'static str },
}

fn validate(kind: &'static str, raw: &[u8]) -> Result<String, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind });
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(IdError::BadChar { kind });
    }
    // Safe: every byte was checked to be ASCII above.
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// The id of a flash-sale activity (the gateway uses the MySQL row id, e.g. `42`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityId(String);

impl ActivityId {
    pub fn parse(raw: impl AsRef<[u8]>) -> Result<Self, IdError> {
        validate("activity", raw.as_ref()).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a buyer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: impl AsRef<[u8]>) -> Result<Self, IdError> {
        validate("user", raw.as_ref()).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a product, copied into every reservation of an activity that sells it (the
/// gateway uses the MySQL row id). Same alphabet as the other ids: it is a stream field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(String);

impl ProductId {
    pub fn parse(raw: impl AsRef<[u8]>) -> Result<Self, IdError> {
        validate("product", raw.as_ref()).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for ok in ["42", "sale-2026_11.a", "user:17", &"x".repeat(MAX_ID_LEN)] {
            assert!(ActivityId::parse(ok).is_ok(), "{ok}");
            assert!(UserId::parse(ok).is_ok(), "{ok}");
            assert!(ProductId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_ids_that_would_break_the_key_layout() {
        let cases: &[(&[u8], IdError)] = &[
            (b"", IdError::Empty { kind: "activity" }),
            (b"a{b}", IdError::BadChar { kind: "activity" }),
            (b"a b", IdError::BadChar { kind: "activity" }),
            (b"caf\xc3\xa9", IdError::BadChar { kind: "activity" }),
            (
                &[b'x'; MAX_ID_LEN + 1],
                IdError::TooLong { kind: "activity" },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(ActivityId::parse(raw).unwrap_err(), *want);
        }
    }
}
