//! `seckill lag` and `seckill audit`: what the streams and the database say. In a Redis
//! Cluster both say where each activity lives: `lag` prints one table per shard (the primary,
//! its slots, its replicas with their acknowledgement and replication lag), `audit` the node
//! that serves the activity.

use super::{pool, redis, target, REDIS_TIMEOUT};
use crate::settings::Settings;
use anyhow::Context;
use chrono::Utc;
use seckill_client::lag;
use seckill_client::shards::{self, ShardView};
use seckill_client::topology::slot_of;
use seckill_core::lag::render_table;
use seckill_core::ActivityId;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn lag(s: &Settings, watch: bool, interval: u64) -> anyhow::Result<ExitCode> {
    let mut redis = redis(s).await?;
    let target = target(s)?;
    loop {
        let table = if redis.is_cluster() {
            // Per shard: which primary serves which activities, its replicas, their lag.
            let topology = redis
                .topology(&target)
                .await
                .context("Failed to read the cluster's layout")?;
            let views =
                shards::shard_views(&target, &topology, &s.worker.group, REDIS_TIMEOUT).await;
            render_shards(&views, s.redis.min_replicas)
        } else {
            let rows = lag::all_lags(&mut redis, &s.worker.group)
                .await
                .context("Failed to read the streams")?;
            render_table(&rows)
        };
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
    if redis.is_cluster() {
        let topology = redis
            .topology(&target(s)?)
            .await
            .context("Failed to read the cluster's layout")?;
        println!(
            "activity {activity}: slot {}, served by {}",
            slot_of(&activity),
            topology
                .primary_for(&activity)
                .unwrap_or("no primary (slot not served)")
        );
    }
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

/// One block per shard: the primary, its slots and replicas, then its streams' table.
fn render_shards(views: &[ShardView], min_replicas: u32) -> String {
    let mut out = String::new();
    for v in views {
        let slots: Vec<String> = v
            .shard
            .slots
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "shard {} (slots {}){}",
            v.shard.primary,
            slots.join(","),
            if v.shard.failing { " FAILING" } else { "" }
        );
        match &v.replication {
            Some(r) => {
                let acking = r.acking();
                let _ = write!(
                    out,
                    "  replicas: {} connected, {acking} acknowledging",
                    r.replicas.len()
                );
                if acking < min_replicas as usize {
                    let _ = write!(out, " (BELOW redis.min_replicas = {min_replicas})");
                }
                out.push('\n');
                for rep in &r.replicas {
                    let _ = writeln!(
                        out,
                        "    {} {} offset lag {} B, last ack {} s ago",
                        rep.addr,
                        rep.state,
                        r.lag_bytes(rep),
                        rep.lag_secs
                    );
                }
            }
            None => out.push_str("  replicas: unknown\n"),
        }
        if let Some(e) = &v.error {
            let _ = writeln!(out, "  error: {e}");
        }
        for line in render_table(&v.streams).lines() {
            let _ = writeln!(out, "  {line}");
        }
        out.push('\n');
    }
    out
}
