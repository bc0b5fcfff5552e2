//! `seckill users seed | create-admin | promote`: load-test users with tokens, and the way to
//! get an administrator outside dev mode (where the gateway seeds none) without SQL by hand.

use super::pool;
use crate::settings::Settings;
use anyhow::{bail, Context};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use seckill_core::account::{check_password, Username};
use seckill_core::auth::{hash_password, Claims, JwtKeys, Role};
use seckill_db::{users, MySqlPool};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Environment variable holding the new administrator's password (never a flag: flags end up
/// in shell history and `ps`).
const PASSWORD_ENV: &str = "SECKILL_ADMIN_PASSWORD";

#[derive(Debug, clap::Args)]
pub(crate) struct SeedUsers {
    /// Number of users to create.
    #[arg(long)]
    count: u64,
    /// File to write one JWT per line to.
    #[arg(long)]
    tokens: PathBuf,
    /// Username prefix (a run suffix keeps repeated seeds apart).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    ttl: u64,
}

pub(crate) async fn seed(s: &Settings, a: SeedUsers) -> anyhow::Result<ExitCode> {
    if s.auth.jwt_secret.is_empty() {
        bail!("auth.jwt_secret is not set (SECKILL_AUTH__JWT_SECRET)");
    }
    let pool = pool(s).await?;
    // One password for all load-test users: hashing 100,000 argon2 hashes would take
    // minutes; the tokens are what load tests use.
    let password: String = (0..16)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let run = format!("{}-{:x}", a.prefix, Utc::now().timestamp_millis());
    let bar = ProgressBar::new(a.count * 2);
    bar.set_style(
        ProgressStyle::with_template("{msg:8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("insert");
    let names: Vec<String> = (0..a.count).map(|i| format!("{run}-{i}")).collect();
    users::insert_many(&pool, &names, &hash, Role::User.as_str(), |n| bar.inc(n))
        .await
        .context("Failed to insert users")?;
    bar.set_message("tokens");
    let ids = users::ids_with_prefix(&pool, &format!("{run}-")).await?;
    let file = std::fs::File::create(&a.tokens)
        .with_context(|| format!("Failed to create {}", a.tokens.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let keys = JwtKeys::new(s.auth.jwt_secret.expose().as_bytes());
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    for id in &ids {
        let t = keys.sign(&Claims::new(*id, Role::User, now, a.ttl))?;
        writeln!(out, "{t}")?;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "{} users '{run}-<n>' created (password '{password}'); tokens in {}",
        ids.len(),
        a.tokens.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateAdmin {
    /// Username: 3 to 32 letters, digits, '_', '-' or '.' (as for registration).
    #[arg(long)]
    username: String,
    /// Read the password from the first line of standard input instead of
    /// SECKILL_ADMIN_PASSWORD.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Promote {
    /// The existing user to make an administrator.
    username: String,
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

pub(crate) async fn create_admin(pool: &MySqlPool, a: CreateAdmin) -> anyhow::Result<ExitCode> {
    let name = Username::parse(&a.username)?;
    let password = read_password(a.password_stdin)?;
    check_password(&password)?;
    // The gateway verifies with the same function's parameters.
    let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let created = users::insert_if_absent(pool, name.as_str(), &hash, Role::Admin.as_str())
        .await
        .context("Failed to insert the administrator")?;
    if !created {
        bail!(
            "user '{name}' already exists; `seckill users promote {name}` makes it an administrator"
        );
    }
    eprintln!("administrator '{name}' created");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn promote(pool: &MySqlPool, p: Promote) -> anyhow::Result<ExitCode> {
    let role = users::role_of(pool, &p.username)
        .await
        .context("Failed to look the user up")?;
    match role.as_deref() {
        None => bail!(
            "no user '{}'; `seckill users create-admin --username {}` creates one",
            p.username,
            p.username
        ),
        Some("admin") => eprintln!("'{}' is already an administrator", p.username),
        Some(_) => {
            users::set_role(pool, &p.username, Role::Admin.as_str())
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
