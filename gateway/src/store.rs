//! The Redis side: `SECKILL.*` commands over one multiplexed connection (concurrent requests
//! are pipelined on it), each with a deadline, a tracing span and a latency metric.
//!
//! Module refusals (`SOLDOUT ...`, `LIMIT ...`) come back as [`StoreError::Refused`]; a dead or
//! slow Redis as [`StoreError::Unavailable`] / [`StoreError::Timeout`] within the deadline.

use crate::coalesce::Coalescer;
use crate::error::ApiError;
use crate::metrics::Metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError, Value};
use seckill_core::{keys, ActivityId, Refusal, UserId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    /// `ERR ...` from the module: an argument the gateway should have refused.
    #[error("{0}")]
    Argument(String),
    /// `EXISTS ...` from `SECKILL.CREATE`.
    #[error("{0}")]
    Exists(String),
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected redis reply: {0}")]
    Protocol(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused { refusal, message } => ApiError::refused(refusal, message),
            StoreError::Argument(m) => ApiError::InvalidArgument(m),
            StoreError::Exists(m) => ApiError::Conflict(m),
            StoreError::Unavailable(_) | StoreError::Timeout(_) => {
                tracing::warn!(error = %e, "redis call failed");
                ApiError::Unavailable("the sale backend is unavailable; try again".into())
            }
            StoreError::Protocol(_) => ApiError::internal(e),
        }
    }
}

