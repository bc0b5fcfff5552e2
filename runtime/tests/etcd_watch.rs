//! The runtime-settings watch against a real etcd: an idle connection stays up (no
//! reconnection, so no "watch interrupted" warning), and a change made after a long idle
//! period still arrives.

use seckill_runtime::etcd::watch::{watch_prefix, Mirror};
use seckill_testkit::Etcd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long the watch sits idle: longer than etcd's keep-alive enforcement window (5 s),
/// over which a client that pings too eagerly is sent GOAWAY.
const IDLE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_is_never_interrupted_and_still_sees_changes() -> anyhow::Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let endpoints = vec![etcd.endpoint()];
    let settings = seckill_runtime::EtcdSettings {
        endpoints: endpoints.clone(),
        ..Default::default()
    };
    let seen: Arc<Mutex<Vec<Mirror>>> = Arc::default();
    let stop = CancellationToken::new();
    let task = tokio::spawn(watch_prefix(
        settings,
        "/seckill/config/".into(),
        {
            let seen = seen.clone();
            move |m: &Mirror| seen.lock().expect("lock").push(m.clone())
        },
        stop.clone(),
    ));
    // The first read reports the (empty) mirror once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().expect("lock").is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the watch never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(IDLE).await;
    // Every reconnection re-reads the prefix and reports it again: exactly one report means
    // the watch was never interrupted while idle.
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "the idle watch was interrupted and reconnected"
    );
    let mut client = etcd_client::Client::connect(&endpoints, None).await?;
    client
        .put("/seckill/config/rate_limit.per_user_burst", "7", None)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = seen.lock().expect("lock").last().cloned();
        if last
            .as_ref()
            .and_then(|m| m.get("rate_limit.per_user_burst"))
            .map(String::as_str)
            == Some("7")
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the change never arrived: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "one report for the change"
    );
    stop.cancel();
    task.await?;
    Ok(())
}
