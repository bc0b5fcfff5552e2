//! One function per subcommand. Each returns the process exit code; errors carry context.

use crate::settings::Settings;
use crate::token::{sign, Claims};
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use seckill_core::ActivityId;
use seckill_worker::{db, inspect, lag, streams};
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub async fn pool(s: &Settings) -> anyhow::Result<MySqlPool> {
    let pool = db::pool(&s.mysql.url, 4, Duration::from_secs(10))?;
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .context("Failed to connect to MySQL")?;
    Ok(pool)
}

async fn redis(s: &Settings) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    redis::Client::open(s.redis.url.as_str())
        .context("Invalid redis.url")?
        .get_multiplexed_async_connection()
        .await
        .context("Failed to connect to Redis")
}

#[derive(Debug, clap::Args)]
pub struct CreateActivity {
    /// Units for sale.
    #[arg(long)]
    stock: u64,
    /// Most units one user may hold.
    #[arg(long, default_value_t = 1)]
    limit: u64,
    /// Window start: RFC 3339 or `now`.
    #[arg(long, default_value = "now")]
    start: String,
    /// Window end: RFC 3339 (none when absent).
    #[arg(long)]
    end: Option<String>,
    /// Existing product id; a product row is created when absent.
    #[arg(long)]
    product: Option<u64>,
    /// Unit price in cents.
    #[arg(long, default_value_t = 0)]
    price: u64,
    #[arg(long, default_value = "flash sale")]
    title: String,
    /// Seconds a buyer has to pay before the order expires and its stock returns.
    #[arg(long, default_value_t = 900)]
    payment_window: u32,
}

fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if s.eq_ignore_ascii_case("now") {
        return Ok(Utc::now());
    }
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("'{s}' is not an RFC 3339 time"))?
        .with_timezone(&Utc))
}

