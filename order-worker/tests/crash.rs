//! Failures mid-run: the worker binary SIGKILLed again and again, and MariaDB down for 10 s.
//! Neither loses nor duplicates an order.

mod support;

use rand::Rng;
use seckill_core::keys;
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

/// Pending entries of the consumers named `<prefix>-<n>` in every activity stream.
async fn pending_of(
    conn: &mut redis::aio::MultiplexedConnection,
    activities: u64,
    prefix: &str,
) -> anyhow::Result<u64> {
    let mut n = 0;
    for a in 1..=activities {
        let summary: redis::Value = match redis::cmd("XPENDING")
            .arg(keys::stream(&act(a)))
            .arg("seckill-orders")
            .query_async(conn)
            .await
        {
            // No group yet: no worker has discovered that stream.
            Err(e) if e.code() == Some("NOGROUP") => continue,
            other => other?,
        };
        let redis::Value::Array(parts) = summary else {
            continue;
        };
        let Some(redis::Value::Array(consumers)) = parts.get(3) else {
            continue;
        };
        for c in consumers {
            let (name, count): (String, u64) = redis::from_redis_value(c)?;
            if name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('-'))
            {
                n += count;
            }
        }
    }
    Ok(n)
}

/// At least 20,000 reservations while the worker binary is SIGKILLed at random moments and
/// restarted, until at least 10 kills happened and at least 3 of them caught the killed
/// worker holding delivered, unacked entries (the window between XREADGROUP and the XACK
/// after COMMIT, seen with XPENDING for the dead consumers' names right after the kill):
/// every acknowledged reservation is exactly one row and the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_the_worker_repeatedly() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    const ACTIVITIES: u64 = 20;
    for a in 1..=ACTIVITIES {
        create_activity(&mut conn, a, 100_000).await?;
    }
    let dir = tempfile::tempdir()?;
    // Each life of the worker gets its own consumer names, so the entries a killed one
    // held can be told apart.
    let spawn = |life: u32| -> anyhow::Result<ChildGuard> {
        let config = env.binary_config(
            dir.path(),
            &format!(
                "claim_idle_ms: 1000, claim_interval_ms: 300, batch_size: 500, consumer: life{life}"
            ),
            "",
        )?;
        spawn_worker_binary(&config)
    };
    let producing = tokio_util::sync::CancellationToken::new();
    let producer = {
        let mut conn = env.conn().await?;
        let producing = producing.clone();
        tokio::spawn(async move {
            let mut acked = std::collections::BTreeSet::new();
            let mut round = 0u64;
            while round < 10 || !producing.is_cancelled() {
                for a in 1..=ACTIVITIES {
                    let ids = reserve_many(&mut conn, a, (0..100).map(|u| format!("r{round}u{u}")))
                        .await?;
                    acked.extend(ids.into_iter().map(|r| (a, r)));
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            anyhow::Ok(acked)
        })
    };
    let mut life = 0;
    let mut worker = spawn(life)?;
    let (mut kills, mut caught) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while kills < 10 || caught < 3 {
        assert!(
            Instant::now() < deadline,
            "{kills} kills, {caught} with entries in hand: the window was not hit"
        );
        let pause = rand::thread_rng().gen_range(100..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        assert!(worker.is_running(), "the worker exited by itself");
        worker.kill();
        kills += 1;
        if pending_of(&mut conn, ACTIVITIES, &format!("life{life}")).await? > 0 {
            caught += 1;
        }
        life += 1;
        worker = spawn(life)?;
    }
    eprintln!("{kills} kills, {caught} caught the worker with delivered, unacked entries");
    producing.cancel();
    let acked = producer.await??;
    assert!(acked.len() >= 20_000);
    env.wait_drained(acked.len() as i64, Duration::from_secs(120))
        .await?;
    let rows: std::collections::BTreeSet<(u64, String)> =
        order_ids(&env.pool).await?.into_iter().collect();
    assert!(
        rows == acked,
        "rows differ from the acknowledged reservations: missing {:?}, extra {:?}",
        acked.difference(&rows).take(5).collect::<Vec<_>>(),
        rows.difference(&acked).take(5).collect::<Vec<_>>()
    );
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
/// and exits. Nothing is left pending, and the orders are exactly the entries the group
/// acked (as a set: delivered, at or below the last-delivered id, not pending). A new
/// worker then drains the rest: the orders are exactly the acknowledged reservations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_in_hand() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 1, 100_000).await?;
    let dir = tempfile::tempdir()?;
    let config = env.binary_config(dir.path(), "discover_interval_ms: 100, batch_size: 200", "")?;
    let mut worker = spawn_worker_binary(&config)?;
    let mut reserved = std::collections::BTreeSet::new();
    let mut termed = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.is_running() {
        assert!(
            Instant::now() < deadline,
            "worker did not exit after SIGTERM"
        );
        let n = reserved.len();
        let ids = reserve_many(&mut conn, 1, (0..200).map(|u| format!("s{n}u{u}"))).await?;
        reserved.extend(ids.into_iter().map(|r| (1u64, r)));
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
    // The worker is gone: what it acked is final, no waiting needed to see "no more".
    let key = keys::stream(&act(1));
    let marks = seckill_client::lag::group_marks(&mut conn, &key, "seckill-orders")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no consumer group"))?;
    assert_eq!(marks.first_pending, None, "entries left pending at exit");
    let acked: std::collections::BTreeSet<(u64, String)> = stream_ids(&mut conn, [1])
        .await?
        .into_iter()
        .filter(|(_, rid)| {
            seckill_core::StreamId::parse(rid).is_ok_and(|id| id <= marks.last_delivered)
        })
        .collect();
    let rows: std::collections::BTreeSet<(u64, String)> =
        order_ids(&env.pool).await?.into_iter().collect();
    assert!(!acked.is_empty());
    assert!(
        rows == acked,
        "orders differ from the acked entries: missing {:?}, extra {:?}",
        acked.difference(&rows).take(5).collect::<Vec<_>>(),
        rows.difference(&acked).take(5).collect::<Vec<_>>()
    );
    let _again = spawn_worker_binary(&config)?;
    env.wait_drained(reserved.len() as i64, Duration::from_secs(60))
        .await?;
    let rows: std::collections::BTreeSet<(u64, String)> =
        order_ids(&env.pool).await?.into_iter().collect();
    assert!(
        rows == reserved,
        "orders differ from the acknowledged reservations"
    );
    Ok(())
}
