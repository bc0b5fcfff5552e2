//! Account rules: what a username and a password may be. One set of rules for registration
//! through the API and for administrators created with the CLI, so anyone the CLI creates
//! can also log in through the API.

use std::fmt;

/// Shortest and longest username, in bytes (the alphabet is ASCII).
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Shortest and longest password, in characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// The username alphabet, as shown in error messages.
pub const USERNAME_CHARS: &str = "letters, digits, '_', '-' and '.'";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the username must be 3 to 32 characters")]
    UsernameLength,
    #[error("the username may only contain letters, digits, '_', '-' and '.'")]
    UsernameChars,
    #[error("the password must have at least 8 characters")]
    PasswordTooShort,
    #[error("the password must have at most 128 characters")]
    PasswordTooLong,
}

/// A username that registration accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        if !USERNAME_LEN.contains(&raw.len()) {
            return Err(AccountError::UsernameLength);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(AccountError::UsernameChars);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a new password's length (in characters, so any script counts the same).
pub fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < *PASSWORD_LEN.start() {
        Err(AccountError::PasswordTooShort)
    } else if n > *PASSWORD_LEN.end() {
        Err(AccountError::PasswordTooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_follow_the_registration_rules() {
        assert!(Username::parse("ops-admin.1").is_ok());
        assert_eq!(Username::parse("ab"), Err(AccountError::UsernameLength));
        assert_eq!(
            Username::parse("has space"),
            Err(AccountError::UsernameChars)
        );
        assert_eq!(
            Username::parse(&"a".repeat(33)),
            Err(AccountError::UsernameLength)
        );
        assert_eq!(Username::parse("café"), Err(AccountError::UsernameChars));
        assert!(check_password("12345678").is_ok());
        assert!(check_password("ééééééé1").is_ok(), "characters, not bytes");
        assert_eq!(
            check_password("1234567"),
            Err(AccountError::PasswordTooShort)
        );
        assert_eq!(
            check_password(&"x".repeat(129)),
            Err(AccountError::PasswordTooLong)
        );
    }
}
