//! Activities (and the products they sell): every statement on `activities` and `products`,
//! and [`create`], the one way an activity comes to exist (its row, then preheated into Redis,
//! committed only once Redis holds it).

use crate::error::DbError;
use chrono::{DateTime, NaiveDateTime, Utc};
use redis::aio::ConnectionLike;
use seckill_client::{sale, ClientError, CreateArgs};
use seckill_core::ActivityId;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::collections::HashMap;
use std::future::Future;

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

const ACTIVITY_COLUMNS: &str = "a.id, a.product_id, p.name AS product_name, a.title, a.stock, \
     a.per_user_limit, a.price_cents, a.start_at, a.end_at, a.payment_window_secs \
     FROM activities a JOIN products p ON p.id = a.product_id";

/// The newest `limit` activities.
pub async fn list(pool: &MySqlPool, limit: u32) -> Result<Vec<ActivityRow>, DbError> {
    let sql = format!("SELECT {ACTIVITY_COLUMNS} ORDER BY a.id DESC LIMIT ?");
    Ok(sqlx::query_as::<_, ActivityRow>(&sql)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub async fn get(pool: &MySqlPool, id: u64) -> Result<Option<ActivityRow>, DbError> {
    let sql = format!("SELECT {ACTIVITY_COLUMNS} WHERE a.id = ?");
    Ok(sqlx::query_as::<_, ActivityRow>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Payment windows (seconds) of the given activities that have a row; absent ones are not in
/// the map.
pub async fn payment_windows(pool: &MySqlPool, ids: &[u64]) -> Result<HashMap<u64, u64>, DbError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q: QueryBuilder<MySql> =
        QueryBuilder::new("SELECT id, payment_window_secs FROM activities WHERE id IN (");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    q.push(")");
    let mut out = HashMap::new();
    for row in q.build().fetch_all(pool).await? {
        out.insert(
            row.try_get::<u64, _>(0)?,
            u64::from(row.try_get::<u32, _>(1)?),
        );
    }
    Ok(out)
}

/// Which product a new activity sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductRef {
    Existing(u64),
    /// A new product row with this name (and the activity's price).
    New(String),
}

/// A new activity, already checked by its caller (HTTP body or CLI flags).
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    pub title: String,
    pub product: ProductRef,
    pub price_cents: u64,
    pub stock: u64,
    pub per_user_limit: u64,
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub payment_window_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("product {0} does not exist")]
    NoProduct(u64),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("preheating the activity into Redis (SECKILL.CREATE) failed: {0}")]
    Redis(#[from] ClientError),
}

impl From<sqlx::Error> for CreateError {
    fn from(e: sqlx::Error) -> Self {
        CreateError::Db(e.into())
    }
}

fn unix_ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// What [`create`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub activity_id: u64,
    pub product_id: u64,
}

/// Writes the product (when new) and the activity in one transaction, preheats Redis with
/// `preheat` (`SECKILL.CREATE` of the given arguments) before the commit, then commits: if
/// Redis refuses, the rows roll back and nothing half-exists. [`preheat_with`] is the plain
/// `preheat` for a connection.
pub async fn create<F, Fut>(
    pool: &MySqlPool,
    preheat: F,
    new: &NewActivity,
) -> Result<Created, CreateError>
where
    F: FnOnce(CreateArgs) -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
    let mut tx = pool.begin().await?;
    let product_id = match &new.product {
        ProductRef::Existing(id) => {
            let found: Option<(u64,)> = sqlx::query_as("SELECT id FROM products WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            found.map(|(id,)| id).ok_or(CreateError::NoProduct(*id))?
        }
        ProductRef::New(name) => {
            sqlx::query("INSERT INTO products (name, price_cents) VALUES (?, ?)")
                .bind(name)
                .bind(new.price_cents)
                .execute(&mut *tx)
                .await?
                .last_insert_id()
        }
    };
    let activity_id = sqlx::query(
        "INSERT INTO activities (product_id, title, stock, per_user_limit, price_cents, \
         start_at, end_at, payment_window_secs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(product_id)
    .bind(&new.title)
    .bind(new.stock)
    .bind(new.per_user_limit)
    .bind(new.price_cents)
    .bind(new.start_at.naive_utc())
    .bind(new.end_at.map(|t| t.naive_utc()))
    .bind(new.payment_window_secs)
    .execute(&mut *tx)
    .await?
    .last_insert_id();
    let activity = ActivityId::parse(activity_id.to_string())
        .map_err(|e| ClientError::Argument(e.to_string()))?;
    preheat(CreateArgs {
        activity,
        stock: new.stock,
        limit: new.per_user_limit,
        start_ms: unix_ms(new.start_at),
        end_ms: new.end_at.map(unix_ms),
        product: product_id.to_string(),
        price_cents: new.price_cents,
    })
    .await?;
    tx.commit().await?;
    tracing::info!(
        activity = activity_id,
        stock = new.stock,
        product = product_id,
        "activity created and preheated"
    );
    Ok(Created {
        activity_id,
        product_id,
    })
}

/// `SECKILL.CREATE` on `redis`, as the `preheat` of [`create`].
pub async fn preheat_with<C: ConnectionLike + Send>(
    redis: &mut C,
    args: CreateArgs,
) -> Result<(), ClientError> {
    sale::create(redis, &args).await
}
