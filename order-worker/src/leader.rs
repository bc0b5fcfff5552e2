//! Runs the sweeper as a singleton across every worker process.
//!
//! - With `etcd.endpoints` set: etcd's election API (`campaign` on `worker.sweeper.lock_name`)
//!   under a lease of `lease_secs`, kept alive while leading; a crashed leader's lease
//!   expires and another worker takes over.
//! - Without etcd: a MySQL advisory lock, `GET_LOCK(lock_name, 0)`, held by one dedicated
//!   connection; the lock dies with that connection, so a crashed leader is replaced at once.
//!
//! Leadership can briefly overlap (a partitioned leader may finish its pass): the sweeper is
//! safe under that, since every change is conditional and RELEASE is idempotent.

use crate::config::{EtcdSettings, MysqlSettings, Settings, SweeperSettings};
use crate::metrics::Metrics;
use crate::shards::Redis;
use crate::sweeper::sweep_once;
use crate::trim::trim_activities;
use seckill_client::RedisConn;
use seckill_db::MySqlPool;
use seckill_runtime::config::connect_error;
use sqlx::{Connection, MySqlConnection, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Which election the sweeper uses (logged at startup, shown in the README).
pub(crate) fn election_kind(settings: &Settings) -> &'static str {
    if settings.etcd.endpoints.is_empty() {
        "mysql GET_LOCK"
    } else {
        "etcd election"
    }
}

pub(crate) async fn run_sweeper(
    settings: Settings,
    pool: MySqlPool,
    redis: Redis,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let sw = settings.worker.sweeper.clone();
    tracing::info!(election = election_kind(&settings), name = %sw.lock_name, "sweeper waiting for leadership");
    let mut backoff = settings.worker.backoff();
    while !shutdown.is_cancelled() {
        let r = if settings.etcd.endpoints.is_empty() {
            lead_with_mysql(
                &settings.mysql,
                &sw,
                &settings.worker.group,
                &pool,
                redis.clone(),
                &metrics,
                &shutdown,
            )
            .await
        } else {
            lead_with_etcd(
                &settings.etcd,
                &sw,
                &settings.worker.group,
                &pool,
                redis.clone(),
                &metrics,
                &shutdown,
            )
            .await
        };
        metrics.sweeper_leader.set(0);
        match r {
            Ok(()) => backoff.reset(),
            Err(e) => {
                let delay = backoff.next_delay(rand::random());
                tracing::warn!(
                    error = format!("{e:#}"),
                    delay_ms = delay.as_millis() as u64,
                    "sweeper election failed"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// Sweeps every `interval_ms`, and trims the streams every `trim_interval_ms`, while
/// `still_leader` holds and no shutdown came.
async fn sweep_while_leader(
    sw: &SweeperSettings,
    group: &str,
    pool: &MySqlPool,
    redis: Redis,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    lost: &CancellationToken,
) {
    metrics.sweeper_leader.set(1);
    let mut last_trim: Option<Instant> = None;
    let mut conn = redis.shared.clone();
    loop {
        // A pass against a database or Redis that went away waits out a timeout per order
        // and per stream (seconds each); a shutdown or a lost election must not wait for it.
        // Dropping a pass midway is what a crash does, which both passes already survive.
        let pass = one_pass(sw, group, pool, &redis, &mut conn, metrics, &mut last_trim);
        tokio::select! {
            _ = pass => {}
            _ = shutdown.cancelled() => break,
            _ = lost.cancelled() => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sw.interval_ms)) => {}
            _ = shutdown.cancelled() => break,
            _ = lost.cancelled() => break,
        }
    }
    metrics.sweeper_leader.set(0);
}

/// One sweep, and a trim of every stream when `trim_interval_ms` has passed since the last.
async fn one_pass(
    sw: &SweeperSettings,
    group: &str,
    pool: &MySqlPool,
    redis: &Redis,
    conn: &mut RedisConn,
    metrics: &Metrics,
    last_trim: &mut Option<Instant>,
) {
    if let Err(e) = sweep_once(pool, conn, sw, Some(metrics)).await {
        let dependency = match e {
            crate::sweeper::SweepError::Db(_) => "mysql",
            crate::sweeper::SweepError::Redis(_) => "redis",
        };
        metrics.retries_total.with_label_values(&[dependency]).inc();
        tracing::warn!(error = %e, "sweep pass failed");
    }
    let trim_due = sw.trim_interval_ms > 0
        && last_trim.is_none_or(|t| t.elapsed() >= Duration::from_millis(sw.trim_interval_ms));
    if !trim_due {
        return;
    }
    *last_trim = Some(Instant::now());
    // Streams are listed per node (SCAN), then trimmed through the routed connection.
    match redis.activities().await {
        Ok(activities) => {
            trim_activities(
                pool,
                conn,
                &activities,
                group,
                sw.trim_scan_limit,
                Some(metrics),
            )
            .await;
        }
        Err(e) => {
            metrics.trim_errors_total.inc();
            tracing::warn!(error = %e, "trim pass failed");
        }
    }
}

async fn lead_with_mysql(
    mysql: &MysqlSettings,
    sw: &SweeperSettings,
    group: &str,
    pool: &MySqlPool,
    redis: Redis,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    // Its own connection (the lock lives and dies with it), as the application user.
    let mut conn = MySqlConnection::connect_with(&mysql.connect_options()?)
        .await
        .map_err(|e| connect_error(e, "MySQL", &mysql.redacted_url(), "mysql.tls"))
        .context("Failed to open the sweeper lock's connection")?;
    loop {
        let got: Option<i64> = sqlx::query("SELECT GET_LOCK(?, 0)")
            .bind(&sw.lock_name)
            .fetch_one(&mut conn)
            .await?
            .try_get(0)?;
        if got == Some(1) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sw.interval_ms.max(500))) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
    tracing::info!(election = "mysql GET_LOCK", name = %sw.lock_name, "this worker is the sweeper leader");
    let lost = CancellationToken::new();
    let watch = {
        let lost = lost.clone();
        let name = sw.lock_name.clone();
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => break,
                    _ = lost.cancelled() => break,
                }
                let held: Result<Option<i64>, sqlx::Error> =
                    sqlx::query("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                        .bind(&name)
                        .fetch_one(&mut conn)
                        .await
                        .and_then(|r| r.try_get(0));
                if !matches!(held, Ok(Some(1))) {
                    tracing::warn!("sweeper lock lost");
                    lost.cancel();
                    break;
                }
            }
            // Dropping the connection releases the lock.
            let _ = conn.close().await;
        }
    };
    let sweep = sweep_while_leader(sw, group, pool, redis, metrics, shutdown, &lost);
    tokio::join!(watch, async {
        sweep.await;
        lost.cancel();
    });
    Ok(())
}

