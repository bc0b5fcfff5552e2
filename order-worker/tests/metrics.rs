//! The worker's per-activity gauges follow Redis: they show the stream, the group's lag and
//! the stock left, and they disappear when the activity's keys are deleted (a finished sale
//! cleaned up must not haunt dashboards and alerts with its last values).

mod support;

use seckill_core::keys;
use std::time::{Duration, Instant};
use support::*;

/// Waits until `check` holds for the rendered metrics, or fails with the last rendering.
async fn wait_metrics(
    metrics: &seckill_worker::metrics::Metrics,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics.render();
        if check(&text) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let ours: Vec<&str> = text.lines().filter(|l| l.contains("activity=")).collect();
            anyhow::bail!("metrics never showed {what}; per-activity series:\n{ours:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_gauges_follow_redis_and_vanish_with_the_stream() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 7, 100).await?;
    create_activity(&mut conn, 8, 100).await?;
    let worker = seckill_worker::Worker::build(env.settings()).await?;
    let metrics = worker.metrics();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));

    reserve_many(&mut conn, 7, (0..5).map(|u| format!("m{u}"))).await?;
    reserve_many(&mut conn, 8, (0..3).map(|u| format!("n{u}"))).await?;
    env.wait_drained(8, Duration::from_secs(30)).await?;
    wait_metrics(&metrics, "activity 7 drained with 95 left", |t| {
        t.contains("seckill_worker_stream_length{activity=\"7\"} 5")
            && t.contains("seckill_worker_group_lag{activity=\"7\"} 0")
            && t.contains("seckill_worker_group_pending{activity=\"7\"} 0")
            && t.contains("seckill_worker_stock_remaining{activity=\"7\"} 95")
            && t.contains("seckill_worker_stream_length{activity=\"8\"} 3")
    })
    .await?;

    // Deleting the activity keeps its stream (orders may still be draining): only the
    // stock series goes.
    let a7 = act(7);
    let _: i64 = redis::cmd("DEL")
        .arg(keys::meta(&a7))
        .query_async(&mut conn)
        .await?;
    wait_metrics(&metrics, "no stock series for the deleted activity", |t| {
        !t.contains("seckill_worker_stock_remaining{activity=\"7\"}")
            && t.contains("seckill_worker_stream_length{activity=\"7\"} 5")
    })
    .await?;

    // Once the stream is gone too, every series of activity 7 goes; activity 8 stays.
    let _: i64 = redis::cmd("DEL")
        .arg(keys::stream(&a7))
        .arg(keys::buyers(&a7))
        .arg(keys::released(&a7))
        .arg(keys::dead_letters(&a7))
        .query_async(&mut conn)
        .await?;
    wait_metrics(&metrics, "activity 7 gone, activity 8 still there", |t| {
        !t.contains("activity=\"7\"")
            && t.contains("seckill_worker_stream_length{activity=\"8\"} 3")
    })
    .await?;

    stop.cancel();
    handle.await??;
    Ok(())
}
