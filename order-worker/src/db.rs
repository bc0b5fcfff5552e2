//! MySQL access of the worker: the pool, migrations, the one multi-row insert per batch and
//! the payment-window lookup.

use crate::plan::{skipped_rows, DeadReason, OrderRow};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

/// Most rows in one insert (MySQL allows 65,535 placeholders; a row uses 8).
pub const MAX_ROWS_PER_INSERT: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database is unreachable or busy (connection, pool, deadlock, lock wait):
    /// retry the same work later.
    #[error("database unavailable: {0}")]
    Transient(#[source] sqlx::Error),
    /// The database refused the statement for what it contains: retrying cannot help.
    #[error("database refused the statement: {0}")]
    Rejected(#[source] sqlx::Error),
}

impl DbError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Transient(_))
    }
}

/// MySQL/MariaDB error numbers that mean "try again", not "this data is wrong".
pub fn is_transient_code(number: u16) -> bool {
    matches!(
        number,
        1040 // too many connections
            | 1053 // server shutdown in progress
            | 1205 // lock wait timeout
            | 1213 // deadlock
            | 1290 // read-only (failover in progress)
            | 1836 // read-only mode
            | 1927 // connection killed
            | 2002 | 2003 | 2006 | 2013 // client: cannot connect, gone away, lost
            | 4031 // disconnected by the server for inactivity
    )
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) => {
                let number = d
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .map(|m| m.number());
                match number {
                    Some(n) if !is_transient_code(n) => DbError::Rejected(e),
                    _ => DbError::Transient(e),
                }
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. } => DbError::Rejected(e),
            _ => DbError::Transient(e),
        }
    }
}

/// Builds a lazy pool: nothing connects until the first query, so the worker starts (and
/// serves `/metrics`) while MySQL is still down.
pub fn pool(
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

/// Applies every migration in `migrations/` that is not applied yet.
pub async fn migrate(pool: &MySqlPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations").run(pool).await
}

/// Reverts applied migrations down to (not including) `target` (0 reverts all).
pub async fn rollback(pool: &MySqlPool, target: i64) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations").undo(pool, target).await
}

fn datetime(ms: i64) -> chrono::NaiveDateTime {
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
    pub skipped: Vec<(usize, DeadReason)>,
}

/// `<verb> INTO orders (...) VALUES (...), ...` for `rows`: the worker's `INSERT IGNORE` and
/// the drain benchmark's plain `INSERT` baseline build the same statement.
pub fn orders_insert<'a>(verb: &str, rows: &'a [(usize, OrderRow)]) -> QueryBuilder<'a, MySql> {
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

/// Inserts `rows` with one multi-row `INSERT IGNORE` in one transaction. Rows already present
/// for the same reservation are duplicates (a redelivery); rows skipped for any other reason
/// are returned in `skipped`, found in the same transaction before it commits.
pub async fn insert_orders(
    pool: &MySqlPool,
    rows: &[(usize, OrderRow)],
) -> Result<Inserted, DbError> {
    if rows.is_empty() {
        return Ok(Inserted::default());
    }
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
        let mut q = orders_insert("INSERT IGNORE", chunk);
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

/// Payment windows of the given activities that have a row; absent ones are not in the map.
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
