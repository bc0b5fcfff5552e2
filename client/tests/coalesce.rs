//! The RESERVE coalescer against a real redis-server with the module: many concurrent
//! commands of different outcomes share pipelines, and every caller gets its own reply —
//! checked by owner, not by kind: each reservation id must be the stream entry of the
//! caller's own user, each refusal must be the one the caller's own command earns.

use redis::aio::ConnectionManager;
use seckill_client::coalesce::Coalescer;
use seckill_client::streams::read_stream;
use seckill_client::ClientError as StoreError;
use seckill_core::{keys, ActivityId, Refusal};
use seckill_testkit::RedisServer;
use std::collections::{HashMap, HashSet};

const STOCK: u64 = 300;

/// What caller `i` sends: 500 distinct buyers, 250 repeat clicks of the first buyers, 250
/// commands with an argument error unique to the caller (the module echoes it back).
fn command_of(i: u32) -> (Option<String>, redis::Cmd) {
    let mut cmd = redis::cmd("SECKILL.RESERVE");
    match i {
        0..=499 => {
            cmd.arg("c").arg(format!("u{i}")).arg(1);
            (Some(format!("u{i}")), cmd)
        }
        500..=749 => {
            cmd.arg("c").arg(format!("u{}", i - 500)).arg(1);
            (Some(format!("u{}", i - 500)), cmd)
        }
        _ => {
            cmd.arg("c")
                .arg(format!("u{i}"))
                .arg(1)
                .arg(format!("bad{i}"));
            (None, cmd)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_gets_its_own_reply() -> anyhow::Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    redis.cli(&["SECKILL.CREATE", "c", "STOCK", &STOCK.to_string()])?;
    let conn = ConnectionManager::new(redis.client()?).await?;
    let batch = Coalescer::spawn(conn.clone());

    let mut tasks = Vec::new();
    for i in 0..1_000u32 {
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let (_, cmd) = command_of(i);
            (i, batch.query(cmd).await)
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await?);
    }

    // The truth, from Redis: which user each reservation id belongs to, and the stock left
    // after it (the n-th entry of the stream leaves STOCK - n - 1).
    let mut read = conn.clone();
    let stream = read_stream(&mut read, &keys::stream(&ActivityId::parse("c")?)).await?;
    let mut owner_of: HashMap<String, (String, u64)> = HashMap::new();
    for (n, (id, fields)) in stream.iter().enumerate() {
        let user = fields
            .iter()
            .find(|(k, _)| k.as_slice() == b"user")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("entry {id} has no user field: {fields:?}"));
        owner_of.insert(id.clone(), (user, STOCK - n as u64 - 1));
    }
    assert_eq!(stream.len() as u64, STOCK, "exactly the stock is sold");
    let buyers: HashSet<&String> = owner_of.values().map(|(u, _)| u).collect();
    assert_eq!(buyers.len() as u64, STOCK, "each unit to a distinct buyer");

    let mut ids_returned = HashSet::new();
    for (i, reply) in replies {
        let (user, _) = command_of(i);
        match (user, reply) {
            (Some(user), Ok(v)) => {
                let r = seckill_client::sale::parse_reservation(v)?;
                let (owner, remaining) = owner_of
                    .get(&r.id)
                    .unwrap_or_else(|| panic!("caller {i} got {}, not in the stream", r.id));
                assert_eq!(
                    owner, &user,
                    "caller {i} ({user}) got reservation {} of {owner}",
                    r.id
                );
                assert_eq!(
                    r.remaining, *remaining,
                    "caller {i} got the remaining stock of another reservation"
                );
                assert!(ids_returned.insert(r.id.clone()), "{} returned twice", r.id);
            }
            (Some(user), Err(StoreError::Refused { refusal, message })) => {
                // LIMIT is checked before stock: a user who holds a unit is told LIMIT (naming
                // that user), one who holds none is told SOLDOUT.
                let holds = buyers.contains(&user);
                match refusal {
                    Refusal::Limit => {
                        assert!(holds, "caller {i} ({user}) holds nothing but got LIMIT");
                        assert!(
                            message.contains(&format!("user '{user}'")),
                            "caller {i} ({user}) got another caller's LIMIT: {message}"
                        );
                    }
                    Refusal::SoldOut => {
                        assert!(!holds, "caller {i} ({user}) holds a unit but got SOLDOUT")
                    }
                    other => panic!("caller {i} ({user}): unexpected refusal {other:?}"),
                }
            }
            (None, Err(StoreError::Argument(m))) => assert!(
                m.contains(&format!("'bad{i}'")),
                "caller {i} got another caller's argument error: {m}"
            ),
            (user, other) => panic!("caller {i} ({user:?}): unexpected {other:?}"),
        }
    }
    assert_eq!(
        ids_returned.len() as u64,
        STOCK,
        "every reservation in the stream was answered to its caller"
    );
    let status = redis.cli(&["SECKILL.STATUS", "c"])?;
    assert!(status.contains("remaining\n0"), "{status}");
    Ok(())
}
