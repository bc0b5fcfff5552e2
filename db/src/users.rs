//! Accounts: every statement on `users`.

use crate::error::DbError;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: u64,
    pub password_hash: String,
    pub role: String,
}

/// Rows per multi-row insert of [`insert_many`].
const CHUNK: usize = 5_000;

/// Inserts a user; [`DbError::Duplicate`] when the name is taken.
pub async fn insert(
    pool: &MySqlPool,
    username: &str,
    hash: &str,
    role: &str,
) -> Result<u64, DbError> {
    let r = sqlx::query("INSERT INTO users (username, password_hash, role) VALUES (?, ?, ?)")
        .bind(username)
        .bind(hash)
        .bind(role)
        .execute(pool)
        .await?;
    Ok(r.last_insert_id())
}

/// Inserts a user unless the name exists; returns whether it was created.
pub async fn insert_if_absent(
    pool: &MySqlPool,
    username: &str,
    hash: &str,
    role: &str,
) -> Result<bool, DbError> {
    let r =
        sqlx::query("INSERT IGNORE INTO users (username, password_hash, role) VALUES (?, ?, ?)")
            .bind(username)
            .bind(hash)
            .bind(role)
            .execute(pool)
            .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn by_name(pool: &MySqlPool, username: &str) -> Result<Option<UserRow>, DbError> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, CAST(password_hash AS CHAR) AS password_hash, CAST(role AS CHAR) AS role \
         FROM users WHERE username = ?",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?)
}

/// The role of `username`, `None` when there is no such user.
pub async fn role_of(pool: &MySqlPool, username: &str) -> Result<Option<String>, DbError> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT CAST(role AS CHAR) FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    Ok(found.map(|(r,)| r))
}

/// The role of the user with id `id`, `None` when there is no such user (the gateway checks
/// it on every admin request, so a demoted or deleted admin is refused at once).
pub async fn role_by_id(pool: &MySqlPool, id: u64) -> Result<Option<String>, DbError> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT CAST(role AS CHAR) FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(found.map(|(r,)| r))
}

pub async fn set_role(pool: &MySqlPool, username: &str, role: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE users SET role = ? WHERE username = ?")
        .bind(role)
        .bind(username)
        .execute(pool)
        .await?;
    Ok(())
}

/// Inserts `names` with one password hash and role, in multi-row inserts; `progress` is told
/// how many rows each insert added.
pub async fn insert_many(
    pool: &MySqlPool,
    names: &[String],
    hash: &str,
    role: &str,
    mut progress: impl FnMut(u64),
) -> Result<(), DbError> {
    for chunk in names.chunks(CHUNK) {
        let mut q: QueryBuilder<MySql> =
            QueryBuilder::new("INSERT INTO users (username, password_hash, role) ");
        q.push_values(chunk, |mut b, name| {
            b.push_bind(name).push_bind(hash).push_bind(role);
        });
        q.build().execute(pool).await?;
        progress(chunk.len() as u64);
    }
    Ok(())
}

/// Ids of the users whose name starts with `prefix`, in id order.
pub async fn ids_with_prefix(pool: &MySqlPool, prefix: &str) -> Result<Vec<u64>, DbError> {
    let rows = sqlx::query("SELECT id FROM users WHERE username LIKE ? ORDER BY id")
        .bind(format!("{prefix}%"))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<u64, _>(0).map_err(DbError::from))
        .collect()
}
