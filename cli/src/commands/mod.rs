//! One module per group of subcommands; each command returns the process exit code, with
//! results on stdout and everything else on stderr. Errors carry context.

pub(crate) mod activity;
pub(crate) mod db;
pub(crate) mod inspect;
pub(crate) mod members;
pub(crate) mod users;

use crate::settings::Settings;
use anyhow::Context;
use seckill_db::{pool, MySqlPool};
use std::time::Duration;

/// A pool on `mysql.url`, checked with one query so a wrong address fails here, clearly.
pub(crate) async fn pool(s: &Settings) -> anyhow::Result<MySqlPool> {
    let pool = pool::connect_lazy(s.mysql.url.expose(), 4, Duration::from_secs(10))?;
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .context("Failed to connect to MySQL")?;
    Ok(pool)
}

pub(crate) async fn redis(s: &Settings) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    redis::Client::open(s.redis.url.as_str())
        .context("Invalid redis.url")?
        .get_multiplexed_async_connection()
        .await
        .context("Failed to connect to Redis")
}
