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
use sqlx::{Connection, MySql, MySqlConnection, MySqlPool, QueryBuilder, Row};
use std::collections::{HashMap, HashSet};
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
    /// Rows refused for their own data: the user already holds another live order in the
    /// activity (index in the batch, reason naming that order's reservation).
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
/// reservation are duplicates (a redelivery). A row the insert skipped otherwise is
/// returned in `skipped` only when the cause is shown, in the same transaction before it
/// commits: another live order of the same user holds `uk_orders_live_user`. A row skipped
/// with no such clash (a changed schema, an exhausted auto-increment, ...) is not the row's
/// fault: the transaction is rolled back and [`DbError::Unexplained`] returned, so the
/// caller retries instead of dead-lettering.
///
/// After a failure that is not about the rows' data the connection is closed, not returned
/// to the pool: a session can keep what made it fail (MySQL fixes a session's database-level
/// privileges when it selects its database, so an INSERT granted again reaches only new
/// sessions), and the caller's retry must not run into it again.
///
/// `turn` is awaited once the statements are built and the transaction begun, and what it
/// returns is held while the `INSERT`s run (not through the checks and the `COMMIT`): the
/// caller's way to keep its inserts from running side by side while everything around
/// them overlaps (`async {}` for no such limit).
pub async fn insert_batch<T>(
    pool: &MySqlPool,
    rows: &[(usize, NewOrder)],
    turn: impl Future<Output = T>,
) -> Result<Inserted, DbError> {
    if rows.is_empty() {
        return Ok(Inserted::default());
    }
    let mut conn = pool.acquire().await?;
    let result = insert_batch_on(&mut conn, rows, turn).await;
    if result.as_ref().is_err_and(|e| !e.is_about_the_data()) {
        let _ = conn.close().await;
    }
    result
}

async fn insert_batch_on<T>(
    conn: &mut MySqlConnection,
    rows: &[(usize, NewOrder)],
    turn: impl Future<Output = T>,
) -> Result<Inserted, DbError> {
    // Encoding thousands of parameters is the client's biggest share of an insert: done
    // before the turn, like BEGIN's round trip.
    let mut statements: Vec<QueryBuilder<MySql>> = rows
        .chunks(MAX_ROWS_PER_INSERT)
        .map(|chunk| insert_statement("INSERT IGNORE", chunk))
        .collect();
    let mut tx = conn.begin().await?;
    let mut inserted = 0;
    {
        let _turn = turn.await;
        for q in &mut statements {
            inserted += q.build().execute(&mut *tx).await?.rows_affected();
        }
    }
    let mut out = Inserted {
        inserted,
        ..Inserted::default()
    };
    if inserted < rows.len() as u64 {
        let keys = rows
            .iter()
            .map(|(_, r)| (r.activity_id, r.reservation_id.as_str()));
        let present = present_in(&mut tx, keys).await?;
        let missing: Vec<&(usize, NewOrder)> = rows
            .iter()
            .filter(|(_, r)| !present.contains(&(r.activity_id, r.reservation_id.clone())))
            .collect();
        let holders = live_holders(&mut tx, &missing).await?;
        let (skipped, unexplained) = skipped_rows(missing, &holders);
        if let Some(first) = unexplained.first() {
            tx.rollback().await?;
            return Err(DbError::Unexplained(format!(
                "INSERT IGNORE skipped {} of {} rows (e.g. reservation {} of activity {}) \
                 although the user holds no other live order: the database, not the rows",
                unexplained.len(),
                rows.len(),
                first.reservation_id,
                first.activity_id
            )));
        }
        out.skipped = skipped;
        out.duplicates = rows.len() as u64 - inserted - out.skipped.len() as u64;
    }
    tx.commit().await?;
    Ok(out)
}

