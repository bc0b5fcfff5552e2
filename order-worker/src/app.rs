//! Startup: [`Worker::build`] connects and binds (so tests read the metrics port), then
//! [`Worker::run_until_stopped`] runs the consumers (per node, [`crate::shards`]), the lag
//! poller, the sweeper and the metrics endpoint until the shutdown token fires, and waits for
//! all of them.

use crate::arrivals::{Arrivals, LastIds};
use crate::config::Settings;
use crate::consumer::Database;
use crate::leader::{election_kind, run_sweeper};
use crate::metrics::Metrics;
use crate::pace::Pace;
use crate::read_size::ReadSize;
use crate::shards::{run_consumers, Redis};
use anyhow::Context;
use redis::aio::ConnectionLike;
use seckill_client::{sale, shards};
use seckill_core::ActivityId;
use seckill_db::{pool, MySqlPool};
use seckill_runtime::config::connect_error;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub struct Worker {
    settings: Settings,
    /// Where Redis is, and a connection routed by key shared by the lag poller and the
    /// sweeper (consumers have their own, to their node, since their blocking reads and
    /// WAITs would hold up everything else on a shared connection).
    redis: Redis,
    pool: MySqlPool,
    metrics: Arc<Metrics>,
    listener: Option<TcpListener>,
}

impl Worker {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // As the `worker` ACL user (redis.users.worker, else redis.username); URLs only ever
        // reach logs and errors redacted.
        let target = settings.redis.target("worker")?;
        let redis = Redis::connect(target, &settings)
            .await
            .map_err(|e| connect_error(e, "Redis", &settings.redis.shown(), "redis.tls"))?;
        // The application user (rows only); connects on first use.
        let pool = pool::connect_lazy_with(
            settings.mysql.connect_options()?,
            settings.mysql.max_connections,
            settings.mysql.acquire_timeout(),
        );
        let metrics = Metrics::new().context("Failed to register metrics")?;
        let listener = if settings.worker.metrics_addr.is_empty() {
            None
        } else {
            Some(
                TcpListener::bind(&settings.worker.metrics_addr)
                    .await
                    .with_context(|| {
                        format!("Failed to bind metrics on {}", settings.worker.metrics_addr)
                    })?,
            )
        };
        metrics
            .min_replicas
            .set(i64::from(settings.redis.min_replicas));
        Ok(Self {
            settings,
            redis,
            pool,
            metrics,
            listener,
        })
    }

    /// The bound metrics port (useful with `metrics_addr: 127.0.0.1:0`).
    pub fn metrics_port(&self) -> Option<u16> {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let w = &self.settings.worker;
        let base = if w.consumer.is_empty() {
            format!("{}-{}", hostname(), std::process::id())
        } else {
            w.consumer.clone()
        };
        let pace =
            Pace::new(w.max_orders_per_sec, w.batch_size, w.lift_pace_when_idle).map(Arc::new);
        // A paced worker reads batches of at most the pace's burst, so a batch in hand
        // waits about a second at most for its turn.
        let full = pace
            .as_ref()
            .map_or(w.batch_size, |p| w.batch_size.min(p.burst()));
        let read_size = Arc::new(ReadSize::new(full, w.batch_size_while_arriving));
        let mut tasks = tokio::task::JoinSet::new();
        let db = Database {
            pool: self.pool.clone(),
            inserts: Arc::new(Semaphore::new(w.concurrent_inserts.max(1))),
            pace,
            read_size,
            last_ids: Arc::new(LastIds::default()),
        };
        tasks.spawn(run_consumers(
            self.redis.clone(),
            db.clone(),
            self.settings.clone(),
            base,
            self.metrics.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(poll_lag(
            self.redis.clone(),
            w.group.clone(),
            Duration::from_millis(w.lag_interval_ms.max(100)),
            self.metrics.clone(),
            db,
            shutdown.clone(),
        ));
        if w.sweeper.enabled {
            tracing::info!(
                election = election_kind(&self.settings),
                "payment-timeout sweeper enabled"
            );
            tasks.spawn(run_sweeper(
                self.settings.clone(),
                self.pool.clone(),
                self.redis.clone(),
                self.metrics.clone(),
                shutdown.clone(),
            ));
        }
        if self.settings.etcd.enabled() {
            // In the background like everything else: etcd down never stops the worker.
            let addr = self.listener.as_ref().and_then(|l| l.local_addr().ok());
            let member = seckill_runtime::Member::this_process(
                "worker",
                addr.map(|a| a.to_string()).unwrap_or_default(),
                env!("CARGO_PKG_VERSION"),
            );
            tasks.spawn(seckill_runtime::etcd::members::register(
                self.settings.etcd.clone(),
                member,
                self.settings.etcd.member_ttl(),
                shutdown.clone(),
            ));
        }
        if let Some(l) = self.listener {
            let m = self.metrics.clone();
            tasks.spawn(seckill_runtime::metrics::serve(
                l,
                Arc::new(move || m.render()),
                health_check(self.redis.shared.clone(), self.pool.clone()),
                shutdown.clone(),
            ));
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "worker task panicked");
                shutdown.cancel();
            }
        }
        self.pool.close().await;
        Ok(())
    }
}

