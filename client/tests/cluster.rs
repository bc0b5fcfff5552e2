//! The typed client against a real 3-primary, 3-replica Redis Cluster (the module on every
//! node): commands reach the node of their activity, reservations are confirmed on replicas,
//! and the per-shard views see every stream once.

use seckill_client::cluster::{self, TopologyCache};
use seckill_client::topology::slot_of;
use seckill_client::{
    sale, shards, ClientError, ClientSettings, CreateArgs, Durability, SeckillClient, Target,
};
use seckill_core::{keys, ActivityId, Refusal, UserId};
use seckill_testkit::RedisCluster;
use std::collections::BTreeMap;
use std::time::Duration;

fn act(n: u64) -> ActivityId {
    ActivityId::parse(n.to_string()).expect("numeric ids are valid")
}

fn args(a: &ActivityId, stock: u64) -> CreateArgs {
    CreateArgs {
        activity: a.clone(),
        stock,
        limit: 1,
        start_ms: 0,
        end_ms: None,
        product: "p".into(),
        price_cents: 100,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_land_on_their_shard_and_are_confirmed_on_replicas() -> anyhow::Result<()> {
    let cluster = RedisCluster::start()?;
    let target = Target::new("redis://127.0.0.1:1/", &cluster.seeds());
    let client = SeckillClient::connect_with(&ClientSettings {
        target: target.clone(),
        timeout: Duration::from_secs(2),
        min_replicas: 1,
        replica_ack_timeout: Duration::from_millis(500),
    })
    .await?;
    let topology = client.topology().expect("a cluster has a topology");
    assert_eq!(topology.shards.len(), 3);
    assert!(topology.shards.iter().all(|s| s.replicas.len() == 1));

    // 30 activities over the 3 shards.
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for n in 1..=30 {
        let a = act(n);
        client.create(&args(&a, 5)).await?;
        let node = topology
            .primary_for(&a)
            .expect("every slot is served")
            .to_owned();
        *per_node.entry(node.clone()).or_default() += 1;
        // The record lives on that node and nowhere else.
        let port: u16 = node
            .rsplit_once(':')
            .map(|(_, p)| p)
            .unwrap_or("0")
            .parse()?;
        for n in &cluster.nodes {
            let got = n.cli(&["EXISTS", &keys::meta(&a)])?;
            let primary = n.port == port;
            let replica = topology.shards.iter().any(|s| {
                s.primary == node && s.replicas.contains(&format!("127.0.0.1:{}", n.port))
            });
            if primary {
                assert_eq!(got.trim(), "1", "activity {a} on its primary {node}");
            } else if !replica {
                assert!(
                    !got.trim().starts_with('1'),
                    "activity {a} on node {}",
                    n.port
                );
            }
        }
    }
    assert_eq!(
        per_node.len(),
        3,
        "every shard holds some activities: {per_node:?}"
    );

    // A sale on each: every reservation confirmed on the shard's replica.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=30 {
        for u in 0..8 {
            let c = client.clone();
            let user = UserId::parse(format!("u{u}"))?;
            tasks.spawn(async move { c.reserve(&act(n), &user, 1, "p").await });
        }
    }
    let mut won = 0;
    let mut sold_out = 0;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(r) => {
                assert_eq!(r.durability, Durability::Replicated(1), "{r:?}");
                won += 1;
            }
            Err(ClientError::Refused {
                refusal: Refusal::SoldOut,
                ..
            }) => sold_out += 1,
            Err(e) => panic!("unexpected failure: {e:#}"),
        }
    }
    assert_eq!(won, 30 * 5);
    assert_eq!(sold_out, 30 * 3);
    for n in 1..=30 {
        let st = client.status(&act(n)).await?.expect("exists");
        assert_eq!((st.total, st.remaining, st.reservations), (5, 0, 5));
    }

    // The per-shard views see each stream once, on the node that serves it.
    let (streams, failed) = shards::discover_all(&target, &topology, Duration::from_secs(2)).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(streams.len(), 30);
    for s in &streams {
        assert_eq!(Some(s.node.as_str()), topology.primary_for(&s.activity));
    }
    let views = shards::shard_views(&target, &topology, "g", Duration::from_secs(2)).await;
    assert_eq!(views.iter().map(|v| v.streams.len()).sum::<usize>(), 30);
    for v in &views {
        assert!(v.error.is_none(), "{v:?}");
        let r = v.replication.as_ref().expect("INFO replication");
        assert_eq!(r.acking(), 1, "{r:?}");
    }

    // The routed connection reaches every activity's keys (single-key commands).
    let mut conn = client.connection();
    for n in [1, 17, 30] {
        let st = sale::status(&mut conn, &act(n)).await?.expect("exists");
        assert_eq!(st.total, 5);
        let _ = slot_of(&act(n));
    }
    // The topology cache reads the same layout.
    let cache = TopologyCache::load(&target, Duration::from_secs(1)).await?;
    assert_eq!(cache.get().primaries(), topology.primaries());
    let _ = cluster::connect(&target, Duration::from_secs(1)).await?;
    Ok(())
}

