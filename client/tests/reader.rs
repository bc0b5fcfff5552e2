//! The worker's own `XREADGROUP` connection (`seckill_client::reader`) against a real
//! redis-server with the module: the entries it reads are exactly those redis-rs' reads
//! find, its errors carry redis' codes, it logs in as the URL says, and it recovers from a
//! connection redis closed.

use seckill_client::reader::StreamReader;
use seckill_client::streams::{self, RawEntry};
use seckill_client::Target;
use seckill_core::{keys, ActivityId};
use seckill_testkit::RedisServer;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Activities `a` and `b`, `n` reservations in each (distinct users), groups `g1` and `g2`
/// at the start of both streams.
async fn backlog(redis: &RedisServer, n: usize) -> anyhow::Result<Vec<(String, ActivityId)>> {
    let mut conn = redis.client()?.get_multiplexed_async_connection().await?;
    let mut out = Vec::new();
    for a in ["a", "b"] {
        redis.cli(&[
            "SECKILL.CREATE",
            a,
            "STOCK",
            "100000",
            "PRODUCT",
            "p-1",
            "LIMIT",
            "3",
        ])?;
        let mut pipe = redis::pipe();
        for i in 0..n {
            pipe.cmd("SECKILL.RESERVE")
                .arg(a)
                .arg(format!("user-{i}"))
                .arg(1 + i % 3)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        let id = ActivityId::parse(a)?;
        let key = keys::stream(&id);
        for g in ["g1", "g2"] {
            streams::ensure_group(&mut conn, &key, g).await?;
        }
        out.push((key, id));
    }
    Ok(out)
}

fn reader_of(redis: &RedisServer, url: &str) -> anyhow::Result<StreamReader> {
    StreamReader::for_node(
        &Target::new(url, &[]),
        &format!("127.0.0.1:{}", redis.port),
        TIMEOUT,
    )
    .ok_or_else(|| anyhow::anyhow!("a plain TCP node has a reader"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_what_redis_rs_reads() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let keys = backlog(&redis, 3_000).await?;
    let mut reader = reader_of(&redis, &redis.url())?;
    let mut conn = redis.client()?.get_multiplexed_async_connection().await?;

    // Batches of up to 2 x 700 entries (replies of ~100 KB, several socket reads each), the
    // same sizes through both, in two groups of their own.
    let (mut ours, mut theirs) = (Vec::<RawEntry>::new(), Vec::<RawEntry>::new());
    loop {
        let a = reader.read_new("g1", "c", &keys, 700, 10).await?;
        let b = streams::read_new(&mut conn, "g2", "c", &keys, 700, 10).await?;
        assert_eq!(a, b, "one batch, read both ways");
        if a.is_empty() {
            break;
        }
        ours.extend(a);
        theirs.extend(b);
    }
    assert_eq!(ours.len(), 6_000);
    assert_eq!(ours, theirs);
    let first = &ours[0];
    assert_eq!(first.activity.as_str(), "a");
    assert_eq!(first.deliveries, 1);
    assert!(first
        .fields
        .iter()
        .any(|(k, v)| k == b"user" && v == b"user-0"));
    // Every entry is pending in the reader's group: the read was XREADGROUP's own.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&keys[0].0)
        .arg("g1")
        .query_async(&mut conn)
        .await?;
    let count = match &pending {
        redis::Value::Array(items) => items.first().cloned(),
        _ => None,
    };
    assert_eq!(count, Some(redis::Value::Int(3_000)), "{pending:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_read_waits_its_block_time_then_returns_nothing() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let keys = backlog(&redis, 0).await?;
    let mut reader = reader_of(&redis, &redis.url())?;
    let started = std::time::Instant::now();
    assert!(reader.read_new("g1", "c", &keys, 10, 200).await?.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150));
    // An entry written while a read blocks is that read's.
    let blocked = tokio::spawn(async move {
        let got = reader.read_new("g1", "c", &keys, 10, 5_000).await;
        (reader, got)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.cli(&["SECKILL.RESERVE", "b", "late", "1"])?;
    let (_, got) = blocked.await?;
    let got = got?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].activity.as_str(), "b");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_redis_codes_and_the_next_read_reconnects() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let keys = backlog(&redis, 10).await?;
    let mut reader = reader_of(&redis, &redis.url())?;

    let e = reader
        .read_new("no-such-group", "c", &keys, 10, 10)
        .await
        .expect_err("no such group");
    assert_eq!(e.code(), Some("NOGROUP"), "{e}");
    assert_eq!(reader.read_new("g1", "c", &keys, 5, 10).await?.len(), 10);

    // Redis closes the reader's connection: a read fails or succeeds, never loses entries,
    // and the one after it reads on a new connection.
    let list = redis.cli(&["CLIENT", "LIST"])?;
    let id = list
        .lines()
        .find(|l| l.contains("cmd=xreadgroup"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|f| f.strip_prefix("id="))
        .ok_or_else(|| anyhow::anyhow!("the reader's connection in CLIENT LIST: {list}"))?;
    redis.cli(&["CLIENT", "KILL", "ID", id])?;
    let mut got = match reader.read_new("g1", "c", &keys, 5, 10).await {
        Ok(v) => v,
        Err(e) => {
            assert!(e.is_io_error() || e.is_connection_dropped(), "{e}");
            Vec::new()
        }
    };
    got.extend(reader.read_new("g1", "c", &keys, 5, 10).await?);
    assert_eq!(got.len(), 10, "the other half of both streams");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_as_the_url_says() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let keys = backlog(&redis, 4).await?;
    redis.cli(&[
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">s3cret",
        "~*",
        "+xreadgroup",
    ])?;
    let port = redis.port;
    let mut reader = reader_of(&redis, &format!("redis://reader:s3cret@127.0.0.1:{port}/"))?;
    assert_eq!(reader.read_new("g1", "c", &keys, 10, 10).await?.len(), 8);

    let mut wrong = reader_of(&redis, &format!("redis://reader:wrong@127.0.0.1:{port}/"))?;
    let e = wrong
        .read_new("g2", "c", &keys, 10, 10)
        .await
        .expect_err("a wrong password");
    assert!(e.to_string().contains("WRONGPASS"), "{e}");

    // A user without XREADGROUP: redis' own refusal.
    redis.cli(&["ACL", "SETUSER", "peeker", "on", ">pw", "~*", "+xrange"])?;
    let mut peeker = reader_of(&redis, &format!("redis://peeker:pw@127.0.0.1:{port}/"))?;
    let e = peeker
        .read_new("g2", "c", &keys, 10, 10)
        .await
        .expect_err("no permission");
    assert!(e.to_string().contains("NOPERM"), "{e}");

    // Over TLS the worker reads through redis-rs: there is no reader.
    let tls = Target::new(&format!("rediss://127.0.0.1:{port}/"), &[]);
    assert!(StreamReader::for_node(&tls, &format!("127.0.0.1:{port}"), TIMEOUT).is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_abandoned_in_flight_leaves_no_reply_behind() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let keys = backlog(&redis, 0).await?;
    let mut reader = reader_of(&redis, &redis.url())?;
    // The caller stops waiting while redis still blocks on the read.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        reader.read_new("g1", "c", &keys, 10, 2_000),
    )
    .await;
    assert!(abandoned.is_err(), "still blocked when abandoned");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for user in ["first", "second"] {
        redis.cli(&["SECKILL.RESERVE", "a", user, "1"])?;
        // Had the abandoned read's connection stayed open, redis would answer it now, and
        // every later read would return the reply of the read before it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = reader.read_new("g1", "c", &keys, 10, 10).await?;
        let users: Vec<&[u8]> = got
            .iter()
            .flat_map(|e| e.fields.iter().filter(|(k, _)| k == b"user"))
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(users, [user.as_bytes()], "each read gets its own reply");
        // Past the read's BLOCK time before the next entry is written.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
