//! OTLP export end to end: the real `seckill-worker` binary with `telemetry.otlp_endpoint`
//! pointing at a minimal in-test OTLP/gRPC receiver (a collector stands outside our system,
//! so a stub of it is fair). A batch that drains reservations into MySQL must arrive as one
//! trace from service `seckill-worker`: `worker.batch` with its `redis.xreadgroup`,
//! `mysql.insert_orders` and `redis.xack` children.

mod support;

use seckill_testkit::{ChildGuard, OtlpReceiver, SeenSpan};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const CHILDREN: [&str; 3] = ["redis.xreadgroup", "mysql.insert_orders", "redis.xack"];

/// A `worker.batch` span together with its three children (in `CHILDREN` order), if one
/// batch that inserted orders has fully arrived. Idle polls also make `worker.batch` spans,
/// with only a `redis.xreadgroup` child; they are skipped.
fn full_batch(seen: &[SeenSpan]) -> Option<(SeenSpan, Vec<SeenSpan>)> {
    seen.iter()
        .filter(|s| s.name == "worker.batch")
        .find_map(|batch| {
            let children: Option<Vec<SeenSpan>> = CHILDREN
                .iter()
                .map(|name| {
                    seen.iter()
                        .find(|s| s.name == *name && s.parent_span_id == batch.span_id)
                        .cloned()
                })
                .collect();
            children.map(|c| (batch.clone(), c))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_trace_from_xreadgroup_to_xack() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start();

    // Real redis-server with the module, a fresh migrated database on the shared MariaDB.
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 11, 100).await?;

    let dir = tempfile::tempdir()?;
    let config = env.binary_config(
        dir.path(),
        "",
        &format!("telemetry: {{otlp_endpoint: '{}'}}", receiver.endpoint()),
    )?;
    let log_path = tempfile::NamedTempFile::new()?;
    let log = log_path.reopen()?;
    let logs = || std::fs::read_to_string(log_path.path()).unwrap_or_default();
    let child = Command::new(env!("CARGO_BIN_EXE_seckill-worker"))
        .arg("--config")
        .arg(&config)
        // Spans are sent with the next batch export, every 200 ms here.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        // The spans are `info`: a stricter filter would drop them before export.
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut worker = ChildGuard::new(child);

    reserve_many(&mut conn, 11, (0..5).map(|u| format!("u{u}"))).await?;
    if let Err(e) = env.wait_drained(5, Duration::from_secs(30)).await {
        anyhow::bail!("{e}\nworker running: {}\n{}", worker.is_running(), logs());
    }

    let (batch, children) = receiver
        .wait_for(Duration::from_secs(20), full_batch)
        .await
        .map_err(|e| anyhow::anyhow!("no full batch trace: {e}\n{}", logs()))?;

    assert!(
        batch.is_trace_root(),
        "worker.batch starts its trace: {batch:?}"
    );
    for child in &children {
        child.assert_child_of(&batch, "seckill-worker");
    }

    worker.kill();
    receiver.stop().await;
    Ok(())
}
