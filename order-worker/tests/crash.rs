//! Failures mid-run: the worker binary SIGKILLed again and again, and MariaDB down for 10 s.
//! Neither loses nor duplicates an order.

mod support;

use rand::Rng;
use seckill_testkit::{ChildGuard, MariaDb};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn spawn_worker_binary(config: &std::path::Path) -> anyhow::Result<ChildGuard> {
    let child = Command::new(env!("CARGO_BIN_EXE_seckill-worker"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(ChildGuard::new(child))
}

/// 20,000 reservations while the worker binary is SIGKILLed at random moments (at least 10
/// times) and restarted: every reservation is exactly one row and the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_the_worker_repeatedly() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    const ACTIVITIES: u64 = 20;
    for a in 1..=ACTIVITIES {
        create_activity(&mut conn, a, 1_000).await?;
    }
    let dir = tempfile::tempdir()?;
    let config = env.binary_config(
        dir.path(),
        "claim_idle_ms: 1000, claim_interval_ms: 300, batch_size: 500",
        "",
    )?;
    let producer = {
        let mut conn = env.conn().await?;
        tokio::spawn(async move {
            for round in 0..10u64 {
                for a in 1..=ACTIVITIES {
                    reserve_many(&mut conn, a, (0..100).map(|u| format!("r{round}u{u}"))).await?;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            anyhow::Ok(())
        })
    };
    let mut worker = spawn_worker_binary(&config)?;
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while kills < 10 || !producer.is_finished() {
        assert!(Instant::now() < deadline, "kill loop took too long");
        let pause = rand::thread_rng().gen_range(100..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        assert!(worker.is_running(), "the worker exited by itself");
        worker.kill();
        kills += 1;
        worker = spawn_worker_binary(&config)?;
    }
    producer.await??;
    env.wait_drained(20_000, Duration::from_secs(120)).await?;
    assert!(kills >= 10);
    let want = stream_ids(&mut conn, 1..=ACTIVITIES).await?;
    assert_eq!(want.len(), 20_000);
    assert_eq!(order_ids(&env.pool).await?, want);
    for a in 1..=ACTIVITIES {
        let report =
            seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(a), "seckill-orders")
                .await?;
        assert!(report.is_clean(), "activity {a}: {:?}", report.drift);
    }
    drop(worker);
    Ok(())
}

/// MariaDB stopped for 10 s mid-run: the worker retries with backoff, nothing is lost, and
/// the lag returns to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_down_for_ten_seconds() -> anyhow::Result<()> {
    let mut db = MariaDb::start()?;
    let env = env_on(Some(&db)).await?;
    let mut conn = env.conn().await?;
    for a in 1..=10 {
        create_activity(&mut conn, a, 1_000).await?;
    }
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    for a in 1..=10 {
        reserve_many(&mut conn, a, (0..100).map(|u| format!("before{u}"))).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    db.stop();
    let down = Instant::now();
    let mut round = 0;
    while down.elapsed() < Duration::from_secs(10) {
        for a in 1..=10 {
            reserve_many(&mut conn, a, (0..20).map(|u| format!("down{round}u{u}"))).await?;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    db.start_again()?;
    let rows = 1_000 + round * 200;
    env.wait_drained(rows, Duration::from_secs(60)).await?;
    let want = stream_ids(&mut conn, 1..=10).await?;
    assert_eq!(order_ids(&env.pool).await?, want);
    let lags = seckill_client::lag::all_lags(&mut conn, "seckill-orders").await?;
    assert!(
        lags.iter().all(|l| l.lag == Some(0) && l.pending == 0),
        "{lags:?}"
    );
    stop.cancel();
    h.await??;
    Ok(())
}

/// SIGTERM while reservations keep arriving: the worker finishes and acks the batch in hand
/// and exits; nothing is left pending, and what it acked is in MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_in_hand() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 1, 100_000).await?;
    let dir = tempfile::tempdir()?;
    let config = env.binary_config(dir.path(), "discover_interval_ms: 100, batch_size: 200", "")?;
    let mut worker = spawn_worker_binary(&config)?;
    let mut sent = 0;
    let mut termed = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.is_running() {
        assert!(
            Instant::now() < deadline,
            "worker did not exit after SIGTERM"
        );
        reserve_many(&mut conn, 1, (0..200).map(|u| format!("s{sent}u{u}"))).await?;
        sent += 200;
        if !termed && env.order_count().await? > 0 {
            let status = Command::new("kill")
                .args(["-TERM", &worker.pid().to_string()])
                .status()?;
            assert!(status.success());
            termed = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(termed);
    let lags = seckill_client::lag::all_lags(&mut conn, "seckill-orders").await?;
    assert_eq!(lags.iter().map(|l| l.pending).sum::<u64>(), 0, "{lags:?}");
    let delivered = sent as u64 - lags.iter().map(|l| l.lag.unwrap_or(0)).sum::<u64>();
    assert_eq!(env.order_count().await? as u64, delivered);
    Ok(())
}
