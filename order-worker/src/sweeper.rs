//! The payment-timeout sweeper: expires unpaid orders and returns their stock, exactly once.
//!
//! A pass (1) moves pending orders past `expires_at` to `expired` with one conditional
//! UPDATE, then (2) for every cancelled or expired row with `released_at` NULL whose next
//! attempt is due, calls `SECKILL.RELEASE` and sets `released_at`. Step 2 is also the repair
//! of a crash between a status change and its release (by the sweeper or by the gateway's
//! cancel): RELEASE is idempotent, so running it again is harmless. Only the elected leader
//! sweeps ([`crate::leader`]); even two sweepers at once would be safe, just wasteful.
//!
//! A release that fails for the row itself (its activity deleted from Redis, its
//! reservation unknown) backs off: `release_attempts` goes up and the row is not due again
//! before [`release_retry_delay`] has passed, so a pile of such rows cannot fill every pass
//! and starve the releases behind them. Redis being unreachable fails the pass instead
//! (it is nobody's row's fault), and the rows are tried again at the next pass.

use crate::config::SweeperSettings;
use crate::metrics::Metrics;
use redis::aio::ConnectionLike;
use seckill_client::ClientError;
use seckill_db::{orders, DbError, MySqlPool};
use std::time::Duration;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    pub expired: u64,
    pub released: u64,
    /// Releases that failed in this pass (the rows back off).
    pub errors: u64,
    /// Orders whose release has failed and is still not done (after this pass).
    pub stuck: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("mysql: {0}")]
    Db(#[from] DbError),
    #[error("SECKILL.RELEASE: {0}")]
    Redis(ClientError),
}

/// How long an order waits before its next release attempt after `failures` failed ones
/// in a row (at least 1): `initial` doubling per failure, at most `max`.
pub fn release_retry_delay(failures: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    initial
        .saturating_mul(1u32 << doublings)
        .min(max.max(initial))
}

/// Whether a failed RELEASE is about Redis as a whole (retry the pass) rather than the row.
fn is_redis_down(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unavailable(_) | ClientError::Timeout(_) | ClientError::OutOfMemory(_)
    )
}

/// One pass over at most `sw.batch` orders per step.
pub async fn sweep_once<C: ConnectionLike + Send>(
    pool: &MySqlPool,
    redis: &mut C,
    sw: &SweeperSettings,
    metrics: Option<&Metrics>,
) -> Result<SweepStats, SweepError> {
    let mut stats = SweepStats {
        expired: orders::expire_due(pool, sw.batch).await?,
        ..SweepStats::default()
    };
    let todo = orders::unreleased(pool, sw.batch).await?;
    let mut done = Vec::with_capacity(todo.len());
    let mut failed = Vec::new();
    let mut redis_down = None;
    for due in &todo {
        let order = &due.order;
        match orders::release_in_redis(redis, order).await {
            Ok(_) => done.push(order.id),
            Err(e) if is_redis_down(&e) => {
                stats.errors += 1;
                redis_down = Some(e);
                break;
            }
            Err(e) => {
                stats.errors += 1;
                let wait = release_retry_delay(
                    due.attempts.saturating_add(1),
                    Duration::from_millis(sw.release_backoff_initial_ms),
                    Duration::from_millis(sw.release_backoff_max_ms),
                );
                tracing::error!(order = order.id, activity = order.activity_id,
                    reservation = %order.reservation_id, error = %e, attempts = due.attempts + 1,
                    retry_in_ms = wait.as_millis() as u64, "SECKILL.RELEASE failed; backing off");
                failed.push((order.id, e.to_string(), wait));
            }
        }
    }
    orders::mark_released(pool, &done).await?;
    orders::release_failed(pool, &failed).await?;
    stats.released = done.len() as u64;
    stats.stuck = orders::stuck_releases(pool).await?;
    if let Some(m) = metrics {
        m.orders_expired_total.inc_by(stats.expired);
        m.orders_released_total.inc_by(stats.released);
        m.release_errors_total.inc_by(stats.errors);
        m.stuck_releases
            .set(i64::try_from(stats.stuck).unwrap_or(i64::MAX));
    }
    if stats.expired + stats.released + stats.errors > 0 {
        tracing::info!(
            expired = stats.expired,
            released = stats.released,
            errors = stats.errors,
            stuck = stats.stuck,
            "sweep pass"
        );
    }
    match redis_down {
        Some(e) => Err(SweepError::Redis(e)),
        None => Ok(stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let cases = [
            (0, ms(1_000)),
            (1, ms(1_000)),
            (2, ms(2_000)),
            (3, ms(4_000)),
            (9, ms(256_000)),
            (10, ms(300_000)),
            (u32::MAX, ms(300_000)),
        ];
        for (failures, want) in cases {
            assert_eq!(
                release_retry_delay(failures, ms(1_000), ms(300_000)),
                want,
                "{failures}"
            );
        }
        // A cap below the first wait never shortens it.
        assert_eq!(release_retry_delay(5, ms(1_000), ms(10)), ms(1_000));
    }
}
