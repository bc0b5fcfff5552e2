//! The connection pool and the one migrator (`migrations/` at the repository root, embedded).
//!
//! Two MySQL users (README, "Security"): the processes' pools connect as the
//! application user, which may only read and write rows; migrations run as the schema owner,
//! on a pool of their own ([`migrator`]). Binaries build both options from their settings
//! (`seckill_runtime::MysqlSettings::connect_options` / `migrate_options`, which add the
//! TLS files); TLS itself is sqlx's rustls (`ssl-mode`, CA, client certificate).

use crate::error::DbError;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::MySqlPool;
use std::str::FromStr;
use std::time::Duration;

/// Every migration of the schema, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A lazy pool: nothing connects until the first query, so a process starts (and serves what
/// needs no database) while MySQL is still down.
pub fn connect_lazy(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<MySqlPool, DbError> {
    let options = MySqlConnectOptions::from_str(url).map_err(DbError::Rejected)?;
    Ok(connect_lazy_with(options, max_connections, acquire_timeout))
}

/// [`connect_lazy`] with options built elsewhere (user, TLS files).
pub fn connect_lazy_with(
    options: MySqlConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options)
}

/// A one-connection pool for [`migrate`] / [`rollback`], as the schema owner.
pub fn migrator(options: MySqlConnectOptions, acquire_timeout: Duration) -> MySqlPool {
    connect_lazy_with(options, 1, acquire_timeout)
}

/// One round trip (`SELECT 1`): whether the database answers.
pub async fn ping(pool: &MySqlPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Applies every migration that is not applied yet.
pub async fn migrate(pool: &MySqlPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// Reverts applied migrations down to (not including) `target` (0 reverts all).
pub async fn rollback(pool: &MySqlPool, target: i64) -> Result<(), MigrateError> {
    MIGRATOR.undo(pool, target).await
}
