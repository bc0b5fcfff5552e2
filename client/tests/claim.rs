//! Taking over idle entries (`seckill_client::streams::claim_idle`) against a real
//! redis-server with the module: only entries idle long enough, with their delivery counts,
//! and no `XAUTOCLAIM` at all while nothing is idle (in Redis 7.0 it looks up every pending
//! entry it scans, milliseconds of Redis' one thread for a large pending list).

use seckill_client::streams::{self, RawEntry};
use seckill_core::{keys, ActivityId};
use seckill_testkit::RedisServer;
use std::time::Duration;

/// Activity `a` with `n` reservations, group `g` at the start of its stream.
async fn backlog(
    redis: &RedisServer,
    conn: &mut redis::aio::MultiplexedConnection,
    n: usize,
) -> anyhow::Result<(String, ActivityId)> {
    redis.cli(&["SECKILL.CREATE", "a", "STOCK", "100000", "PRODUCT", "p-1"])?;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SECKILL.RESERVE")
            .arg("a")
            .arg(format!("user-{i}"))
            .arg(1)
            .ignore();
    }
    pipe.query_async::<()>(conn).await?;
    let id = ActivityId::parse("a")?;
    let key = keys::stream(&id);
    streams::ensure_group(conn, &key, "g").await?;
    Ok((key, id))
}

/// Calls of `command` since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
fn calls(redis: &RedisServer, command: &str) -> anyhow::Result<u64> {
    let stats = redis.cli(&["INFO", "commandstats"])?;
    let prefix = format!("cmdstat_{command}:calls=");
    Ok(stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(Ok(0), str::parse)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_idle_sends_no_xautoclaim() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let mut conn = redis.client()?.get_multiplexed_async_connection().await?;
    let stream = backlog(&redis, &mut conn, 3_000).await?;
    let streams = [stream.clone()];
    let read = streams::read_new(&mut conn, "g", "c1", &streams, 3_000, 10).await?;
    assert_eq!(read.len(), 3_000);

    redis.cli(&["CONFIG", "RESETSTAT"])?;
    let (key, activity) = &stream;
    let claimed = streams::claim_idle(&mut conn, key, activity, "g", "c2", 30_000, 3_000).await?;
    assert!(
        claimed.is_empty(),
        "entries delivered just now were claimed"
    );
    assert_eq!(
        calls(&redis, "xautoclaim")?,
        0,
        "XAUTOCLAIM scanned a pending list with nothing idle in it"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idle_entries_are_claimed_with_their_deliveries() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let mut conn = redis.client()?.get_multiplexed_async_connection().await?;
    let stream = backlog(&redis, &mut conn, 30).await?;
    let streams = [stream.clone()];
    let (key, activity) = &stream;

    // Ten delivered long ago, five of them acked; then ten more delivered just now.
    let old = streams::read_new(&mut conn, "g", "c1", &streams, 10, 10).await?;
    let acked: Vec<&RawEntry> = old.iter().take(5).collect();
    streams::ack(&mut conn, "g", &acked).await?;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let fresh = streams::read_new(&mut conn, "g", "c1", &streams, 10, 10).await?;
    assert_eq!(fresh.len(), 10);

    let claimed = streams::claim_idle(&mut conn, key, activity, "g", "c2", 1_000, 100).await?;
    let ids: Vec<&str> = claimed.iter().map(|e| e.id.as_str()).collect();
    let want: Vec<&str> = old[5..].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, want, "the idle, unacked entries, and only those");
    assert!(
        claimed.iter().all(|e| e.deliveries == 2),
        "a claim is a second delivery: {:?}",
        claimed.iter().map(|e| e.deliveries).collect::<Vec<_>>()
    );
    assert_eq!(claimed[0].fields, old[5].fields);

    // Now c2's and fresh: nothing is idle any more.
    let again = streams::claim_idle(&mut conn, key, activity, "g", "c3", 1_000, 100).await?;
    assert!(again.is_empty());
    Ok(())
}
