//! The `seckill` binary against real Redis (with the module) and MariaDB.

use seckill_core::auth as token;
use seckill_testkit::{mariadb, RedisServer};
use std::process::{Command, Output};
use std::time::Duration;

struct Env {
    redis: RedisServer,
    db_url: String,
}

fn env() -> anyhow::Result<Env> {
    let redis = RedisServer::start()?;
    let db_url = mariadb::shared()?.create_database()?;
    Ok(Env { redis, db_url })
}

impl Env {
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_seckill"))
            .args([
                "--redis-url",
                &self.redis.url(),
                "--mysql-url",
                &self.db_url,
            ])
            .args(args)
            .env("SECKILL_AUTH__JWT_SECRET", "test-secret")
            .env("RUST_LOG", "warn")
            .output()?)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn activity_create_seed_lag_and_audit() -> anyhow::Result<()> {
    let env = env()?;
    let migrate = env.run(&["db", "migrate"])?;
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // activity create prints the id alone on stdout and preheats Redis.
    let out = env.run(&[
        "activity", "create", "--stock", "5", "--price", "250", "--limit", "2",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout(&out).trim().to_owned();
    assert!(id.parse::<u64>().is_ok(), "stdout was {:?}", stdout(&out));
    let status = env.redis.cli(&["SECKILL.STATUS", &id])?;
    assert!(status.contains("250"), "{status}");

    // users seed: N users, N verifiable tokens.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tokens.txt");
    let file_s = file.to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    let out = env.run(&["users", "seed", "--count", "20000", "--tokens", &file_s])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let tokens = std::fs::read_to_string(&file)?;
    let tokens: Vec<&str> = tokens.lines().collect();
    assert_eq!(tokens.len(), 20_000);
    let claims = token::verify(b"test-secret", tokens[0])?;
    assert_eq!(claims.role, "user");
    assert!(claims.sub.parse::<u64>().is_ok());

    // A reservation not drained by any worker: lag shows it, audit counts it in flight.
    env.redis.cli(&["SECKILL.RESERVE", &id, "u1", "1"])?;
    let lag = env.run(&["lag"])?;
    assert!(lag.status.success());
    let table = stdout(&lag);
    assert!(table.lines().any(|l| l.starts_with(&id)), "{table}");
    let audit = env.run(&["audit", &id])?;
    assert_eq!(audit.status.code(), Some(0), "{}", stdout(&audit));
    assert!(stdout(&audit).contains("1 in flight"));

    // An order row without a reservation is drift: exit status 1 and a report.
    let db = env.db_url.rsplit('/').next().unwrap_or_default();
    mariadb::shared()?.sql(&format!(
        "INSERT INTO `{db}`.orders (reservation_id, activity_id, product_id, user_id, quantity, \
         amount_cents, reserved_at, expires_at) VALUES ('1-1', {id}, '', 'ghost', 1, 0, NOW(3), NOW(3))"
    ))?;
    let audit = env.run(&["audit", &id])?;
    assert_eq!(audit.status.code(), Some(1), "{}", stdout(&audit));
    assert!(stdout(&audit).contains("DRIFT"));
    assert!(stdout(&audit).contains("1-1"));

    // Refusals of bad input change nothing.
    let bad = env.run(&["activity", "create", "--stock", "0"])?;
    assert!(!bad.status.success());
    assert!(stdout(&bad).is_empty());
    Ok(())
}

/// Outside dev mode nobody is seeded: `users create-admin` makes an administrator whose
/// password the gateway's argon2 check accepts, and `users promote` upgrades an existing user.
#[test]
fn create_admin_and_promote() -> anyhow::Result<()> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    use std::io::Write;
    use std::process::Stdio;
    let env = env()?;
    assert!(env.run(&["db", "migrate"])?.status.success());
    let db = env.db_url.rsplit('/').next().unwrap_or_default().to_owned();
    let sql = |q: &str| mariadb::shared()?.sql(&q.replace("{db}", &db));

    // Password from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_seckill"))
        .args(["--redis-url", &env.redis.url(), "--mysql-url", &env.db_url])
        .args(["users", "create-admin", "--username", "ops"])
        .env("SECKILL_ADMIN_PASSWORD", "correct horse battery")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = sql("SELECT role, password_hash FROM `{db}`.users WHERE username = 'ops'")?;
    let (role, hash) = row.trim().split_once('\t').unwrap_or_default();
    assert_eq!(role, "admin");
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(argon2::Argon2::default()
        .verify_password(b"correct horse battery", &parsed)
        .is_ok());

    // Password from stdin; an existing name is refused and changes nothing.
    let stdin_admin = |name: &str, password: &str| -> anyhow::Result<Output> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seckill"))
            .args(["--redis-url", &env.redis.url(), "--mysql-url", &env.db_url])
            .args([
                "users",
                "create-admin",
                "--password-stdin",
                "--username",
                name,
            ])
            .env_remove("SECKILL_ADMIN_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            writeln!(input, "{password}")?;
        }
        Ok(child.wait_with_output()?)
    };
    assert!(stdin_admin("ops2", "another-long-one")?.status.success());
    let again = stdin_admin("ops", "a-different-password")?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("users promote ops"));
    assert_eq!(
        sql("SELECT password_hash FROM `{db}`.users WHERE username = 'ops'")?.trim(),
        hash
    );
    // Bad input: short password, bad name, no password at all.
    assert!(!stdin_admin("ops3", "short")?.status.success());
    assert!(!stdin_admin("bad name", "long-enough-pw")?.status.success());
    let no_password = env.run(&["users", "create-admin", "--username", "ops4"])?;
    assert!(!no_password.status.success());
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("SECKILL_ADMIN_PASSWORD"));
    assert_eq!(
        sql("SELECT COUNT(*) FROM `{db}`.users WHERE username IN ('ops3', 'bad name', 'ops4')")?
            .trim(),
        "0"
    );

    // Promote an ordinary user; unknown users are an error.
    sql("INSERT INTO `{db}`.users (username, password_hash) VALUES ('alice', 'x')")?;
    let promoted = env.run(&["users", "promote", "alice"])?;
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert_eq!(
        sql("SELECT role FROM `{db}`.users WHERE username = 'alice'")?.trim(),
        "admin"
    );
    assert!(!env.run(&["users", "promote", "nobody"])?.status.success());
    Ok(())
}
