//! Orders: every statement on `orders`, and the order state machine shared by the gateway
//! (pay, cancel), the worker (insert, expire, release) and the CLI.
//!
//! ```text
//!            pay (before expires_at)
//! pending ───────────────────────────▶ paid
//!    │ cancel (owner)  │ expire (expires_at passed)
//!    ▼                 ▼
//! cancelled         expired ──▶ SECKILL.RELEASE ──▶ released_at set
//! ```
//!
//! Every change is a conditional `UPDATE ... WHERE status = 'pending'`, so when pay, cancel
//! and expire race on one row, InnoDB's row lock lets exactly one of them win; pay and expire
//! both compare `expires_at` with the database's clock (`NOW(3)`), so they can never both see
//! the window on their side. Stock goes back to Redis only after a row left `pending` for
//! `cancelled`/`expired`, and `released_at` records that `SECKILL.RELEASE` ran (the sweeper
//! repairs rows where it did not: RELEASE is idempotent).

use crate::error::{error_number, DbError};
use chrono::NaiveDateTime;
use redis::aio::ConnectionLike;
use seckill_client::{sale, ClientError};
use seckill_core::ActivityId;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// Most rows in one insert (MySQL allows 65,535 placeholders; a row uses 8).
pub const MAX_ROWS_PER_INSERT: usize = 5_000;

/// An order as the API shows it.
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

impl OrderRow {
    /// Pending or paid: the order holds its stock.
    pub fn is_live(&self) -> bool {
        self.status == "pending" || self.status == "paid"
    }
}

const ORDER_COLUMNS: &str = "id, reservation_id, activity_id, product_id, user_id, quantity, \
     amount_cents, CAST(status AS CHAR) AS status, reserved_at, expires_at, paid_at, released_at \
     FROM orders";

/// The user's newest orders.
pub async fn of_user(pool: &MySqlPool, user: &str, limit: u32) -> Result<Vec<OrderRow>, DbError> {
    let sql = format!("SELECT {ORDER_COLUMNS} WHERE user_id = ? ORDER BY id DESC LIMIT ?");
    Ok(sqlx::query_as::<_, OrderRow>(&sql)
        .bind(user)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub async fn by_id(pool: &MySqlPool, id: u64) -> Result<Option<OrderRow>, DbError> {
    let sql = format!("SELECT {ORDER_COLUMNS} WHERE id = ?");
    Ok(sqlx::query_as::<_, OrderRow>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The user's newest order in an activity, live or not.
pub async fn latest_of_user(
    pool: &MySqlPool,
    activity: u64,
    user: &str,
) -> Result<Option<OrderRow>, DbError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} WHERE activity_id = ? AND user_id = ? ORDER BY id DESC LIMIT 1"
    );
    Ok(sqlx::query_as::<_, OrderRow>(&sql)
        .bind(activity)
        .bind(user)
        .fetch_optional(pool)
        .await?)
}

/// The row the worker writes for one reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub activity_id: u64,
    pub reservation_id: String,
    pub product_id: String,
    pub user_id: String,
    pub quantity: u32,
    pub amount_cents: u64,
    pub reserved_at_ms: i64,
    pub expires_at_ms: i64,
}

fn datetime(ms: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc()
}

/// Outcome of one batch insert.
#[derive(Debug, Default)]
pub struct Inserted {
    /// Rows new in the table.
    pub inserted: u64,
    /// Rows that were already there from an earlier delivery.
    pub duplicates: u64,
    /// Rows skipped because of another unique key (index in the batch, reason).
    pub skipped: Vec<(usize, String)>,
}

/// `<verb> INTO orders (...) VALUES (...), ...` for `rows`: the worker's `INSERT IGNORE` and
/// the drain benchmark's plain `INSERT` baseline build the same statement.
pub fn insert_statement<'a>(verb: &str, rows: &'a [(usize, NewOrder)]) -> QueryBuilder<'a, MySql> {
    let mut q: QueryBuilder<MySql> = QueryBuilder::new(format!(
        "{verb} INTO orders (activity_id, reservation_id, product_id, user_id, \
         quantity, amount_cents, reserved_at, expires_at) "
    ));
    q.push_values(rows, |mut b, (_, r)| {
        b.push_bind(r.activity_id)
            .push_bind(&r.reservation_id)
            .push_bind(&r.product_id)
            .push_bind(&r.user_id)
            .push_bind(r.quantity)
            .push_bind(r.amount_cents)
            .push_bind(datetime(r.reserved_at_ms))
            .push_bind(datetime(r.expires_at_ms));
    });
    q
}

