//! The RESERVE coalescer against a real redis-server with the module: many concurrent
//! commands of different outcomes share pipelines, and every caller gets its own reply.

use redis::aio::ConnectionManager;
use seckill_client::coalesce::Coalescer;
use seckill_client::ClientError as StoreError;
use seckill_core::Refusal;
use seckill_testkit::RedisServer;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_gets_its_own_reply() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    redis.cli(&["SECKILL.CREATE", "c", "STOCK", "300"])?;
    let conn = ConnectionManager::new(redis.client()?).await?;
    let batch = Coalescer::spawn(conn);

    // 1,000 concurrent callers: 500 distinct buyers for 300 units, 250 repeat clicks of
    // the first buyers, 250 argument errors.
    let mut tasks = Vec::new();
    for i in 0..1_000u32 {
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let mut cmd = redis::cmd("SECKILL.RESERVE");
            match i {
                0..=499 => cmd.arg("c").arg(format!("u{i}")).arg(1),
                500..=749 => cmd.arg("c").arg(format!("u{}", i - 500)).arg(1),
                _ => cmd.arg("c").arg(format!("u{i}")).arg(0),
            };
            (i, batch.query(cmd).await)
        }));
    }
    let (mut won, mut wins, mut sold_out, mut limit, mut invalid) = (HashSet::new(), 0, 0, 0, 0);
    for t in tasks {
        let (i, reply) = t.await?;
        match reply {
            Ok(redis::Value::Array(v)) => {
                assert!(i < 750, "caller {i} (an argument error) got a reservation");
                assert_eq!(v.len(), 2, "[reservation-id, remaining]");
                won.insert(i % 500);
                wins += 1;
            }
            Err(StoreError::Refused {
                refusal: Refusal::SoldOut,
                ..
            }) => sold_out += 1,
            Err(StoreError::Refused {
                refusal: Refusal::Limit,
                ..
            }) => limit += 1,
            Err(StoreError::Argument(m)) => {
                assert!(i >= 750, "caller {i} got an argument error: {m}");
                invalid += 1;
            }
            other => panic!("caller {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 300, "exactly the stock is sold");
    assert_eq!(won.len(), 300, "each unit to a distinct buyer");
    assert_eq!(invalid, 250);
    assert_eq!(
        wins + sold_out + limit + invalid,
        1_000,
        "every caller got one reply"
    );
    let status = redis.cli(&["SECKILL.STATUS", "c"])?;
    assert!(status.contains("remaining\n0"), "{status}");
    Ok(())
}
