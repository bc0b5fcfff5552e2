//! The connection pool and the one migrator (`migrations/` at the repository root, embedded).

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
    Ok(MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
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
