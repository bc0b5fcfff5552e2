//! Gathers both sides of an activity for [`crate::audit`] (used by `seckill audit` and the
//! tests).

use crate::audit::{audit, DbOrder, RedisSide, Report, Status};
use crate::streams;
use redis::aio::ConnectionLike;
use redis::Value;
use seckill_core::{keys, ActivityId, ReservationEntry};
use sqlx::{MySqlPool, Row};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("mysql: {0}")]
    Db(#[from] sqlx::Error),
    #[error("activity id '{0}' is not numeric")]
    NotNumeric(String),
}

/// Reads `SECKILL.STATUS` as a field -> integer map (non-integer fields are skipped).
pub async fn status<C: ConnectionLike + Send>(
    redis: &mut C,
    activity: &ActivityId,
) -> Result<HashMap<String, i64>, redis::RedisError> {
    let v: Value = redis::cmd("SECKILL.STATUS")
        .arg(activity.as_str())
        .query_async(redis)
        .await?;
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut it = a.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        _ => Vec::new(),
    };
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let k: String = redis::from_redis_value(&k).ok()?;
            let v: i64 = redis::from_redis_value(&v).ok()?;
            Some((k, v))
        })
        .collect())
}

/// A stream entry: id and field/value pairs.
pub type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Every entry of a stream, in pages.
pub async fn read_stream<C: ConnectionLike + Send>(
    redis: &mut C,
    key: &str,
) -> Result<Vec<Entry>, redis::RedisError> {
    let mut out = Vec::new();
    let mut from = "-".to_string();
    loop {
        let page: Vec<Entry> = redis::cmd("XRANGE")
            .arg(key)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(redis)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        from = format!("({last}");
        out.extend(page);
    }
}

/// Compares Redis and MySQL for one activity.
pub async fn audit_activity<C: ConnectionLike + Send>(
    redis: &mut C,
    pool: &MySqlPool,
    activity: &ActivityId,
    group: &str,
) -> Result<Report, InspectError> {
    let id: u64 = activity
        .as_str()
        .parse()
        .map_err(|_| InspectError::NotNumeric(activity.to_string()))?;
    let st = status(redis, activity).await?;
    let buyers: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(keys::buyers(activity))
        .query_async(redis)
        .await?;
    let reservations = read_stream(redis, &keys::stream(activity))
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
    let dead = read_stream(redis, &keys::dead_letters(activity))
        .await?
        .into_iter()
        .filter_map(|(_, f)| {
            f.into_iter()
                .find(|(k, _)| k == b"reservation")
                .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        })
        .collect();
    let lag = streams::stream_lag(redis, &keys::stream(activity), activity, group).await?;
    let side = RedisSide {
        total: st.get("total").copied().unwrap_or(0).max(0) as u64,
        remaining: st.get("remaining").copied().unwrap_or(0).max(0) as u64,
        buyers,
        reservations,
        released: released.into_iter().collect(),
        dead,
        in_flight: lag.in_flight(),
    };
    let rows = sqlx::query(
        "SELECT reservation_id, user_id, quantity, CAST(status AS CHAR), released_at IS NOT NULL \
         FROM orders WHERE activity_id = ?",
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
        });
    }
    Ok(audit(&side, &orders))
}
