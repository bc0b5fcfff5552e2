//! `seckill users create-admin` and `seckill users promote`: the way to get an administrator
//! outside dev mode (where the gateway seeds none), without touching SQL by hand.

use anyhow::{bail, Context};
use argon2::password_hash::{PasswordHasher, SaltString};
use sqlx::MySqlPool;
use std::io::BufRead;
use std::process::ExitCode;

/// Environment variable holding the new administrator's password (never a flag: flags end up
/// in shell history and `ps`).
pub const PASSWORD_ENV: &str = "SECKILL_ADMIN_PASSWORD";

#[derive(Debug, clap::Args)]
pub struct CreateAdmin {
    /// Username: 3 to 32 letters, digits, '_', '-' or '.' (as for registration).
    #[arg(long)]
    username: String,
    /// Read the password from the first line of standard input instead of
    /// SECKILL_ADMIN_PASSWORD.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct Promote {
    /// The existing user to make an administrator.
    username: String,
}

/// The registration rules, so an administrator can also log in through the API.
pub fn check_username(name: &str) -> Result<(), String> {
    if !(3..=32).contains(&name.len()) {
        return Err("the username must be 3 to 32 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("the username may only contain letters, digits, '_', '-' and '.'".into());
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    match password.chars().count() {
        0..=7 => Err("the password must have at least 8 characters".into()),
        129.. => Err("the password must have at most 128 characters".into()),
        _ => Ok(()),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("Failed to read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    std::env::var(PASSWORD_ENV).map_err(|_| {
        anyhow::anyhow!("set {PASSWORD_ENV} or pass --password-stdin to give the password")
    })
}

pub async fn create_admin(pool: &MySqlPool, a: CreateAdmin) -> anyhow::Result<ExitCode> {
    check_username(&a.username).map_err(anyhow::Error::msg)?;
    let password = read_password(a.password_stdin)?;
    check_password(&password).map_err(anyhow::Error::msg)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    // The gateway verifies with Argon2::default() too.
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let inserted = sqlx::query(
        "INSERT IGNORE INTO users (username, password_hash, role) VALUES (?, ?, 'admin')",
    )
    .bind(&a.username)
    .bind(&hash)
    .execute(pool)
    .await
    .context("Failed to insert the administrator")?
    .rows_affected();
    if inserted == 0 {
        bail!(
            "user '{}' already exists; `seckill users promote {}` makes it an administrator",
            a.username,
            a.username
        );
    }
    eprintln!("administrator '{}' created", a.username);
    Ok(ExitCode::SUCCESS)
}

pub async fn promote(pool: &MySqlPool, p: Promote) -> anyhow::Result<ExitCode> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT CAST(role AS CHAR) FROM users WHERE username = ?")
            .bind(&p.username)
            .fetch_optional(pool)
            .await
            .context("Failed to look the user up")?;
    match found {
        None => bail!(
            "no user '{}'; `seckill users create-admin --username {}` creates one",
            p.username,
            p.username
        ),
        Some((role,)) if role == "admin" => {
            eprintln!("'{}' is already an administrator", p.username);
        }
        Some(_) => {
            sqlx::query("UPDATE users SET role = 'admin' WHERE username = ?")
                .bind(&p.username)
                .execute(pool)
                .await
                .context("Failed to promote the user")?;
            eprintln!(
                "'{}' is now an administrator (tokens issued before keep their old role until they expire)",
                p.username
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_follow_the_registration_rules() {
        assert!(check_username("ops-admin.1").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("has space").is_err());
        assert!(check_username(&"a".repeat(33)).is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"x".repeat(129)).is_err());
    }
}
