//! `seckill audit`: gathers both sides of an activity (Redis's record with its sale boundary
//! and trim point, buyers, stream, release markers, dead letters, and the consumer group's
//! last-delivered id and pending ids; MySQL's orders with their release state) and compares
//! them with the pure `seckill_core::audit`.

use crate::error::DbError;
use redis::aio::ConnectionLike;
use seckill_client::{lag, sale, streams, ClientError};
use seckill_core::audit::{audit, DbOrder, RedisSide, Report, Status};
use seckill_core::{keys, ActivityId, ReservationEntry};
use sqlx::{MySqlPool, Row};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: {0}")]
    Client(#[from] ClientError),
    #[error("mysql: {0}")]
    Db(#[from] DbError),
    #[error("activity id '{0}' is not numeric")]
    NotNumeric(String),
    #[error("activity '{0}' does not exist in Redis")]
    NoActivity(String),
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Db(e.into())
    }
}

/// Compares Redis and MySQL for one activity.
pub async fn audit_activity<C: ConnectionLike + Send>(
    redis: &mut C,
    pool: &MySqlPool,
    activity: &ActivityId,
    group: &str,
) -> Result<Report, AuditError> {
    let id: u64 = activity
        .as_str()
        .parse()
        .map_err(|_| AuditError::NotNumeric(activity.to_string()))?;
    let st = sale::status(redis, activity)
        .await?
        .ok_or_else(|| AuditError::NoActivity(activity.to_string()))?;
    let buyers: HashMap<String, u64> = sale::buyers(redis, activity).await?;
    let stream_key = keys::stream(activity);
    let reservations = streams::read_stream(redis, &stream_key)
        .await?
        .into_iter()
        .map(|(rid, fields)| {
            let parsed = ReservationEntry::from_fields(fields)
                .ok()
                .map(|e| (e.user.to_string(), e.qty));
            (rid, parsed)
        })
        .collect();
    let released: Vec<String> = redis::cmd("HKEYS")
        .arg(keys::released(activity))
        .query_async(redis)
        .await?;
    // A dead letter holds stock when its original entry decodes as a reservation of this
    // activity (RESERVE wrote it); a malformed one never did.
    let dead = streams::dead_letters(redis, activity)
        .await?
        .into_iter()
        .map(|d| {
            let holds = ReservationEntry::from_fields(d.entry.iter().map(|(k, v)| (k, v)))
                .is_ok_and(|e| e.activity == *activity);
            (d.reservation, holds)
        })
        .collect();
    let marks = lag::group_marks(redis, &stream_key, group).await?;
    let pending = match marks {
        Some(_) => streams::pending_ids(redis, &stream_key, group)
            .await?
            .into_iter()
            .collect(),
        None => Default::default(),
    };
    let side = RedisSide {
        total: st.total,
        remaining: st.remaining,
        buyers,
        reservations,
        released: released.into_iter().collect(),
        dead,
        last_delivered: marks.map(|m| m.last_delivered),
        pending,
        trimmed_below: st.trimmed_below,
        sale_from: st.sale_from,
    };
    let rows = sqlx::query(
        "SELECT reservation_id, user_id, quantity, CAST(status AS CHAR), released_at IS NOT NULL, \
         release_attempts, release_error FROM orders WHERE activity_id = ?",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for r in rows {
        let status: String = r.try_get(3)?;
        orders.push(DbOrder {
            reservation_id: r.try_get(0)?,
            user_id: r.try_get(1)?,
            quantity: u64::from(r.try_get::<u32, _>(2)?),
            status: Status::parse(&status).unwrap_or(Status::Pending),
            released_at_set: r.try_get::<i64, _>(4)? != 0,
            release_attempts: r.try_get(5)?,
            release_error: r.try_get(6)?,
        });
    }
    Ok(audit(&side, &orders))
}
