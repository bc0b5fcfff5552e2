//! `min_replicas` on a replicated standalone server: a reservation is acknowledged as
//! replicated while the replica answers, and pending (not refused, not lost) once it is gone.

use seckill_client::{ClientSettings, CreateArgs, Durability, SeckillClient, Target};
use seckill_core::{ActivityId, UserId};
use seckill_testkit::{RedisOptions, RedisServer};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_reservation_is_replicated_or_pending() -> anyhow::Result<()> {
    let primary = RedisServer::start()?;
    let mut replica = RedisServer::start_with(RedisOptions {
        replica_of: Some(primary.port),
        ..RedisOptions::default()
    })?;
    // The replica is online once the primary lists it so.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !primary
        .cli(&["INFO", "replication"])?
        .contains("state=online")
    {
        anyhow::ensure!(Instant::now() < deadline, "the replica never came online");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = SeckillClient::connect_with(&ClientSettings {
        target: Target::new(&primary.url(), &[]),
        timeout: Duration::from_secs(2),
        min_replicas: 1,
        replica_ack_timeout: Duration::from_millis(200),
    })
    .await?;
    let a = ActivityId::parse("r1")?;
    client
        .create(&CreateArgs {
            activity: a.clone(),
            stock: 10,
            limit: 1,
            start_ms: 0,
            end_ms: None,
            product: String::new(),
            price_cents: 1,
        })
        .await?;
    let r = client.reserve(&a, &UserId::parse("u1")?, 1, "p").await?;
    assert_eq!(r.durability, Durability::Replicated(1));
    // The replica is on the primary's side of the WAIT: the entry is there.
    let on_replica = replica.cli(&["XRANGE", "seckill:{r1}:stream", &r.id, &r.id])?;
    assert!(on_replica.contains(&r.id), "{on_replica}");

    replica.kill();
    let started = Instant::now();
    let r = client.reserve(&a, &UserId::parse("u2")?, 1, "p").await?;
    assert_eq!(r.durability, Durability::Pending, "no replica: pending");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a pending answer takes about the ack timeout, not the deadline: {:?}",
        started.elapsed()
    );
    // Held all the same (the primary has it), which `result` reports.
    assert_eq!(client.held(&a, &UserId::parse("u2")?).await?, 1);
    Ok(())
}
