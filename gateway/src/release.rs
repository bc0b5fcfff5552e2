//! Returning an order's stock: the one path shared by a buyer's cancel and the worker's expiry
//! sweeper, so stock comes back exactly once whichever happens first.
//!
//! 1. A conditional transition `pending -> cancelled` (or `-> expired`); only the caller whose
//!    `UPDATE` changed the row goes on, so a pay and a cancel racing cannot both win.
//! 2. `SECKILL.RELEASE <activity> <reservation>`: idempotent in the module (a second call
//!    returns 0 and changes nothing).
//! 3. `released_at = now` on the row. A crash between 2 and 3 leaves a cancelled/expired row
//!    with `released_at IS NULL`; running [`release_stock`] again for it is safe (step 2 is
//!    idempotent), which is how the sweeper repairs it.

use chrono::NaiveDateTime;
use redis::aio::ConnectionLike;
use sqlx::MySqlPool;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("SECKILL.RELEASE failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("updating the order failed: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Which end state a release comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndState {
    /// The buyer cancelled.
    Cancelled,
    /// The payment window passed (the worker's sweeper).
    Expired,
}

impl EndState {
    pub fn as_str(self) -> &'static str {
        match self {
            EndState::Cancelled => "cancelled",
            EndState::Expired => "expired",
        }
    }
}

/// Moves a pending order to `to`. `user` restricts it to the owner (a cancel); `None` is for
/// the sweeper, which also requires `expires_at <= now`. Returns whether this call did it.
pub async fn end_order(
    db: &MySqlPool,
    order_id: u64,
    user: Option<&str>,
    to: EndState,
    now: NaiveDateTime,
) -> Result<bool, sqlx::Error> {
    let done = match (to, user) {
        (EndState::Cancelled, Some(user)) => {
            sqlx::query(
                "UPDATE orders SET status = 'cancelled' \
                 WHERE id = ? AND user_id = ? AND status = 'pending'",
            )
            .bind(order_id)
            .bind(user)
            .execute(db)
            .await?
        }
        (EndState::Cancelled, None) => {
            sqlx::query(
                "UPDATE orders SET status = 'cancelled' WHERE id = ? AND status = 'pending'",
            )
            .bind(order_id)
            .execute(db)
            .await?
        }
        (EndState::Expired, _) => {
            sqlx::query(
                "UPDATE orders SET status = 'expired' \
                 WHERE id = ? AND status = 'pending' AND expires_at <= ?",
            )
            .bind(order_id)
            .bind(now)
            .execute(db)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Returns the stock of an order already moved to cancelled/expired, then stamps
/// `released_at`, with exactly the calls the worker's sweeper makes for an expired order
/// (`seckill_worker::orders::{release, mark_released}`), so cancel and expiry share one path.
/// Safe to repeat. Returns the quantity Redis gave back (0 if it already had).
pub async fn release_stock<C: ConnectionLike + Send>(
    db: &MySqlPool,
    redis: &mut C,
    order_id: u64,
    activity_id: u64,
    reservation_id: &str,
) -> Result<u64, ReleaseError> {
    let order = seckill_worker::orders::Unreleased {
        id: order_id,
        activity_id,
        reservation_id: reservation_id.to_owned(),
    };
    let returned = seckill_worker::orders::release(redis, &order).await?;
    seckill_worker::orders::mark_released(db, &[order_id]).await?;
    Ok(u64::try_from(returned).unwrap_or(0))
}