/// Inserts `rows` (each with its index in the caller's batch) with one multi-row
/// `INSERT IGNORE` per chunk, in one transaction. Rows already present for the same
/// reservation are duplicates (a redelivery); rows skipped for any other reason are returned
/// in `skipped`, found in the same transaction before it commits.
pub async fn insert_batch(
    pool: &MySqlPool,
    rows: &[(usize, NewOrder)],
) -> Result<Inserted, DbError> {
    if rows.is_empty() {
        return Ok(Inserted::default());
    }
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
        let mut q = insert_statement("INSERT IGNORE", chunk);
        inserted += q.build().execute(&mut *tx).await?.rows_affected();
    }
    let mut out = Inserted {
        inserted,
        ..Inserted::default()
    };
    if inserted < rows.len() as u64 {
        let mut present = HashSet::new();
        for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
            let mut q: QueryBuilder<MySql> =
                QueryBuilder::new("SELECT activity_id, reservation_id FROM orders WHERE ");
            let mut sep = q.separated(" OR ");
            for (_, r) in chunk {
                sep.push("(activity_id = ")
                    .push_bind_unseparated(r.activity_id)
                    .push_unseparated(" AND reservation_id = ")
                    .push_bind_unseparated(&r.reservation_id)
                    .push_unseparated(")");
            }
            for row in q.build().fetch_all(&mut *tx).await? {
                present.insert((row.try_get::<u64, _>(0)?, row.try_get::<String, _>(1)?));
            }
        }
        out.skipped = skipped_rows(rows, &present);
        out.duplicates = rows.len() as u64 - inserted - out.skipped.len() as u64;
    }
    tx.commit().await?;
    Ok(out)
}

/// After an `INSERT IGNORE` that inserted fewer rows than it was given: the rows that are
/// in the table now (`present`, as `(activity, reservation)`) were inserted or were already
/// there from an earlier delivery; every other row was silently skipped by a *different*
/// unique key (a second live order of the same user) and must not be lost quietly.
pub fn skipped_rows<'a>(
    rows: impl IntoIterator<Item = &'a (usize, NewOrder)>,
    present: &HashSet<(u64, String)>,
) -> Vec<(usize, String)> {
    rows.into_iter()
        .filter(|(_, r)| !present.contains(&(r.activity_id, r.reservation_id.clone())))
        .map(|(i, r)| {
            (
                *i,
                format!(
                    "user '{}' already holds a live order in activity {}",
                    r.user_id, r.activity_id
                ),
            )
        })
        .collect()
}

/// Whether the statement lost a lock conflict (deadlock 1213, lock wait timeout 1205): InnoDB
/// rolled it back and running it again is the documented remedy.
pub fn is_lock_conflict(e: &sqlx::Error) -> bool {
    matches!(error_number(e), Some(1205 | 1213))
}

/// Runs a single-statement change again (up to 5 times) when it lost a lock conflict. Safe
/// because every statement here is conditional: a retry after a lost race changes nothing.
pub async fn retry_conflicts<T, F, Fut>(mut f: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0u64;
    loop {
        match f().await {
            Err(e) if attempt < 5 && is_lock_conflict(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(2 * attempt)).await;
            }
            r => return r,
        }
    }
}