/// Classifies an error reply or a transport failure.
pub fn classify(e: &RedisError) -> StoreError {
    if let Some(code) = e.code() {
        let detail = e.detail().unwrap_or("").to_owned();
        if let Some(refusal) = Refusal::from_error_message(code) {
            return StoreError::Refused {
                refusal,
                message: detail,
            };
        }
        match code {
            "ERR" => return StoreError::Argument(detail),
            "EXISTS" => return StoreError::Exists(detail),
            _ => {}
        }
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        return StoreError::Unavailable(e.to_string());
    }
    match e.kind() {
        redis::ErrorKind::ResponseError | redis::ErrorKind::ExtensionError => {
            StoreError::Protocol(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// A successful `SECKILL.RESERVE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub remaining: u64,
}

/// `SECKILL.STATUS` fields the gateway shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub total: u64,
    pub remaining: u64,
    pub state: String,
}

/// Arguments of `SECKILL.CREATE`.
#[derive(Debug, Clone)]
pub struct CreateArgs {
    pub activity: ActivityId,
    pub stock: u64,
    pub limit: u64,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub product: String,
    pub price_cents: u64,
}

#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    /// The hot path's `SECKILL.RESERVE`s, pipelined together (see `coalesce`).
    batch: Coalescer,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Store {
    /// Connects (bounded by `timeout` per attempt); reconnects happen in the background later.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let client =
            redis::Client::open(url).with_context(|| format!("Invalid redis URL {url}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(2)
            .set_max_delay(1_000);
        let conn = tokio::time::timeout(
            timeout * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting to redis took longer than {:?}", timeout * 4))?
        .with_context(|| format!("Failed to connect to redis at {url}"))?;
        Ok(Self {
            batch: Coalescer::spawn(conn.clone()),
            conn,
            timeout,
            metrics,
        })
    }

    /// Runs one command with the deadline, recording latency by command and result.
    async fn run<T: FromRedisValue>(&self, name: &'static str, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        self.observe(name, started, &result);
        result
    }

    /// Like [`Store::run`], through the coalescer: for the hot path's one command.
    async fn run_batched<T: FromRedisValue>(
        &self,
        name: &'static str,
        cmd: Cmd,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.batch.query(cmd)).await {
            Ok(Ok(v)) => T::from_owned_redis_value(v).map_err(|e| classify(&e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        self.observe(name, started, &result);
        result
    }

    fn observe<T>(&self, name: &'static str, started: Instant, result: &Result<T, StoreError>) {
        let label = match result {
            Ok(_) => "ok",
            Err(StoreError::Refused { .. }) => "refused",
            Err(StoreError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.metrics
            .redis
            .with_label_values(&[name, label])
            .observe(started.elapsed().as_secs_f64());
    }

    /// `product` is the body's `product_id`: the module refuses (`ERR`, nothing changed) when
    /// the activity sells another product, in the same atomic step.
    pub async fn reserve(
        &self,
        activity: &ActivityId,
        user: &UserId,
        qty: u64,
        product: &str,
    ) -> Result<Reservation, StoreError> {
        let span = tracing::info_span!("redis.reserve", activity = %activity, user = %user, qty);
        async {
            let mut cmd = redis::cmd("SECKILL.RESERVE");
            cmd.arg(activity.as_str())
                .arg(user.as_str())
                .arg(qty)
                .arg("PRODUCT")
                .arg(product);
            let (id, remaining): (String, i64) = self.run_batched("SECKILL.RESERVE", cmd).await?;
            Ok(Reservation {
                id,
                remaining: u64::try_from(remaining).unwrap_or(0),
            })
        }
        .instrument(span)
        .await
    }

    /// Returns a reservation's stock; `Ok(0)` when it was already released.
    pub async fn release(
        &self,
        activity: &ActivityId,
        reservation: &str,
    ) -> Result<u64, StoreError> {
        let span = tracing::info_span!("redis.release", activity = %activity, reservation);
        async {
            let mut cmd = redis::cmd("SECKILL.RELEASE");
            cmd.arg(activity.as_str()).arg(reservation);
            let n: i64 = self.run("SECKILL.RELEASE", &cmd).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }
        .instrument(span)
        .await
    }

    /// `None` when the activity is not in Redis.
    pub async fn status(&self, activity: &ActivityId) -> Result<Option<Status>, StoreError> {
        let mut cmd = redis::cmd("SECKILL.STATUS");
        cmd.arg(activity.as_str());
        match self.run::<Value>("SECKILL.STATUS", &cmd).await {
            Ok(v) => parse_status(&v).map(Some),
            Err(StoreError::Refused {
                refusal: Refusal::NoActivity,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create(&self, a: &CreateArgs) -> Result<(), StoreError> {
        let span = tracing::info_span!("redis.create", activity = %a.activity);
        async {
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
            let _: Value = self.run("SECKILL.CREATE", &cmd).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Quantity `user` holds in `activity` (0 when none): the buyers hash.
    pub async fn held(&self, activity: &ActivityId, user: &UserId) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(keys::buyers(activity)).arg(user.as_str());
        let v: Option<u64> = self.run("HGET", &cmd).await?;
        Ok(v.unwrap_or(0))
    }

    /// A handle on the shared multiplexed connection (for [`crate::release::release_stock`]).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.run("PING", &redis::cmd("PING")).await?;
        Ok(())
    }
}

/// Reads the flat field/value array (or a RESP3 map) of `SECKILL.STATUS`.
pub fn parse_status(v: &Value) -> Result<Status, StoreError> {
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
            return Err(StoreError::Protocol(format!(
                "SECKILL.STATUS replied {other:?}"
            )))
        }
    }
    let num = |name: &str| -> Result<u64, StoreError> {
        fields
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Protocol(format!("SECKILL.STATUS has no numeric '{name}'")))
    };
    Ok(Status {
        total: num("total")?,
        remaining: num("remaining")?,
        state: fields.get("state").cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_error_replies_become_refusals() {
        for (code, want) in [
            ("SOLDOUT", Refusal::SoldOut),
            ("LIMIT", Refusal::Limit),
            ("NOTSTARTED", Refusal::NotStarted),
            ("ENDED", Refusal::Ended),
            ("NOACTIVITY", Refusal::NoActivity),
        ] {
            let e = RedisError::from((
                redis::ErrorKind::ExtensionError,
                "ext",
                format!("{code} detail here"),
            ));
            // Errors parsed off the wire carry the code; build one the same way.
            let parsed = redis::parse_redis_value(format!("-{code} detail here\r\n").as_bytes())
                .and_then(|v| v.extract_error());
            let e = parsed.err().unwrap_or(e);
            match classify(&e) {
                StoreError::Refused { refusal, message } => {
                    assert_eq!(refusal, want);
                    assert_eq!(message, "detail here");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn argument_and_exists_errors_are_kept_apart() {
        let err = |s: &str| {
            redis::parse_redis_value(format!("-{s}\r\n").as_bytes())
                .and_then(|v| v.extract_error())
                .err()
                .map(|e| classify(&e))
        };
        assert!(matches!(
            err("ERR quantity must be ..."),
            Some(StoreError::Argument(_))
        ));
        assert!(matches!(
            err("EXISTS activity '1' exists"),
            Some(StoreError::Exists(_))
        ));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(&io), StoreError::Unavailable(_)));
    }

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
        ]);
        assert_eq!(
            parse_status(&v).ok(),
            Some(Status {
                total: 100,
                remaining: 7,
                state: "open".into()
            })
        );
        assert!(parse_status(&Value::Nil).is_err());
    }
}
