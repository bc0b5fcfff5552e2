//! `seckill lag` and `seckill audit`: what the streams and the database say.

use super::{pool, redis};
use crate::settings::Settings;
use anyhow::Context;
use chrono::Utc;
use seckill_client::lag;
use seckill_core::lag::render_table;
use seckill_core::ActivityId;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn lag(s: &Settings, watch: bool, interval: u64) -> anyhow::Result<ExitCode> {
    let mut redis = redis(s).await?;
    loop {
        let rows = lag::all_lags(&mut redis, &s.worker.group)
            .await
            .context("Failed to read the streams")?;
        let table = render_table(&rows);
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

pub(crate) async fn audit(s: &Settings, activity: &str) -> anyhow::Result<ExitCode> {
    let activity = ActivityId::parse(activity).context("Invalid activity id")?;
    let pool = pool(s).await?;
    let mut redis = redis(s).await?;
    let report = seckill_db::audit::audit_activity(&mut redis, &pool, &activity, &s.worker.group)
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
    if report.trimmed_below != seckill_core::StreamId::ZERO {
        println!(
            "stream trimmed below {} (those reservations were final: their orders are checked, \
             their entries are gone by design)",
            report.trimmed_below
        );
    }
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