/// `pending -> paid`, only while the payment window is open (by the database's clock, the
/// one expiry uses). `user` restricts it to the owner (the API); `None` is for tools and
/// tests. Returns whether this call won (false: not pending, not the owner's, or expired).
pub async fn pay(pool: &MySqlPool, order_id: u64, user: Option<&str>) -> Result<bool, DbError> {
    let r = retry_conflicts(|| {
        sqlx::query(
            "UPDATE orders SET status = 'paid', paid_at = NOW(3) \
             WHERE id = ? AND (? IS NULL OR user_id = ?) AND status = 'pending' \
             AND expires_at > NOW(3)",
        )
        .bind(order_id)
        .bind(user)
        .bind(user)
        .execute(pool)
    })
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `pending -> cancelled` by its owner (`user`), whatever the time. Returns whether this call
/// did it; the caller then returns the stock with [`release`].
pub async fn cancel(pool: &MySqlPool, order_id: u64, user: &str) -> Result<bool, DbError> {
    let r = retry_conflicts(|| {
        sqlx::query(
            "UPDATE orders SET status = 'cancelled' \
             WHERE id = ? AND user_id = ? AND status = 'pending'",
        )
        .bind(order_id)
        .bind(user)
        .execute(pool)
    })
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Expires pending orders whose payment window is over, oldest first. Returns how many.
pub async fn expire_due(pool: &MySqlPool, limit: u32) -> Result<u64, DbError> {
    let r = retry_conflicts(|| {
        sqlx::query(
            "UPDATE orders SET status = 'expired' \
             WHERE status = 'pending' AND expires_at <= NOW(3) ORDER BY expires_at LIMIT ?",
        )
        .bind(limit)
        .execute(pool)
    })
    .await?;
    Ok(r.rows_affected())
}

/// A cancelled or expired order whose stock has not been returned yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreleased {
    pub id: u64,
    pub activity_id: u64,
    pub reservation_id: String,
}

pub async fn unreleased(pool: &MySqlPool, limit: u32) -> Result<Vec<Unreleased>, DbError> {
    let rows = sqlx::query(
        "SELECT id, activity_id, reservation_id FROM orders \
         WHERE status IN ('cancelled', 'expired') AND released_at IS NULL ORDER BY id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Unreleased {
                id: r.try_get(0)?,
                activity_id: r.try_get(1)?,
                reservation_id: r.try_get(2)?,
            })
        })
        .collect()
}

/// Records that the stock of these orders is back in Redis.
pub async fn mark_released(pool: &MySqlPool, ids: &[u64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    retry_conflicts(|| {
        let mut q = QueryBuilder::<MySql>::new(
            "UPDATE orders SET released_at = NOW(3) WHERE released_at IS NULL AND id IN (",
        );
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        q.push(")");
        async move { q.build().execute(pool).await }
    })
    .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("SECKILL.RELEASE failed: {0}")]
    Redis(#[from] ClientError),
    #[error("updating the order failed: {0}")]
    Db(#[from] DbError),
}

impl Unreleased {
    /// The activity id as the module knows it.
    pub fn activity(&self) -> Result<ActivityId, ClientError> {
        ActivityId::parse(self.activity_id.to_string())
            .map_err(|e| ClientError::Argument(e.to_string()))
    }
}

/// Returns the stock of one order already moved to cancelled/expired with `SECKILL.RELEASE`
/// (idempotent), without stamping `released_at` (the sweeper batches that with
/// [`mark_released`]). Returns the quantity Redis gave back (0 if it already had).
pub async fn release_in_redis<C: ConnectionLike + Send>(
    redis: &mut C,
    order: &Unreleased,
) -> Result<u64, ClientError> {
    sale::release(redis, &order.activity()?, &order.reservation_id).await
}

/// Returns the stock of one cancelled/expired order with `redis_release` (the caller's
/// `SECKILL.RELEASE` of `(activity, reservation)`), then stamps `released_at`: the path of a
/// buyer's cancel, the same two steps as the sweeper's. Safe to repeat.
pub async fn release<F, Fut>(
    pool: &MySqlPool,
    order: &Unreleased,
    redis_release: F,
) -> Result<u64, ReleaseError>
where
    F: FnOnce(ActivityId, String) -> Fut,
    Fut: Future<Output = Result<u64, ClientError>>,
{
    let returned = redis_release(order.activity()?, order.reservation_id.clone()).await?;
    mark_released(pool, &[order.id]).await?;
    Ok(returned)
}