pub async fn create_activity(s: &Settings, a: CreateActivity) -> anyhow::Result<ExitCode> {
    let start = parse_time(&a.start)?;
    let end = a.end.as_deref().map(parse_time).transpose()?;
    if a.stock == 0 || a.limit == 0 {
        bail!("--stock and --limit must be at least 1");
    }
    if end.is_some_and(|e| e <= start) {
        bail!("--end must be after --start");
    }
    let pool = pool(s).await?;
    let mut redis = redis(s).await?;
    let product = match a.product {
        Some(p) => {
            let found = sqlx::query("SELECT id FROM products WHERE id = ?")
                .bind(p)
                .fetch_optional(&pool)
                .await?;
            if found.is_none() {
                bail!("product {p} does not exist");
            }
            p
        }
        None => sqlx::query("INSERT INTO products (name, price_cents) VALUES (?, ?)")
            .bind(&a.title)
            .bind(a.price)
            .execute(&pool)
            .await
            .context("Failed to create the product")?
            .last_insert_id(),
    };
    let id = sqlx::query(
        "INSERT INTO activities (product_id, title, stock, per_user_limit, price_cents, \
         start_at, end_at, payment_window_secs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(product)
    .bind(&a.title)
    .bind(a.stock)
    .bind(a.limit)
    .bind(a.price)
    .bind(start.naive_utc())
    .bind(end.map(|e| e.naive_utc()))
    .bind(a.payment_window)
    .execute(&pool)
    .await
    .context("Failed to insert the activity")?
    .last_insert_id();
    let mut cmd = redis::cmd("SECKILL.CREATE");
    cmd.arg(id.to_string())
        .arg("STOCK")
        .arg(a.stock)
        .arg("LIMIT")
        .arg(a.limit)
        .arg("START")
        .arg(start.timestamp_millis())
        .arg("PRODUCT")
        .arg(product.to_string())
        .arg("PRICE")
        .arg(a.price);
    if let Some(e) = end {
        cmd.arg("END").arg(e.timestamp_millis());
    }
    if let Err(e) = cmd.query_async::<()>(&mut redis).await {
        // Not preheated means not sellable: do not leave a row that looks like a sale.
        let _ = sqlx::query("DELETE FROM activities WHERE id = ?")
            .bind(id)
            .execute(&pool)
            .await;
        return Err(e).context("Failed to preheat the activity into Redis (SECKILL.CREATE)");
    }
    eprintln!(
        "activity {id} created: stock {} limit {} product {product}",
        a.stock, a.limit
    );
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct SeedUsers {
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
    ttl: i64,
}

pub async fn seed_users(s: &Settings, a: SeedUsers) -> anyhow::Result<ExitCode> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if s.auth.jwt_secret.is_empty() {
        bail!("auth.jwt_secret is not set (SECKILL_AUTH__JWT_SECRET)");
    }
    let pool = pool(s).await?;
    // One password for all load-test users: hashing 100,000 argon2 hashes would take
    // minutes; the tokens are what load tests use.
    let password: String = (0..16)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let run = format!("{}-{:x}", a.prefix, Utc::now().timestamp_millis());
    let bar = ProgressBar::new(a.count * 2);
    bar.set_style(
        ProgressStyle::with_template("{msg:8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("insert");
    const CHUNK: u64 = 5_000;
    let mut first = 0;
    while first < a.count {
        let n = CHUNK.min(a.count - first);
        let mut q: QueryBuilder<MySql> =
            QueryBuilder::new("INSERT INTO users (username, password_hash, role) ");
        q.push_values(first..first + n, |mut b, i| {
            b.push_bind(format!("{run}-{i}"))
                .push_bind(&hash)
                .push_bind("user");
        });
        q.build()
            .execute(&pool)
            .await
            .context("Failed to insert users")?;
        first += n;
        bar.inc(n);
    }
    bar.set_message("tokens");
    let rows = sqlx::query("SELECT id FROM users WHERE username LIKE ? ORDER BY id")
        .bind(format!("{run}-%"))
        .fetch_all(&pool)
        .await?;
    let file = std::fs::File::create(&a.tokens)
        .with_context(|| format!("Failed to create {}", a.tokens.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let now = Utc::now().timestamp();
    for row in &rows {
        let id: u64 = row.try_get(0)?;
        let t = sign(
            s.auth.jwt_secret.as_bytes(),
            &Claims::new(id, "user", now, a.ttl),
        )?;
        writeln!(out, "{t}")?;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "{} users '{run}-<n>' created (password '{password}'); tokens in {}",
        rows.len(),
        a.tokens.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn lag(s: &Settings, watch: bool, interval: u64) -> anyhow::Result<ExitCode> {
    let mut redis = redis(s).await?;
    loop {
        let rows = streams::all_lags(&mut redis, &s.worker.group)
            .await
            .context("Failed to read the streams")?;
        let table = lag::render_table(&rows);
        if watch {
            print!(
                "\x1b[2J\x1b[H{}  (every {interval}s, Ctrl-C to stop)\n{table}",
                Utc::now().to_rfc3339()
            );
        } else {
            print!("{table}");
        }
        std::io::stdout().flush()?;
        if !watch {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval.max(1))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

pub async fn audit(s: &Settings, activity: &str) -> anyhow::Result<ExitCode> {
    let activity = ActivityId::parse(activity).context("Invalid activity id")?;
    let pool = pool(s).await?;
    let mut redis = redis(s).await?;
    let report = inspect::audit_activity(&mut redis, &pool, &activity, &s.worker.group)
        .await
        .context("Failed to audit")?;
    println!(
        "activity {activity}: {} reservations, {} orders ({} live, quantity {}), {} in flight",
        report.reservations,
        report.orders,
        report.live_orders,
        report.live_quantity,
        report.in_flight
    );
    if report.is_clean() {
        println!("OK: Redis and MySQL agree");
        return Ok(ExitCode::SUCCESS);
    }
    println!("DRIFT: {} finding(s)", report.drift.len());
    for d in report.drift.iter().take(50) {
        println!("  - {d}");
    }
    if report.drift.len() > 50 {
        println!("  ... {} more", report.drift.len() - 50);
    }
    Ok(ExitCode::FAILURE)
}

pub async fn db(s: &Settings, rollback: bool) -> anyhow::Result<ExitCode> {
    let pool = pool(s).await?;
    if rollback {
        db::rollback(&pool, 0)
            .await
            .context("Failed to roll back")?;
        eprintln!("migrations reverted");
    } else {
        db::migrate(&pool).await.context("Failed to migrate")?;
        eprintln!("migrations applied");
    }
    Ok(ExitCode::SUCCESS)
}

/// `seckill members`: one row per live member key under `/seckill/members/`.
pub async fn members(s: &Settings) -> anyhow::Result<ExitCode> {
    if !s.etcd.enabled() {
        bail!(
            "etcd is not configured: set etcd.endpoints in the config file \
             (or SECKILL_ETCD__ENDPOINTS='[http://127.0.0.1:2379]')"
        );
    }
    let members = seckill_registry::members::list(&s.etcd.endpoints)
        .await
        .with_context(|| format!("Failed to read members from etcd {:?}", s.etcd.endpoints))?;
    print!("{}", members_table(&members));
    if members.is_empty() {
        eprintln!("no live members");
    }
    Ok(ExitCode::SUCCESS)
}

/// The `seckill members` table: KIND, ID, ADDR, PID, STARTED, VERSION.
pub fn members_table(members: &[seckill_registry::Member]) -> String {
    let header = ["KIND", "ID", "ADDR", "PID", "STARTED", "VERSION"].map(str::to_owned);
    let rows: Vec<[String; 6]> = members
        .iter()
        .map(|m| {
            [
                m.kind.clone(),
                m.id.clone(),
                if m.addr.is_empty() {
                    "-".into()
                } else {
                    m.addr.clone()
                },
                m.pid.to_string(),
                m.started_at.clone(),
                m.version.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod members_tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let m = seckill_registry::Member {
            kind: "gateway".into(),
            id: "host-12".into(),
            addr: "127.0.0.1:8080".into(),
            pid: 12,
            version: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        let t = members_table(&[m]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("KIND     ID       ADDR"), "{t}");
        assert!(
            lines[1].starts_with("gateway  host-12  127.0.0.1:8080  12"),
            "{t}"
        );
    }
}