/// `/health`: the worker is healthy when it can reach both Redis and MySQL (each answers a
/// round trip within 2 s); otherwise 503 naming what is down.
fn health_check(
    redis: seckill_client::RedisConn,
    pool: MySqlPool,
) -> seckill_runtime::metrics::HealthCheck {
    const DEADLINE: Duration = Duration::from_secs(2);
    Arc::new(move || {
        let (mut redis, pool) = (redis.clone(), pool.clone());
        Box::pin(async move {
            let redis_ok = tokio::time::timeout(DEADLINE, async {
                redis::cmd("PING")
                    .query_async::<redis::Value>(&mut redis)
                    .await
            })
            .await
            .is_ok_and(|r| r.is_ok());
            let mysql_ok = seckill_db::error::timed(DEADLINE, pool::ping(&pool))
                .await
                .is_ok();
            match (redis_ok, mysql_ok) {
                (true, true) => Ok(()),
                (false, true) => Err("redis unreachable".into()),
                (true, false) => Err("mysql unreachable".into()),
                (false, false) => Err("redis and mysql unreachable".into()),
            }
        })
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".into())
}

async fn poll_lag(
    redis: Redis,
    group: String,
    every: Duration,
    metrics: Arc<Metrics>,
    db: Database,
    shutdown: CancellationToken,
) {
    let Database {
        pace,
        read_size,
        last_ids,
        ..
    } = db;
    // Activities and nodes with exported series, to drop those that vanished.
    let mut exported: HashSet<String> = HashSet::new();
    let mut nodes: HashSet<String> = HashSet::new();
    let mut arrivals = Arrivals::default();
    let mut conn = redis.shared.clone();
    loop {
        // Blind unless the poll reads every node: the sale may be writing where it cannot
        // see, so the pace holds.
        let mut arriving = true;
        match redis.topology().await {
            Ok(topology) => {
                let views =
                    shards::shard_views(&redis.target, &topology, &group, redis.node_timeout).await;
                nodes = metrics.set_shards(&views, &nodes);
                let rows: Vec<_> = views.iter().flat_map(|v| v.streams.iter()).collect();
                let knew = arrivals.knows();
                let grew =
                    arrivals.observe(rows.iter().map(|r| (r.activity.clone(), r.entries_added)));
                let blind = views.iter().any(|v| v.error.is_some());
                arriving = grew || blind;
                if knew && !blind {
                    read_size.observe(grew);
                }
                if blind {
                    last_ids.forget();
                } else {
                    last_ids.record(
                        rows.iter()
                            .map(|r| (r.activity.clone(), r.last_generated_id)),
                    );
                }
                let current: HashSet<String> = rows.iter().map(|r| r.activity.clone()).collect();
                for gone in exported.difference(&current) {
                    tracing::info!(activity = %gone, "stream vanished; dropping its gauges");
                    metrics.forget_activity(gone);
                }
                exported = current;
                for r in rows {
                    set_activity(&metrics, &mut conn, r).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "lag poll failed");
                // Two polls must show the streams standing still again.
                arrivals = Arrivals::default();
                last_ids.forget();
            }
        }
        if let Some(pace) = &pace {
            metrics.pace_lifted.set(i64::from(pace.observe(arriving)));
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn set_activity<C: ConnectionLike + Send>(
    metrics: &Metrics,
    conn: &mut C,
    r: &seckill_core::lag::StreamLag,
) {
    let l = [r.activity.as_str()];
    metrics
        .stream_length
        .with_label_values(&l)
        .set(r.length as i64);
    metrics
        .group_lag
        .with_label_values(&l)
        .set(r.undelivered() as i64);
    metrics
        .group_pending
        .with_label_values(&l)
        .set(r.pending as i64);
    metrics
        .dead_letters
        .with_label_values(&l)
        .set(r.dead_letters as i64);
    let status = match ActivityId::parse(&r.activity) {
        Ok(id) => sale::status(conn, &id).await,
        Err(_) => Ok(None),
    };
    match status {
        Ok(Some(st)) => metrics
            .stock_remaining
            .with_label_values(&l)
            .set(i64::try_from(st.remaining).unwrap_or(i64::MAX)),
        // The activity was deleted while its stream stays: no stock to show.
        Ok(None) => {
            let _ = metrics.stock_remaining.remove_label_values(&l);
        }
        Err(e) => tracing::debug!(error = %e, "SECKILL.STATUS failed"),
    }
}