async fn lead_with_etcd(
    etcd: &EtcdSettings,
    sw: &SweeperSettings,
    group: &str,
    pool: &MySqlPool,
    redis: Redis,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    // Deadlines, keep-alives and TLS as every etcd client of the runtime.
    let mut client = seckill_runtime::etcd::connect(etcd)
        .await
        .context("Failed to connect to etcd for the sweeper election")?;
    let ttl = sw.lease_secs.max(2);
    let lease = client.lease_grant(ttl, None).await?.id();
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
    let lost = CancellationToken::new();
    let keep = {
        let lost = lost.clone();
        let shutdown = shutdown.clone();
        async move {
            let period = Duration::from_millis((ttl as u64 * 1000) / 3);
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(period, responses.message()).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                    _ => break,
                }
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = shutdown.cancelled() => return,
                    _ = lost.cancelled() => return,
                }
            }
            tracing::warn!("etcd lease lost");
            lost.cancel();
        }
    };
    let mut election = client.clone();
    let value = format!("pid-{}", std::process::id());
    let lead = async {
        let campaign = tokio::select! {
            r = election.campaign(sw.lock_name.as_str(), value, lease) => r,
            _ = shutdown.cancelled() => { lost.cancel(); return Ok(()); }
            _ = lost.cancelled() => return Ok(()),
        }?;
        tracing::info!(election = "etcd election", name = %sw.lock_name, "this worker is the sweeper leader");
        sweep_while_leader(sw, group, pool, redis, metrics, shutdown, &lost).await;
        if let Some(key) = campaign.leader() {
            let _ = election
                .resign(Some(
                    etcd_client::ResignOptions::new().with_leader(key.clone()),
                ))
                .await;
        }
        lost.cancel();
        Ok::<(), etcd_client::Error>(())
    };
    let (r, ()) = tokio::join!(lead, keep);
    let _ = client.lease_revoke(lease).await;
    r?;
    Ok(())
}
