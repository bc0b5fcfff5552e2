//! The `SECKILL.*` commands, typed: each command is built and its reply parsed here, once,
//! for every process (the gateway's hot path, the worker's releases and gauges, the CLI).
//! The functions work over any `ConnectionLike`, so a caller chooses the connection (shared
//! multiplexed, dedicated, pipelined through [`crate::coalesce`], a cluster connection).
//!
//! Every `SECKILL.*` command is sent with the trailing `KEYS <meta> <buyers> <stream>
//! <released>` clause: it changes nothing on a standalone server, and in Redis Cluster it lets
//! the server see the activity's real keys while its slot migrates (TRYAGAIN/ASK until the
//! whole activity has moved, instead of running on a node that has half of it).

use crate::error::{classify, ClientError};
use redis::aio::ConnectionLike;
use redis::{Cmd, Value};
use seckill_core::{keys, ActivityId, Refusal, StreamId, UserId};
use std::collections::HashMap;

/// A successful `SECKILL.RESERVE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The stream entry id: the reservation id.
    pub id: String,
    /// Stock left after it.
    pub remaining: u64,
    /// Whether replicas confirmed it (`redis.min_replicas`).
    pub durability: Durability,
}

/// What is known of a reservation's copies on replicas when it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Not asked (`redis.min_replicas` is 0): on the primary that answered.
    #[default]
    Unchecked,
    /// On the primary that holds the activity and on this many replicas (at least the
    /// configured minimum): it survives a failover.
    Replicated(u32),
    /// On the primary, not confirmed on enough replicas in time: held unless a failover
    /// loses it; the outcome is pending (`GET /api/v1/seckill/result` tells it later).
    Pending,
}

/// Appends `KEYS <meta> <buyers> <stream> <released>`: the activity's real keys, declared to
/// Redis Cluster (see the module's `commands::without_keys`).
fn with_keys(cmd: &mut Cmd, activity: &ActivityId) {
    cmd.arg("KEYS")
        .arg(keys::meta(activity))
        .arg(keys::buyers(activity))
        .arg(keys::stream(activity))
        .arg(keys::released(activity));
}

/// `SECKILL.STATUS`, read by field name (fields a newer module adds are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub total: u64,
    pub remaining: u64,
    /// Live reservations.
    pub reservations: u64,
    pub buyers: u64,
    pub limit: u64,
    pub start_ms: u64,
    /// 0: no end.
    pub end_ms: u64,
    pub product: String,
    pub price_cents: u64,
    /// `pending`, `open`, `sold-out` or `ended`.
    pub state: String,
    /// The stream's last id when this sale was created: reservations at or below it belong
    /// to an earlier sale of the same activity id (`0-0` for the first sale).
    pub sale_from: StreamId,
    /// Entries below this id were trimmed as final (`0-0`: nothing trimmed).
    pub trimmed_below: StreamId,
}

/// Arguments of `SECKILL.CREATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateArgs {
    pub activity: ActivityId,
    pub stock: u64,
    pub limit: u64,
    pub start_ms: u64,
    /// `None`: no end.
    pub end_ms: Option<u64>,
    /// Empty: the activity accepts any product.
    pub product: String,
    pub price_cents: u64,
}

/// `SECKILL.RESERVE <activity> <user> <qty> PRODUCT <product>`: the module refuses (`ERR`,
/// nothing changed) when the activity sells another product, in the same atomic step.
pub fn reserve_cmd(activity: &ActivityId, user: &UserId, qty: u64, product: &str) -> Cmd {
    let mut cmd = redis::cmd("SECKILL.RESERVE");
    cmd.arg(activity.as_str())
        .arg(user.as_str())
        .arg(qty)
        .arg("PRODUCT")
        .arg(product);
    with_keys(&mut cmd, activity);
    cmd
}

/// The `[reservation-id, remaining]` reply of `SECKILL.RESERVE`.
pub fn parse_reservation(v: Value) -> Result<Reservation, ClientError> {
    let (id, remaining): (String, i64) = redis::from_owned_redis_value(v)
        .map_err(|e| ClientError::Protocol(format!("SECKILL.RESERVE replied {e}")))?;
    Ok(Reservation {
        id,
        remaining: u64::try_from(remaining).unwrap_or(0),
        durability: Durability::Unchecked,
    })
}

/// Reserves without coalescing (one round trip of its own).
pub async fn reserve<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
    user: &UserId,
    qty: u64,
    product: &str,
) -> Result<Reservation, ClientError> {
    let v: Value = reserve_cmd(activity, user, qty, product)
        .query_async(conn)
        .await
        .map_err(|e| classify(&e))?;
    parse_reservation(v)
}

fn create_cmd(a: &CreateArgs) -> Cmd {
    let mut cmd = redis::cmd("SECKILL.CREATE");
    cmd.arg(a.activity.as_str())
        .arg("STOCK")
        .arg(a.stock)
        .arg("LIMIT")
        .arg(a.limit)
        .arg("START")
        .arg(a.start_ms)
        .arg("PRICE")
        .arg(a.price_cents);
    if let Some(end) = a.end_ms {
        cmd.arg("END").arg(end);
    }
    if !a.product.is_empty() {
        cmd.arg("PRODUCT").arg(&a.product);
    }
    with_keys(&mut cmd, &a.activity);
    cmd
}

/// Creates (preheats) an activity; [`ClientError::Exists`] when a live one has that id.
pub async fn create<C: ConnectionLike + Send>(
    conn: &mut C,
    args: &CreateArgs,
) -> Result<(), ClientError> {
    let _: Value = create_cmd(args)
        .query_async(conn)
        .await
        .map_err(|e| classify(&e))?;
    Ok(())
}

