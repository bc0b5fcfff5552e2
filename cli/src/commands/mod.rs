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

/// Where Redis is: `redis.url`, or the Redis Cluster of `redis.cluster_nodes`.
pub(crate) fn target(s: &Settings) -> seckill_client::Target {
    seckill_client::Target::new(&s.redis.url, &s.redis.cluster_nodes)
}

/// A connection routed by key (the node of each activity, in a cluster).
pub(crate) async fn redis(s: &Settings) -> anyhow::Result<seckill_client::RedisConn> {
    seckill_client::cluster::connect(&target(s), REDIS_TIMEOUT)
        .await
        .context("Failed to connect to Redis")
}

/// Deadline of one Redis command (and of a connection) for the CLI.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_secs(10);