/// The client's cluster connection follows a failover: once the cluster promoted the
/// replica, and again once the old primary is back as a replica, calls for the failed
/// shard's activity succeed within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_a_failover() -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start()?;
    let target = Target::new("redis://127.0.0.1:1/", &cluster.seeds());
    let client = SeckillClient::connect_with(&ClientSettings {
        target: target.clone(),
        timeout: Duration::from_millis(500),
        min_replicas: 1,
        replica_ack_timeout: Duration::from_millis(200),
    })
    .await?;
    let a = act(7);
    client.create(&args(&a, 1_000_000)).await?;
    // Activities on every shard, all under load.
    let all: Vec<ActivityId> = (100..109).map(act).collect();
    for x in &all {
        client.create(&args(x, 1_000_000)).await?;
    }
    let user = |n: u32| UserId::parse(format!("f{n}")).expect("user");
    client.reserve(&a, &user(0), 1, "p").await?;
    let slot = slot_of(&a);
    let via = cluster.nodes[0].port;
    let dead = cluster.primary_of_slot(via, slot)?;
    let layout = client.topology().expect("a cluster");
    let on_dead: std::collections::BTreeSet<String> = all
        .iter()
        .chain([&a])
        .filter(|x| layout.primary_for(x) == Some(format!("127.0.0.1:{dead}").as_str()))
        .map(|x| x.to_string())
        .collect();
    // Load on the activity the whole time (what a gateway under a sale sends).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    let failures = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<(Duration, String, String)>::new(),
    ));
    let t0 = std::time::Instant::now();
    for t in 0..48u32 {
        let (c, stop, all, failures) =
            (client.clone(), stop.clone(), all.clone(), failures.clone());
        let a = if t % 4 == 0 {
            a.clone()
        } else {
            all[t as usize % all.len()].clone()
        };
        load.spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let u = UserId::parse(format!("l{t}x{i}")).expect("user");
                if let Err(e) = c.reserve(&a, &u, 1, "p").await {
                    failures.lock().expect("lock").push((
                        t0.elapsed(),
                        a.to_string(),
                        e.to_string(),
                    ));
                }
                i += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill(dead)?;
    let killed = std::time::Instant::now();
    let mut n = 1;
    let mut log = Vec::new();
    // Until a reservation goes through again (202: the new primary has no replica yet).
    loop {
        let r = client.reserve(&a, &user(n), 1, "p").await;
        n += 1;
        log.push(format!(
            "{:?} {:?}",
            killed.elapsed(),
            r.as_ref().map(|r| r.durability)
        ));
        if r.is_ok() {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "{log:#?}");
    }
    let window = killed.elapsed();
    cluster.restart(dead)?;
    cluster.wait_ok(Duration::from_secs(30))?;
    cluster.wait_replicas_online(Duration::from_secs(30))?;
    let back = std::time::Instant::now();
    loop {
        let r = client.reserve(&a, &user(n), 1, "p").await;
        n += 1;
        let held = client.held(&a, &user(0)).await;
        log.push(format!(
            "after restart {:?} {:?} held {held:?}",
            back.elapsed(),
            r.as_ref().map(|r| r.durability)
        ));
        if matches!(r, Ok(ref r) if r.durability == Durability::Replicated(1)) && held.is_ok() {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "{log:#?}");
    }
    let replicated = back.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let failures = failures.lock().expect("lock").clone();
    let dead_addr = format!("127.0.0.1:{dead}");
    // Only the failed shard's activities may have failed: the others kept selling.
    let elsewhere: Vec<&(Duration, String, String)> = failures
        .iter()
        .filter(|(_, x, _)| !on_dead.contains(x))
        .collect();
    eprintln!(
        "unavailable for {window:?}; replicated again {replicated:?} after the restart; \
         {} failed calls, {} on activities of other shards (dead node {dead_addr})",
        failures.len(),
        elsewhere.len()
    );
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, _, e) in &failures {
        *kinds.entry(e.chars().take(60).collect()).or_default() += 1;
    }
    eprintln!("failures by kind: {kinds:?}");
    assert!(elsewhere.is_empty(), "other shards failed: {elsewhere:?}");
    Ok(())
}
