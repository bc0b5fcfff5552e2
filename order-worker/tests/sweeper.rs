//! Payment timeout: pay and expire race on many orders at once; exactly one wins each, a
//! paid order's stock is never released, expired stock comes back exactly once, and
//! `remaining + live quantity == total` at rest. Also the singleton election.

mod support;

use rand::seq::SliceRandom;
use rand::Rng;
use seckill_core::keys;
use seckill_db::orders;
use seckill_worker::sweeper;
use std::time::{Duration, Instant};
use support::*;

/// Sweeper settings with passes of `n` orders.
fn batch(n: u32) -> seckill_worker::config::SweeperSettings {
    seckill_worker::config::SweeperSettings {
        batch: n,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_and_expire_race() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    let mut expected_rows = 0;
    for round in 0..3u64 {
        let activity = 100 + round;
        create_activity(&mut conn, activity, 300).await?;
        reserve_many(&mut conn, activity, (0..250).map(|u| format!("u{u}"))).await?;
        expected_rows += 250;
        env.wait_drained(expected_rows, Duration::from_secs(30))
            .await?;
        // Every order of this round expires within the next 300 ms.
        sqlx::query(
            "UPDATE orders SET expires_at = NOW(3) + INTERVAL FLOOR(RAND() * 300000) MICROSECOND \
             WHERE activity_id = ?",
        )
        .bind(activity)
        .execute(&env.pool)
        .await?;
        let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM orders WHERE activity_id = ?")
            .bind(activity)
            .fetch_all(&env.pool)
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let pool = env.pool.clone();
            let mut redis = env.conn().await?;
            tasks.spawn(async move {
                let until = Instant::now() + Duration::from_millis(600);
                while Instant::now() < until {
                    sweeper::sweep_once(&pool, &mut redis, &batch(100), None).await?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                anyhow::Ok(0u64)
            });
        }
        for _ in 0..6 {
            let pool = env.pool.clone();
            let mut mine = ids.clone();
            mine.shuffle(&mut rand::thread_rng());
            tasks.spawn(async move {
                let mut won = 0;
                for id in mine {
                    let jitter = rand::thread_rng().gen_range(0..3);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                    if orders::pay(&pool, id, None).await? {
                        won += 1;
                    }
                }
                anyhow::Ok(won)
            });
        }
        let mut paid_wins = 0;
        while let Some(r) = tasks.join_next().await {
            paid_wins += r??;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        sweeper::sweep_once(&env.pool, &mut conn, &batch(1_000), None).await?;

        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT reservation_id, CAST(status AS CHAR), released_at IS NOT NULL FROM orders \
             WHERE activity_id = ?",
        )
        .bind(activity)
        .fetch_all(&env.pool)
        .await?;
        let paid = rows.iter().filter(|r| r.1 == "paid").count() as u64;
        assert_eq!(paid, paid_wins, "each successful pay is one paid row");
        for (rid, status, released_at) in &rows {
            let released: bool = redis::cmd("HEXISTS")
                .arg(keys::released(&act(activity)))
                .arg(rid)
                .query_async(&mut conn)
                .await?;
            match status.as_str() {
                "paid" => assert!(!released && !released_at, "paid order {rid} released"),
                "expired" => assert!(released && *released_at, "expired order {rid} not released"),
                other => panic!("order {rid} left {other}"),
            }
        }
        let st = support::status(&mut conn, &act(activity)).await?;
        assert_eq!(
            st["remaining"] as u64 + paid,
            st["total"] as u64,
            "round {round}"
        );
        let report = seckill_db::audit::audit_activity(
            &mut conn,
            &env.pool,
            &act(activity),
            "seckill-orders",
        )
        .await?;
        assert!(report.is_clean(), "{:?}", report.drift);
        assert!(
            paid > 0 && paid < 250,
            "the race had both outcomes ({paid} paid)"
        );
    }
    stop.cancel();
    h.await??;
    Ok(())
}

/// A cancelled order whose release never happened (crash between the UPDATE and RELEASE) is
/// repaired by the next pass, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_update_and_release_is_repaired() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 1, 10).await?;
    reserve_many(&mut conn, 1, ["a".to_string(), "b".into()]).await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    env.wait_drained(2, Duration::from_secs(30)).await?;
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE user_id = 'a'")
        .execute(&env.pool)
        .await?;
    let s1 = sweeper::sweep_once(&env.pool, &mut conn, &batch(100), None).await?;
    let s2 = sweeper::sweep_once(&env.pool, &mut conn, &batch(100), None).await?;
    assert_eq!((s1.released, s2.released), (1, 0));
    let st = support::status(&mut conn, &act(1)).await?;
    assert_eq!(st["remaining"], 9);
    stop.cancel();
    h.await??;
    Ok(())
}

