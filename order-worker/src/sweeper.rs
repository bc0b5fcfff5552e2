//! The payment-timeout sweeper: expires unpaid orders and returns their stock, exactly once.
//!
//! A pass (1) moves pending orders past `expires_at` to `expired` with one conditional
//! UPDATE, then (2) for every cancelled or expired row with `released_at` NULL, calls
//! `SECKILL.RELEASE` and sets `released_at`. Step 2 is also the repair of a crash between a
//! status change and its release (by the sweeper or by the gateway's cancel): RELEASE is
//! idempotent, so running it again is harmless. Only the elected leader sweeps
//! ([`crate::leader`]); even two sweepers at once would be safe, just wasteful.

use crate::metrics::Metrics;
use redis::aio::ConnectionLike;
use seckill_db::{orders, DbError, MySqlPool};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    pub expired: u64,
    pub released: u64,
    pub errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("mysql: {0}")]
    Db(#[from] DbError),
}

/// One pass over at most `batch` orders per step.
pub async fn sweep_once<C: ConnectionLike + Send>(
    pool: &MySqlPool,
    redis: &mut C,
    batch: u32,
    metrics: Option<&Metrics>,
) -> Result<SweepStats, SweepError> {
    let mut stats = SweepStats {
        expired: orders::expire_due(pool, batch).await?,
        ..SweepStats::default()
    };
    let todo = orders::unreleased(pool, batch).await?;
    let mut done = Vec::with_capacity(todo.len());
    for order in &todo {
        match orders::release_in_redis(redis, order).await {
            Ok(_) => done.push(order.id),
            Err(e) => {
                stats.errors += 1;
                tracing::error!(order = order.id, activity = order.activity_id,
                    reservation = %order.reservation_id, error = %e, "SECKILL.RELEASE failed; will retry");
            }
        }
    }
    orders::mark_released(pool, &done).await?;
    stats.released = done.len() as u64;
    if let Some(m) = metrics {
        m.orders_expired_total.inc_by(stats.expired);
        m.orders_released_total.inc_by(stats.released);
        m.release_errors_total.inc_by(stats.errors);
    }
    if stats != SweepStats::default() {
        tracing::info!(
            expired = stats.expired,
            released = stats.released,
            errors = stats.errors,
            "sweep pass"
        );
    }
    Ok(stats)
}