/// Returns a reservation's stock exactly once: the quantity returned, `0` when it already was.
pub async fn release<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
    reservation: &str,
) -> Result<u64, ClientError> {
    let mut cmd = redis::cmd("SECKILL.RELEASE");
    cmd.arg(activity.as_str()).arg(reservation);
    with_keys(&mut cmd, activity);
    let n: i64 = cmd.query_async(conn).await.map_err(|e| classify(&e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `SECKILL.TRIM <activity> <min-id>`: removes the stream entries below `min_id` (every one
/// of them final in MySQL, the caller's promise) and their release markers, and moves the
/// activity's trim point up to it. Returns the number of entries removed.
pub async fn trim<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
    min_id: StreamId,
) -> Result<u64, ClientError> {
    let mut cmd = redis::cmd("SECKILL.TRIM");
    cmd.arg(activity.as_str()).arg(min_id.to_string());
    with_keys(&mut cmd, activity);
    let n: i64 = cmd.query_async(conn).await.map_err(|e| classify(&e))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The activity's status; `None` when Redis does not hold it (`NOACTIVITY`).
pub async fn status<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
) -> Result<Option<Status>, ClientError> {
    let mut cmd = redis::cmd("SECKILL.STATUS");
    cmd.arg(activity.as_str());
    with_keys(&mut cmd, activity);
    let reply: Result<Value, _> = cmd.query_async(conn).await;
    match reply.map_err(|e| classify(&e)) {
        Ok(v) => parse_status(&v).map(Some),
        Err(ClientError::Refused {
            refusal: Refusal::NoActivity,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `SECKILL.HELD <activity> <user> KEYS ...`: the units `user` holds (0 when none).
pub(crate) fn held_cmd(activity: &ActivityId, user: &str) -> Cmd {
    let mut cmd = redis::cmd("SECKILL.HELD");
    cmd.arg(activity.as_str()).arg(user);
    with_keys(&mut cmd, activity);
    cmd
}

/// Quantity `user` holds in `activity` (0 when none): the buyer's mark.
pub async fn held<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
    user: &UserId,
) -> Result<u64, ClientError> {
    held_cmd(activity, user.as_str())
        .query_async(conn)
        .await
        .map_err(|e| classify(&e))
}

/// Every buyer of `activity` with the units held (`SECKILL.BUYERS`).
pub async fn buyers<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
) -> Result<HashMap<String, u64>, ClientError> {
    let mut cmd = redis::cmd("SECKILL.BUYERS");
    cmd.arg(activity.as_str());
    with_keys(&mut cmd, activity);
    cmd.query_async(conn).await.map_err(|e| classify(&e))
}

/// Reads the flat field/value array (or a RESP3 map) of `SECKILL.STATUS`.
pub fn parse_status(v: &Value) -> Result<Status, ClientError> {
    let mut fields: HashMap<String, String> = HashMap::new();
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    };
    match v {
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [k, v] = pair {
                    if let (Some(k), Some(v)) = (text(k), text(v)) {
                        fields.insert(k, v);
                    }
                }
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let (Some(k), Some(v)) = (text(k), text(v)) {
                    fields.insert(k, v);
                }
            }
        }
        other => {
            return Err(ClientError::Protocol(format!(
                "SECKILL.STATUS replied {other:?}"
            )))
        }
    }
    let num = |name: &str| -> Result<u64, ClientError> {
        fields
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("SECKILL.STATUS has no numeric '{name}'")))
    };
    let opt = |name: &str| fields.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    // Absent (a module older than the field): 0-0, which means "none".
    let id = |name: &str| {
        fields
            .get(name)
            .and_then(|v| StreamId::parse(v).ok())
            .unwrap_or_default()
    };
    Ok(Status {
        total: num("total")?,
        remaining: num("remaining")?,
        reservations: opt("reservations"),
        buyers: opt("buyers"),
        limit: opt("limit"),
        start_ms: opt("start"),
        end_ms: opt("end"),
        product: fields.get("product").cloned().unwrap_or_default(),
        price_cents: opt("price"),
        state: fields.get("state").cloned().unwrap_or_default(),
        sale_from: id("sale-from"),
        trimmed_below: id("trimmed-below"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reply_parses() {
        let v = Value::Array(vec![
            Value::SimpleString("total".into()),
            Value::Int(100),
            Value::SimpleString("remaining".into()),
            Value::Int(7),
            Value::SimpleString("product".into()),
            Value::BulkString(b"p-1".to_vec()),
            Value::SimpleString("state".into()),
            Value::SimpleString("open".into()),
            Value::SimpleString("trimmed-below".into()),
            Value::BulkString(b"17-3".to_vec()),
            Value::SimpleString("a-field-from-a-newer-module".into()),
            Value::Int(1),
        ]);
        assert_eq!(
            parse_status(&v).ok(),
            Some(Status {
                total: 100,
                remaining: 7,
                product: "p-1".into(),
                state: "open".into(),
                trimmed_below: StreamId::new(17, 3),
                ..Status::default()
            })
        );
        assert!(parse_status(&Value::Nil).is_err());
    }

    #[test]
    fn reserve_replies_parse() {
        let ok = parse_reservation(Value::Array(vec![
            Value::BulkString(b"1-0".to_vec()),
            Value::Int(9),
        ]));
        assert_eq!(
            ok.ok(),
            Some(Reservation {
                id: "1-0".into(),
                remaining: 9,
                durability: Durability::Unchecked,
            })
        );
        assert!(matches!(
            parse_reservation(Value::Int(3)),
            Err(ClientError::Protocol(_))
        ));
    }
}
