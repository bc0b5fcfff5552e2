//! Shared helpers of the worker's integration tests: a real redis-server with the module, a
//! real MariaDB (one per test binary, a fresh database per test), a worker in-process or as
//! the binary.
#![allow(dead_code)]

use redis::aio::MultiplexedConnection;
use seckill_client::lag as streams;
use seckill_core::{keys, ActivityId};
use seckill_db::pool as db;
use seckill_runtime::Secret;
use seckill_testkit::{mariadb, MariaDb, RedisServer};
use seckill_worker::config::Settings;
use seckill_worker::Worker;
use sqlx::MySqlPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(crate) struct Env {
    pub redis: RedisServer,
    pub db_url: String,
    pub pool: MySqlPool,
}

/// Redis + a migrated fresh database on `db` (the shared MariaDB when `None`).
pub(crate) async fn env_on(db: Option<&MariaDb>) -> anyhow::Result<Env> {
    let redis = RedisServer::start()?;
    let db = match db {
        Some(d) => d,
        None => mariadb::shared()?,
    };
    let db_url = db.create_database()?;
    let pool = db::connect_lazy(&db_url, 8, Duration::from_secs(5))?;
    db::migrate(&pool).await?;
    Ok(Env {
        redis,
        db_url,
        pool,
    })
}

pub(crate) async fn env() -> anyhow::Result<Env> {
    env_on(None).await
}

impl Env {
    pub(crate) fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.redis.url = self.redis.url();
        s.mysql.url = Secret::new(self.db_url.clone());
        s.mysql.acquire_timeout_ms = 1_000;
        let w = &mut s.worker;
        w.metrics_addr = "127.0.0.1:0".into();
        w.block_ms = 200;
        w.discover_interval_ms = 200;
        w.claim_idle_ms = 1_500;
        w.claim_interval_ms = 500;
        w.backoff_initial_ms = 50;
        w.backoff_max_ms = 1_000;
        w.lag_interval_ms = 200;
        w.sweeper.enabled = false;
        s
    }

    /// Writes a config file for the worker binary into `dir`: this environment's Redis and
    /// database, no metrics listener, no sweeper, fast polling; `worker` adds keys to the
    /// `worker` section (`"batch_size: 200"`), `extra` adds whole sections.
    pub(crate) fn binary_config(
        &self,
        dir: &std::path::Path,
        worker: &str,
        extra: &str,
    ) -> anyhow::Result<std::path::PathBuf> {
        let path = dir.join("config.yaml");
        let mut section =
            String::from("metrics_addr: '', block_ms: 200, sweeper: {enabled: false}");
        // Polling every 200 ms unless the caller says otherwise (YAML refuses duplicate keys).
        if !worker.contains("discover_interval_ms") {
            section.push_str(", discover_interval_ms: 200");
        }
        if !worker.is_empty() {
            section.push_str(", ");
            section.push_str(worker);
        }
        std::fs::write(
            &path,
            format!(
                "redis: {{url: '{}'}}\nmysql: {{url: '{}'}}\nworker: {{{section}}}\n{extra}\n",
                self.redis.url(),
                self.db_url
            ),
        )?;
        Ok(path)
    }

    pub(crate) async fn conn(&self) -> anyhow::Result<MultiplexedConnection> {
        Ok(self
            .redis
            .client()?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// Starts an in-process worker; stop it with the returned token, then await the handle.
    pub(crate) async fn spawn_worker(
        &self,
        settings: Settings,
    ) -> anyhow::Result<(
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )> {
        let w = Worker::build(settings).await?;
        let stop = CancellationToken::new();
        let h = tokio::spawn(w.run_until_stopped(stop.clone()));
        Ok((stop, h))
    }

    pub(crate) async fn order_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM orders")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Waits until every stream is fully delivered and acked and `rows` orders exist.
    pub(crate) async fn wait_drained(&self, rows: i64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut conn = self.conn().await?;
        loop {
            let lags = streams::all_lags(&mut conn, "seckill-orders").await?;
            let busy: u64 = lags
                .iter()
                .map(seckill_core::lag::StreamLag::in_flight)
                .sum();
            let count = self.order_count().await.unwrap_or(-1);
            if busy == 0 && count == rows {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "not drained after {timeout:?}: {count}/{rows} rows, {busy} in flight"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) fn act(id: u64) -> ActivityId {
    ActivityId::parse(id.to_string()).expect("numeric ids are valid")
}

pub(crate) async fn create_activity(
    conn: &mut MultiplexedConnection,
    id: u64,
    stock: u64,
) -> anyhow::Result<()> {
    redis::cmd("SECKILL.CREATE")
        .arg(id)
        .arg("STOCK")
        .arg(stock)
        .arg("PRICE")
        .arg(100)
        .arg("PRODUCT")
        .arg("p1")
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

/// Reserves one unit for each user, pipelined; returns the reservation ids.
pub(crate) async fn reserve_many(
    conn: &mut MultiplexedConnection,
    activity: u64,
    users: impl IntoIterator<Item = String>,
) -> anyhow::Result<Vec<String>> {
    let mut pipe = redis::pipe();
    for u in users {
        pipe.cmd("SECKILL.RESERVE").arg(activity).arg(u).arg(1);
    }
    let replies: Vec<(String, i64)> = pipe.query_async(conn).await?;
    Ok(replies.into_iter().map(|(rid, _)| rid).collect())
}

/// Every `(activity, reservation)` in the streams of `activities`.
pub(crate) async fn stream_ids(
    conn: &mut MultiplexedConnection,
    activities: impl IntoIterator<Item = u64>,
) -> anyhow::Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for a in activities {
        for (id, _) in seckill_client::streams::read_stream(conn, &keys::stream(&act(a))).await? {
            out.push((a, id));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) async fn order_ids(pool: &MySqlPool) -> anyhow::Result<Vec<(u64, String)>> {
    let mut v: Vec<(u64, String)> =
        sqlx::query_as("SELECT activity_id, reservation_id FROM orders")
            .fetch_all(pool)
            .await?;
    v.sort();
    Ok(v)
}

/// `SECKILL.STATUS` of an activity as field -> integer (an absent activity has no fields).
pub(crate) async fn status(
    conn: &mut MultiplexedConnection,
    activity: &ActivityId,
) -> anyhow::Result<HashMap<String, i64>> {
    let st = seckill_client::sale::status(conn, activity)
        .await?
        .unwrap_or_default();
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok([
        ("total", n(st.total)),
        ("remaining", n(st.remaining)),
        ("reservations", n(st.reservations)),
        ("buyers", n(st.buyers)),
        ("limit", n(st.limit)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}