/// 600 expired orders whose release fails (their activity was deleted from Redis:
/// NOACTIVITY) sit before one normal expiry, more than a pass (batch 500) can take: the
/// normal order is still released within one sweep interval of expiring, the failing rows
/// back off (attempts, last error, next attempt), the stuck gauge counts them, and the
/// audit names a failing release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_releases_do_not_stall_the_others() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 10, 600).await?;
    reserve_many(&mut conn, 10, (0..600).map(|u| format!("gone{u}"))).await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    env.wait_drained(600, Duration::from_secs(30)).await?;
    // Later ids: the normal order and one whose stream entry vanished (release refused).
    create_activity(&mut conn, 11, 10).await?;
    reserve_many(&mut conn, 11, ["normal".to_string()]).await?;
    create_activity(&mut conn, 12, 10).await?;
    let lost = reserve_many(&mut conn, 12, ["lost".to_string()]).await?;
    env.wait_drained(602, Duration::from_secs(30)).await?;
    stop.cancel();
    h.await??;
    let _: i64 = redis::cmd("DEL")
        .arg(keys::meta(&act(10)))
        .query_async(&mut conn)
        .await?;
    let _: i64 = redis::cmd("XDEL")
        .arg(keys::stream(&act(12)))
        .arg(&lost[0])
        .query_async(&mut conn)
        .await?;
    sqlx::query(
        "UPDATE orders SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE activity_id <> 11",
    )
    .execute(&env.pool)
    .await?;

    let mut s = env.settings();
    s.worker.consumers = 1;
    s.worker.sweeper.enabled = true;
    s.worker.sweeper.interval_ms = 500;
    s.worker.sweeper.batch = 500;
    s.worker.sweeper.trim_interval_ms = 0;
    let worker = seckill_worker::Worker::build(s).await?;
    let metrics = worker.metrics();
    let stop = tokio_util::sync::CancellationToken::new();
    let h = tokio::spawn(worker.run_until_stopped(stop.clone()));
    // Every failing row has been tried and is backing off.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let untried: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM orders WHERE activity_id IN (10, 12) AND release_attempts = 0",
        )
        .fetch_one(&env.pool)
        .await?;
        if untried == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{untried} failing rows never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    sqlx::query("UPDATE orders SET expires_at = NOW(3) WHERE activity_id = 11")
        .execute(&env.pool)
        .await?;
    let expired_at = Instant::now();
    let within = Duration::from_millis(500 + 500);
    loop {
        let released: Option<bool> =
            sqlx::query_scalar("SELECT released_at IS NOT NULL FROM orders WHERE activity_id = 11")
                .fetch_optional(&env.pool)
                .await?;
        if released == Some(true) {
            break;
        }
        assert!(
            expired_at.elapsed() < within,
            "the normal expiry was not released within one sweep interval (500 ms, plus a \
             pass) behind 600 failing releases"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(support::status(&mut conn, &act(11)).await?["remaining"], 10);

    let (attempts, errors, waiting): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(MIN(release_attempts) AS SIGNED), \
         CAST(SUM(release_error LIKE '%does not exist%') AS SIGNED), \
         CAST(SUM(next_release_at > NOW(3)) AS SIGNED) FROM orders WHERE activity_id = 10",
    )
    .fetch_one(&env.pool)
    .await?;
    assert!(attempts >= 1, "failing rows count their attempts");
    assert_eq!(errors, 600, "each keeps its last error");
    assert!(waiting > 0, "failing rows wait out a backoff");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.stuck_releases.get() != 601 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "stuck gauge shows {}, not 601",
            metrics.stuck_releases.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report =
        seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(12), "seckill-orders").await?;
    assert!(
        report.drift.iter().any(|d| matches!(d,
            seckill_core::audit::Drift::ReleaseFailing { reservation, attempts, .. }
                if *reservation == lost[0] && *attempts >= 1)),
        "{:?}",
        report.drift
    );
    stop.cancel();
    h.await??;
    Ok(())
}

