//! Order state changes shared by the sweeper, the tests and (if it wishes) the gateway.
//!
//! Every change is a conditional `UPDATE ... WHERE status = 'pending'`, so when pay, cancel
//! and expire race on one row, InnoDB's row lock lets exactly one of them win. Stock goes
//! back to Redis only after a row left `pending` for `cancelled`/`expired`, and
//! `released_at` records that `SECKILL.RELEASE` ran (the sweeper repairs rows where it did not).

use redis::aio::ConnectionLike;
use sqlx::{MySqlPool, Row};
use std::future::Future;
use std::time::Duration;

/// Whether the statement lost a lock conflict (deadlock 1213, lock wait timeout 1205): InnoDB
/// rolled it back and running it again is the documented remedy.
pub fn is_lock_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|m| matches!(m.number(), 1205 | 1213))
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

/// Marks a pending order paid. Returns whether this call won (false: it was not pending,
/// or its payment window is over).
pub async fn pay(pool: &MySqlPool, order_id: u64) -> Result<bool, sqlx::Error> {
    let r = retry_conflicts(|| {
        sqlx::query(
            "UPDATE orders SET status = 'paid', paid_at = NOW(3) \
             WHERE id = ? AND status = 'pending' AND expires_at > NOW(3)",
        )
        .bind(order_id)
        .execute(pool)
    })
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Expires pending orders whose payment window is over, oldest first. Returns how many.
pub async fn expire_due(pool: &MySqlPool, limit: u32) -> Result<u64, sqlx::Error> {
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

pub async fn unreleased(pool: &MySqlPool, limit: u32) -> Result<Vec<Unreleased>, sqlx::Error> {
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

/// Returns the stock of one order with `SECKILL.RELEASE` (idempotent: 0 when already done).
pub async fn release<C: ConnectionLike + Send>(
    redis: &mut C,
    order: &Unreleased,
) -> Result<i64, redis::RedisError> {
    redis::cmd("SECKILL.RELEASE")
        .arg(order.activity_id.to_string())
        .arg(&order.reservation_id)
        .query_async(redis)
        .await
}

/// Records that the stock of these orders is back in Redis.
pub async fn mark_released(pool: &MySqlPool, ids: &[u64]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    retry_conflicts(|| {
        let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
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
