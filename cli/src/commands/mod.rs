//! One module per group of subcommands; each command returns the process exit code, with
//! results on stdout and everything else on stderr. Errors carry context.
//!
//! Connections are built here, once: MySQL as the application user ([`pool`]) or, for
//! `db migrate|rollback`, as the schema owner ([`migrator`]); Redis as the `cli` ACL user
//! ([`redis`]). Errors name the server by its redacted URL, never with its password.

pub(crate) mod activity;
pub(crate) mod db;
pub(crate) mod inspect;
pub(crate) mod members;
pub(crate) mod users;

use crate::settings::Settings;
use seckill_db::{pool, MySqlPool};
use seckill_runtime::config::connect_error;
use std::time::Duration;

/// How long the CLI waits for a server to accept it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool on `mysql.url` (the application user), checked with one query so a wrong address,
/// password or certificate fails here, clearly.
pub(crate) async fn pool(s: &Settings) -> anyhow::Result<MySqlPool> {
    let pool = pool::connect_lazy_with(s.mysql.connect_options()?, 4, CONNECT_TIMEOUT);
    checked(pool, &s.mysql.redacted_url()).await
}

/// A one-connection pool as the schema owner (`mysql.migrate_url`, else `mysql.url`), checked
/// the same way.
pub(crate) async fn migrator(s: &Settings) -> anyhow::Result<MySqlPool> {
    let pool = pool::migrator(s.mysql.migrate_options()?, CONNECT_TIMEOUT);
    checked(pool, &s.mysql.redacted_migrate_url()).await
}

async fn checked(pool: MySqlPool, shown: &str) -> anyhow::Result<MySqlPool> {
    match pool::ping(&pool).await {
        Ok(()) => Ok(pool),
        Err(e) => Err(connect_error(e, "MySQL", shown, "mysql.tls")),
    }
}

/// Where Redis is (`redis.url`, or the Redis Cluster of `redis.cluster_nodes`), logged in to
/// as the `cli` ACL user (`redis.users.cli`, else `redis.username`).
pub(crate) fn target(s: &Settings) -> anyhow::Result<seckill_client::Target> {
    Ok(s.redis.target("cli")?)
}

/// A connection routed by key (the node of each activity, in a cluster).
pub(crate) async fn redis(s: &Settings) -> anyhow::Result<seckill_client::RedisConn> {
    seckill_client::cluster::connect(&target(s)?, REDIS_TIMEOUT)
        .await
        .map_err(|e| connect_error(e, "Redis", &s.redis.shown(), "redis.tls"))
}

/// Deadline of one Redis command (and of a connection) for the CLI.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_secs(10);
