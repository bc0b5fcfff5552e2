//! The worker's `/health` tells the truth: 200 while it reaches Redis and MySQL, 503 naming
//! what is down while either is, and 200 again once it is back.

mod support;

use seckill_testkit::MariaDb;
use std::time::{Duration, Instant};
use support::*;

/// Polls `/health` until its status is `want`; returns the body.
async fn wait_health(port: u16, want: u16) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("http://127.0.0.1:{port}/health");
    loop {
        let last = match reqwest::get(&url).await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                if status == want {
                    return Ok(body);
                }
                format!("{status} {body}")
            }
            Err(e) => e.to_string(),
        };
        anyhow::ensure!(
            Instant::now() < deadline,
            "/health never answered {want}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflects_redis_and_mysql() -> anyhow::Result<()> {
    let mut db = tokio::task::spawn_blocking(MariaDb::start).await??;
    let mut env = env_on(Some(&db)).await?;
    let worker = seckill_worker::Worker::build(env.settings()).await?;
    let port = worker.metrics_port().expect("metrics listener");
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));

    assert_eq!(wait_health(port, 200).await?.trim(), "ok");
    db.stop();
    assert!(wait_health(port, 503).await?.contains("mysql unreachable"));
    db.start_again()?;
    wait_health(port, 200).await?;
    env.redis.kill();
    assert!(wait_health(port, 503).await?.contains("redis unreachable"));

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    Ok(())
}
