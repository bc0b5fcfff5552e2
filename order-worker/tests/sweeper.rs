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

async fn leaders(metrics: &[std::sync::Arc<seckill_worker::metrics::Metrics>]) -> i64 {
    metrics.iter().map(|m| m.sweeper_leader.get()).sum()
}

/// Two sweepers, one leader at a time; when it stops, the other takes over. Checked with
/// the MySQL advisory lock and with etcd.
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
        let a = seckill_worker::Worker::build(s.clone()).await?;
        let b = seckill_worker::Worker::build(s).await?;
        let metrics = [a.metrics(), b.metrics()];
        let (sa, sb) = (
            tokio_util::sync::CancellationToken::new(),
            tokio_util::sync::CancellationToken::new(),
        );
        let ha = tokio::spawn(a.run_until_stopped(sa.clone()));
        let hb = tokio::spawn(b.run_until_stopped(sb.clone()));
        let deadline = Instant::now() + Duration::from_secs(15);
        while leaders(&metrics).await != 1 {
            assert!(Instant::now() < deadline, "no leader ({endpoints:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..20 {
            assert!(leaders(&metrics).await <= 1, "two leaders ({endpoints:?})");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let (stop_first, first, other) = if metrics[0].sweeper_leader.get() == 1 {
            (sa.clone(), ha, (sb, hb, 1))
        } else {
            (sb.clone(), hb, (sa, ha, 0))
        };
        stop_first.cancel();
        first.await??;
        let deadline = Instant::now() + Duration::from_secs(15);
        while metrics[other.2].sweeper_leader.get() != 1 {
            assert!(Instant::now() < deadline, "no takeover ({endpoints:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        other.0.cancel();
        other.1.await??;
    }
    Ok(())
}
