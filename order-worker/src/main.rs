//! `seckill-worker`: see the library for what it does.

use anyhow::Context;
use clap::Parser;
use seckill_db::pool;
use seckill_runtime::config::explain;
use seckill_worker::{config, init_tracing_with, Worker};
use serde::Serialize;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

// glibc malloc spent ~15% of the worker's CPU on the many small values of a batch (the
// XREADGROUP reply, its entries, the rows): mimalloc, as in the gateway, took the drain's
// worker CPU from 6.5-7.3 to 5.9-6.2 µs per order (docs/benchmarks.md, "Worker drain rows").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "seckill-worker",
    version,
    about = "Drains reservation streams into MySQL orders"
)]
struct Cli {
    /// Configuration file (default: configs/config.yaml when present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Apply the database migrations and exit.
    #[arg(long)]
    migrate: bool,
    /// Revert every migration and exit.
    #[arg(long)]
    rollback: bool,
    #[command(flatten)]
    overrides: Overrides,
}

/// Flags that override the file and the environment.
#[derive(Debug, clap::Args, Serialize)]
struct Overrides {
    #[command(flatten)]
    #[serde(skip_serializing_if = "RedisFlags::is_empty")]
    redis: RedisFlags,
    #[command(flatten)]
    #[serde(skip_serializing_if = "MysqlFlags::is_empty")]
    mysql: MysqlFlags,
    #[command(flatten)]
    worker: WorkerFlags,
}

#[derive(Debug, clap::Args, Serialize)]
struct RedisFlags {
    /// redis.url
    #[arg(long = "redis-url", id = "redis_url")]
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}
impl RedisFlags {
    fn is_empty(&self) -> bool {
        self.url.is_none()
    }
}

#[derive(Debug, clap::Args, Serialize)]
struct MysqlFlags {
    /// mysql.url
    #[arg(long = "mysql-url", id = "mysql_url")]
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}
impl MysqlFlags {
    fn is_empty(&self) -> bool {
        self.url.is_none()
    }
}

#[derive(Debug, clap::Args, Serialize)]
struct WorkerFlags {
    /// worker.metrics_addr
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_addr: Option<String>,
    /// worker.consumer (name prefix)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<String>,
    /// worker.batch_size
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = config::load(cli.config.as_deref(), &cli.overrides)?;
    // Held until main returns: dropping it flushes buffered log lines and spans.
    let _logs = init_tracing_with(cli.log_json, &settings.telemetry)?;
    if cli.migrate || cli.rollback {
        // As the schema owner (mysql.migrate_url, else mysql.url).
        let pool = pool::migrator(
            settings.mysql.migrate_options()?,
            std::time::Duration::from_secs(10),
        );
        if cli.migrate {
            pool::migrate(&pool).await.map_err(|e| {
                explain(
                    e,
                    format!(
                        "Failed to migrate (as {})",
                        settings.mysql.redacted_migrate_url()
                    ),
                    "mysql.tls",
                )
            })?;
            tracing::info!("migrations applied");
        } else {
            pool::rollback(&pool, 0).await.map_err(|e| {
                explain(
                    e,
                    format!(
                        "Failed to roll back (as {})",
                        settings.mysql.redacted_migrate_url()
                    ),
                    "mysql.tls",
                )
            })?;
            tracing::info!("migrations reverted");
        }
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    let worker = Worker::build(settings)
        .await
        .context("Failed to start the worker")?;
    // SIGINT/SIGTERM reach every task through the token; the batch in hand is finished.
    tokio::spawn(seckill_runtime::shutdown::cancel_on_signal(
        shutdown.clone(),
    ));
    worker.run_until_stopped(shutdown).await?;
    tracing::info!("worker stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "seckill-worker",
            "--redis-url",
            "redis://x/",
            "--batch-size",
            "7",
        ]);
        let v = serde_json::to_value(&cli.overrides).unwrap();
        assert_eq!(v["redis"]["url"], "redis://x/");
        assert_eq!(v["worker"]["batch_size"], 7);
        assert!(v.get("mysql").is_none());
    }
}