/// Which of `(activity, reservation)` have an order row, through `conn`.
async fn present_in<'a>(
    conn: &mut MySqlConnection,
    keys: impl Iterator<Item = (u64, &'a str)>,
) -> Result<HashSet<(u64, String)>, DbError> {
    let keys: Vec<(u64, &str)> = keys.collect();
    let mut present = HashSet::new();
    for chunk in keys.chunks(MAX_ROWS_PER_INSERT) {
        let mut q: QueryBuilder<MySql> =
            QueryBuilder::new("SELECT activity_id, reservation_id FROM orders WHERE ");
        let mut sep = q.separated(" OR ");
        for (activity, rid) in chunk {
            sep.push("(activity_id = ")
                .push_bind_unseparated(*activity)
                .push_unseparated(" AND reservation_id = ")
                .push_bind_unseparated(*rid)
                .push_unseparated(")");
        }
        for row in q.build().fetch_all(&mut *conn).await? {
            present.insert((row.try_get::<u64, _>(0)?, row.try_get::<String, _>(1)?));
        }
    }
    Ok(present)
}

/// Which of `(activity, reservation)` already have an order row.
pub async fn present(
    pool: &MySqlPool,
    keys: &[(u64, String)],
) -> Result<HashSet<(u64, String)>, DbError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let mut conn = pool.acquire().await?;
    present_in(&mut conn, keys.iter().map(|(a, r)| (*a, r.as_str()))).await
}

/// The reservation of the live order holding `uk_orders_live_user` for each `(activity,
/// user)` of `rows`.
async fn live_holders(
    conn: &mut MySqlConnection,
    rows: &[&(usize, NewOrder)],
) -> Result<HashMap<(u64, String), String>, DbError> {
    let mut out = HashMap::new();
    for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
        let mut q: QueryBuilder<MySql> = QueryBuilder::new(
            "SELECT activity_id, live_user_id, reservation_id FROM orders WHERE ",
        );
        let mut sep = q.separated(" OR ");
        for (_, r) in chunk {
            sep.push("(activity_id = ")
                .push_bind_unseparated(r.activity_id)
                .push_unseparated(" AND live_user_id = ")
                .push_bind_unseparated(&r.user_id)
                .push_unseparated(")");
        }
        for row in q.build().fetch_all(&mut *conn).await? {
            out.insert(
                (row.try_get::<u64, _>(0)?, row.try_get::<String, _>(1)?),
                row.try_get::<String, _>(2)?,
            );
        }
    }
    Ok(out)
}

/// After an `INSERT IGNORE` that inserted fewer rows than it was given, the rows `missing`
/// from the table: each is refused for its own data when another live order of the same
/// user holds the activity's `uk_orders_live_user` slot (`holders`: `(activity, user)` ->
/// that order's reservation), and unexplained otherwise. Returns (refused with the reason,
/// unexplained).
pub fn skipped_rows<'a>(
    missing: impl IntoIterator<Item = &'a (usize, NewOrder)>,
    holders: &HashMap<(u64, String), String>,
) -> (Vec<(usize, String)>, Vec<&'a NewOrder>) {
    let mut refused = Vec::new();
    let mut unexplained = Vec::new();
    for (i, r) in missing {
        match holders.get(&(r.activity_id, r.user_id.clone())) {
            Some(holder) if *holder != r.reservation_id => refused.push((
                *i,
                format!(
                    "user '{}' already holds a live order in activity {} (reservation {holder})",
                    r.user_id, r.activity_id
                ),
            )),
            _ => unexplained.push(r),
        }
    }
    (refused, unexplained)
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

/// An unreleased order whose (next) release attempt is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRelease {
    pub order: Unreleased,
    /// Failed `SECKILL.RELEASE` attempts so far.
    pub attempts: u32,
}

