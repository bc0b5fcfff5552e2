//! The SQL the gateway runs (accounts, activities, orders). Every statement goes through
//! [`Db::timed`], so a slow or dead MySQL gives 503 within `gateway.mysql_timeout_ms`.

use crate::error::ApiError;
use chrono::NaiveDateTime;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub struct Db {
    pub pool: MySqlPool,
    timeout: Duration,
}

/// A failed statement: a unique-key clash is told apart because callers map it to 409.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("duplicate key")]
    Duplicate,
    #[error("mysql did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Duplicate => ApiError::Conflict("already exists".into()),
            DbError::Timeout(_)
            | DbError::Sql(sqlx::Error::PoolTimedOut)
            | DbError::Sql(sqlx::Error::Io(_)) => {
                tracing::warn!(error = %e, "mysql call failed");
                ApiError::Unavailable("the database is unavailable; try again".into())
            }
            DbError::Sql(e) => {
                ApiError::internal(anyhow::Error::new(e).context("SQL statement failed"))
            }
        }
    }
}

fn classify(e: sqlx::Error) -> DbError {
    if e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
    {
        DbError::Duplicate
    } else {
        DbError::Sql(e)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: u64,
    pub password_hash: String,
    pub role: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: u64,
    pub product_id: u64,
    pub product_name: String,
    pub title: String,
    pub stock: u64,
    pub per_user_limit: u32,
    pub price_cents: u64,
    pub start_at: NaiveDateTime,
    pub end_at: Option<NaiveDateTime>,
    pub payment_window_secs: u32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: u64,
    pub reservation_id: String,
    pub activity_id: u64,
    pub product_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub amount_cents: u64,
    pub status: String,
    pub reserved_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    pub released_at: Option<NaiveDateTime>,
}

const ACTIVITY_COLUMNS: &str = "a.id, a.product_id, p.name AS product_name, a.title, a.stock, \
     a.per_user_limit, a.price_cents, a.start_at, a.end_at, a.payment_window_secs \
     FROM activities a JOIN products p ON p.id = a.product_id";

const ORDER_COLUMNS: &str = "id, reservation_id, activity_id, product_id, user_id, quantity, \
     amount_cents, CAST(status AS CHAR) AS status, reserved_at, expires_at, paid_at, released_at \
     FROM orders";

/// What a new activity row holds.
pub struct ActivityInsert<'a> {
    pub product_id: u64,
    pub title: &'a str,
    pub stock: u64,
    pub per_user_limit: u64,
    pub price_cents: u64,
    pub start_at: NaiveDateTime,
    pub end_at: Option<NaiveDateTime>,
    pub payment_window_secs: u64,
}

impl Db {
    /// A lazy pool: the gateway starts (and the hot path serves) while MySQL is down.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let options = MySqlConnectOptions::from_str(url).context("Invalid mysql URL")?;
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        Ok(Self { pool, timeout })
    }

    /// Runs `fut` under the statement deadline.
    pub async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, DbError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(DbError::Timeout(self.timeout)),
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("../migrations")
            .run(&self.pool)
            .await
            .map_err(|e| anyhow::anyhow!("Failed to apply migrations: {e}"))
    }

    pub async fn insert_user(
        &self,
        username: &str,
        hash: &str,
        role: &str,
    ) -> Result<u64, DbError> {
        let q = sqlx::query("INSERT INTO users (username, password_hash, role) VALUES (?, ?, ?)")
            .bind(username)
            .bind(hash)
            .bind(role)
            .execute(&self.pool);
        Ok(self.timed(q).await?.last_insert_id())
    }

    /// Creates the user unless the name exists (dev-mode seeding).
    pub async fn ensure_user(
        &self,
        username: &str,
        hash: &str,
        role: &str,
    ) -> Result<bool, DbError> {
        let q = sqlx::query(
            "INSERT IGNORE INTO users (username, password_hash, role) VALUES (?, ?, ?)",
        )
        .bind(username)
        .bind(hash)
        .bind(role)
        .execute(&self.pool);
        Ok(self.timed(q).await?.rows_affected() == 1)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, DbError> {
        let q = sqlx::query_as::<_, UserRow>(
            "SELECT id, CAST(password_hash AS CHAR) AS password_hash, CAST(role AS CHAR) AS role \
             FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool);
        self.timed(q).await
    }

    pub async fn activities(&self, limit: u32) -> Result<Vec<ActivityRow>, DbError> {
        let sql = format!("SELECT {ACTIVITY_COLUMNS} ORDER BY a.id DESC LIMIT ?");
        let q = sqlx::query_as::<_, ActivityRow>(&sql)
            .bind(limit)
            .fetch_all(&self.pool);
        self.timed(q).await
    }

    pub async fn activity(&self, id: u64) -> Result<Option<ActivityRow>, DbError> {
        let sql = format!("SELECT {ACTIVITY_COLUMNS} WHERE a.id = ?");
        let q = sqlx::query_as::<_, ActivityRow>(&sql)
            .bind(id)
            .fetch_optional(&self.pool);
        self.timed(q).await
    }

    pub async fn orders_of(&self, user: &str, limit: u32) -> Result<Vec<OrderRow>, DbError> {
        let sql = format!("SELECT {ORDER_COLUMNS} WHERE user_id = ? ORDER BY id DESC LIMIT ?");
        let q = sqlx::query_as::<_, OrderRow>(&sql)
            .bind(user)
            .bind(limit)
            .fetch_all(&self.pool);
        self.timed(q).await
    }

    pub async fn order(&self, id: u64) -> Result<Option<OrderRow>, DbError> {
        let sql = format!("SELECT {ORDER_COLUMNS} WHERE id = ?");
        let q = sqlx::query_as::<_, OrderRow>(&sql)
            .bind(id)
            .fetch_optional(&self.pool);
        self.timed(q).await
    }

    /// The order of one reservation (written by the worker).
    pub async fn order_of_reservation(
        &self,
        activity: u64,
        reservation: &str,
    ) -> Result<Option<OrderRow>, DbError> {
        let sql = format!("SELECT {ORDER_COLUMNS} WHERE activity_id = ? AND reservation_id = ?");
        let q = sqlx::query_as::<_, OrderRow>(&sql)
            .bind(activity)
            .bind(reservation)
            .fetch_optional(&self.pool);
        self.timed(q).await
    }

    /// The user's newest order in an activity, live or not.
    pub async fn latest_order(
        &self,
        activity: u64,
        user: &str,
    ) -> Result<Option<OrderRow>, DbError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} WHERE activity_id = ? AND user_id = ? ORDER BY id DESC LIMIT 1"
        );
        let q = sqlx::query_as::<_, OrderRow>(&sql)
            .bind(activity)
            .bind(user)
            .fetch_optional(&self.pool);
        self.timed(q).await
    }

    /// `pending -> paid`, only while the payment window is open. Returns whether it happened.
    pub async fn pay(&self, id: u64, user: &str, now: NaiveDateTime) -> Result<bool, DbError> {
        let q = sqlx::query(
            "UPDATE orders SET status = 'paid', paid_at = ? \
             WHERE id = ? AND user_id = ? AND status = 'pending' AND expires_at > ?",
        )
        .bind(now)
        .bind(id)
        .bind(user)
        .bind(now)
        .execute(&self.pool);
        Ok(self.timed(q).await?.rows_affected() == 1)
    }
}
