//! `seckill`: the admin CLI.
//!
//! # Layout
//! - `commands`: one module per group of subcommands (`activity`, `users`, `inspect` for lag
//!   and audit, `members`, `db`); results on stdout, everything else on stderr.
//! - `settings`: the sections of `configs/config.yaml` the CLI reads.
//!
//! The CLI owns no protocol and no SQL of its own: Redis through `seckill_client`, MySQL
//! through `seckill_db`, tokens and account rules from `seckill_core`.

mod commands;
mod settings;

use clap::{Parser, Subcommand};
use commands::{activity, inspect, members, users};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "seckill", version, about = "seckill admin CLI")]
struct Cli {
    /// Configuration file (default: configs/config.yaml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Overrides redis.url.
    #[arg(long, global = true)]
    redis_url: Option<String>,
    /// Overrides mysql.url.
    #[arg(long, global = true)]
    mysql_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Activities.
    Activity {
        #[command(subcommand)]
        command: ActivityCommand,
    },
    /// Users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Stream length, consumer-group lag, pending and dead letters per activity.
    Lag {
        /// Refresh every --interval seconds until Ctrl-C.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value_t = 2)]
        interval: u64,
    },
    /// Compare Redis with MySQL for an activity; exit status 1 on drift.
    Audit { activity: String },
    /// Live gateways and workers registered in etcd (needs etcd.endpoints).
    Members,
    /// Database schema.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ActivityCommand {
    /// Create an activity in MySQL and preheat it into Redis; prints the id alone on stdout.
    Create(activity::CreateActivity),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create N users (bulk inserts) and write one valid JWT per line to FILE.
    Seed(users::SeedUsers),
    /// Create an administrator (password from SECKILL_ADMIN_PASSWORD or --password-stdin).
    CreateAdmin(users::CreateAdmin),
    /// Make an existing user an administrator.
    Promote(users::Promote),
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply pending migrations.
    Migrate,
    /// Revert every migration.
    Rollback,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = seckill_runtime::telemetry::init_logging(
        "info",
        seckill_runtime::telemetry::LogOutput {
            json: false,
            stderr: true,
            non_blocking: false,
        },
        &seckill_runtime::TelemetrySettings::default(),
        "seckill-cli",
    );
    let settings = match settings::load(
        cli.config.as_deref(),
        cli.redis_url.clone(),
        cli.mysql_url.clone(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Activity {
            command: ActivityCommand::Create(args),
        } => activity::create(&settings, args).await,
        Command::Users {
            command: UsersCommand::Seed(args),
        } => users::seed(&settings, args).await,
        Command::Users {
            command: UsersCommand::CreateAdmin(args),
        } => match commands::pool(&settings).await {
            Ok(pool) => users::create_admin(&pool, args).await,
            Err(e) => Err(e),
        },
        Command::Users {
            command: UsersCommand::Promote(args),
        } => match commands::pool(&settings).await {
            Ok(pool) => users::promote(&pool, args).await,
            Err(e) => Err(e),
        },
        Command::Lag { watch, interval } => inspect::lag(&settings, watch, interval).await,
        Command::Audit { activity } => inspect::audit(&settings, &activity).await,
        Command::Members => members::list(&settings).await,
        Command::Db { command } => {
            commands::db::run(&settings, matches!(command, DbCommand::Rollback)).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }
}