/// Samples how many workers claim to lead, every 5 ms, until `stop`; returns the most seen
/// at once.
fn watch_leaders(
    metrics: [std::sync::Arc<seckill_worker::metrics::Metrics>; 2],
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut most = 0;
        while !stop.is_cancelled() {
            most = most.max(metrics.iter().map(|m| m.sweeper_leader.get()).sum());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        most
    })
}

/// Waits until `metrics[i]` leads (and no other does), or fails after `within`.
async fn wait_sole_leader(
    metrics: &[std::sync::Arc<seckill_worker::metrics::Metrics>; 2],
    within: Duration,
    what: &str,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let on: Vec<usize> = (0..2)
            .filter(|i| metrics[*i].sweeper_leader.get() == 1)
            .collect();
        if on.len() == 1 {
            return Ok(on[0]);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: leaders {on:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two sweepers, never two leaders at once over the whole run — the election, more than
/// two lease periods of steady leadership, the leader's stop and the takeover — sampled
/// every 5 ms; checked with the MySQL advisory lock and with etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_is_a_singleton() -> anyhow::Result<()> {
    let env = env().await?;
    let etcd = seckill_testkit::Etcd::start()?;
    for endpoints in [vec![], vec![etcd.endpoint()]] {
        let mut s = env.settings();
        s.etcd.endpoints = endpoints.clone();
        s.worker.sweeper.enabled = true;
        s.worker.sweeper.interval_ms = 50;
        s.worker.sweeper.lease_secs = 2;
        s.worker.consumers = 1;
        let lease = Duration::from_secs(2);
        let a = seckill_worker::Worker::build(s.clone()).await?;
        let b = seckill_worker::Worker::build(s).await?;
        let metrics = [a.metrics(), b.metrics()];
        let watching = tokio_util::sync::CancellationToken::new();
        let watcher = watch_leaders(metrics.clone(), watching.clone());
        let stops = [
            tokio_util::sync::CancellationToken::new(),
            tokio_util::sync::CancellationToken::new(),
        ];
        let mut handles = [
            Some(tokio::spawn(a.run_until_stopped(stops[0].clone()))),
            Some(tokio::spawn(b.run_until_stopped(stops[1].clone()))),
        ];
        let first = wait_sole_leader(&metrics, Duration::from_secs(15), "election").await?;
        // Leadership stays put and single for more than two lease periods (the lease is
        // renewed, never lost to the other): polled, not slept through.
        let steady = Instant::now();
        while steady.elapsed() < lease * 5 / 2 {
            let now = wait_sole_leader(&metrics, Duration::ZERO, "steady state").await?;
            assert_eq!(
                now, first,
                "leadership moved without a failure ({endpoints:?})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stops[first].cancel();
        if let Some(h) = handles[first].take() {
            h.await??;
        }
        let other = wait_sole_leader(&metrics, Duration::from_secs(15), "takeover").await?;
        assert_ne!(other, first);
        stops[other].cancel();
        if let Some(h) = handles[other].take() {
            h.await??;
        }
        watching.cancel();
        assert_eq!(watcher.await?, 1, "two leaders at once ({endpoints:?})");
    }
    Ok(())
}
