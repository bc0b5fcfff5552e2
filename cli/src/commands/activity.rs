//! `seckill activity create`.

use super::{pool, redis};
use crate::settings::Settings;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use seckill_db::activities::{self, NewActivity, ProductRef};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct CreateActivity {
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

pub(crate) async fn create(s: &Settings, a: CreateActivity) -> anyhow::Result<ExitCode> {
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
    let new = NewActivity {
        title: a.title.clone(),
        product: match a.product {
            Some(p) => ProductRef::Existing(p),
            None => ProductRef::New(a.title),
        },
        price_cents: a.price,
        stock: a.stock,
        per_user_limit: a.limit,
        start_at: start,
        end_at: end,
        payment_window_secs: u64::from(a.payment_window),
    };
    let created = activities::create(&pool, |a| activities::preheat_with(&mut redis, a), &new)
        .await
        .context("Failed to create the activity")?;
    let id = created.activity_id;
    eprintln!(
        "activity {id} created: stock {} limit {} product {}",
        a.stock, a.limit, created.product_id
    );
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