/// Cancelled or expired orders whose stock is not back yet and whose next attempt is due
/// (`next_release_at` unset or passed): rows never tried first, then by how often they
/// failed, oldest first. Rows whose release keeps failing wait out their backoff
/// ([`release_failed`]) and, when due, come after the fresh ones, so however many of them
/// there are they cannot hide a new release behind them.
pub async fn unreleased(pool: &MySqlPool, limit: u32) -> Result<Vec<DueRelease>, DbError> {
    let rows = sqlx::query(
        "SELECT id, activity_id, reservation_id, release_attempts FROM orders \
         WHERE status IN ('cancelled', 'expired') AND released_at IS NULL \
         AND (next_release_at IS NULL OR next_release_at <= NOW(3)) \
         ORDER BY release_attempts, id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DueRelease {
                order: Unreleased {
                    id: r.try_get(0)?,
                    activity_id: r.try_get(1)?,
                    reservation_id: r.try_get(2)?,
                },
                attempts: r.try_get(3)?,
            })
        })
        .collect()
}

/// Records that the stock of these orders is back in Redis (and clears any failure).
pub async fn mark_released(pool: &MySqlPool, ids: &[u64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    retry_conflicts(|| {
        let mut q = QueryBuilder::<MySql>::new(
            "UPDATE orders SET released_at = NOW(3), release_attempts = 0, \
             release_error = NULL, next_release_at = NULL WHERE released_at IS NULL AND id IN (",
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

/// Longest `release_error` kept (the column's width).
const RELEASE_ERROR_LEN: usize = 255;

/// Records failed releases: `(order id, error, wait before the next attempt)`. Each row's
/// `release_attempts` goes up by one and it is not due again before the wait is over.
pub async fn release_failed(
    pool: &MySqlPool,
    failures: &[(u64, String, Duration)],
) -> Result<(), DbError> {
    // One statement per distinct (error, wait): usually a handful per pass.
    let mut groups: HashMap<(String, u64), Vec<u64>> = HashMap::new();
    for (id, error, wait) in failures {
        let error: String = error.chars().take(RELEASE_ERROR_LEN).collect();
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        groups.entry((error, micros)).or_default().push(*id);
    }
    for ((error, micros), ids) in &groups {
        retry_conflicts(|| {
            let mut q = QueryBuilder::<MySql>::new(
                "UPDATE orders SET release_attempts = release_attempts + 1, release_error = ",
            );
            q.push_bind(error.as_str())
                .push(", next_release_at = NOW(3) + INTERVAL ")
                .push_bind(*micros)
                .push(" MICROSECOND WHERE released_at IS NULL AND id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(*id);
            }
            q.push(")");
            async move { q.build().execute(pool).await }
        })
        .await?;
    }
    Ok(())
}

/// Cancelled or expired orders whose release failed at least once and is still not done.
pub async fn stuck_releases(pool: &MySqlPool) -> Result<u64, DbError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE status IN ('cancelled', 'expired') \
         AND released_at IS NULL AND release_attempts > 0",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Where an order stands, as the trimmer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderState {
    /// Pending or paid.
    pub live: bool,
    pub paid: bool,
    /// `released_at` is set: `SECKILL.RELEASE` returned the stock.
    pub released: bool,
}

/// The state of the orders of `reservations` in `activity` (absent ones are not in the map).
pub async fn states(
    pool: &MySqlPool,
    activity: u64,
    reservations: &[&str],
) -> Result<HashMap<String, OrderState>, DbError> {
    let mut out = HashMap::with_capacity(reservations.len());
    for chunk in reservations.chunks(MAX_ROWS_PER_INSERT) {
        let mut q: QueryBuilder<MySql> = QueryBuilder::new(
            "SELECT reservation_id, CAST(status AS CHAR), released_at IS NOT NULL FROM orders \
             WHERE activity_id = ",
        );
        q.push_bind(activity).push(" AND reservation_id IN (");
        let mut sep = q.separated(", ");
        for rid in chunk {
            sep.push_bind(*rid);
        }
        q.push(")");
        for row in q.build().fetch_all(pool).await? {
            let status: String = row.try_get(1)?;
            out.insert(
                row.try_get::<String, _>(0)?,
                OrderState {
                    live: status == "pending" || status == "paid",
                    paid: status == "paid",
                    released: row.try_get::<i64, _>(2)? != 0,
                },
            );
        }
    }
    Ok(out)
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
