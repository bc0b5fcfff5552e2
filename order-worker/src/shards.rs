//! The worker's Redis, for either topology, and its consumers per node.
//!
//! A standalone server is one node. In a Redis Cluster every primary holds the streams of its
//! slots, and a consumer's XREADGROUP, the WAIT that confirms its batch on replicas and its
//! XACK must run on that primary: so each primary gets `worker.consumers` consumers of its
//! own, over connections to that node. The set follows the cluster without restart: the
//! layout is read every `discover_interval_ms`; a new primary (a promoted replica, a node
//! given slots) gets consumers, and the consumers of a node that is no longer a primary (it
//! failed, or was demoted when it came back) are stopped (each finishes or lets go of the
//! batch in hand; entries left pending are claimed where they live).

use crate::config::Settings;
use crate::consumer::{Consumer, Database, Replicas};
use crate::metrics::Metrics;
use seckill_client::cluster::{self, RedisConn};
use seckill_client::reader::StreamReader;
use seckill_client::{shards, streams, ClientError, Target, Topology};
use seckill_core::ActivityId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The worker's Redis: where it is and a connection routed by key (the sweeper, the
/// trimmer, the gauges' STATUS calls, health).
#[derive(Clone)]
pub(crate) struct Redis {
    pub(crate) target: Target,
    pub(crate) shared: RedisConn,
    /// Deadline of a connection to one node (and of each command on it).
    pub(crate) node_timeout: Duration,
}

impl Redis {
    /// As the `worker` ACL user, logged in to every node the same way (`target`).
    pub(crate) async fn connect(target: Target, settings: &Settings) -> Result<Self, ClientError> {
        let w = &settings.worker;
        // Above a blocking XREADGROUP and a WAIT, so neither looks like a dead connection.
        let node_timeout = Duration::from_millis(w.block_ms)
            + settings.redis.replica_ack_timeout()
            + Duration::from_secs(5);
        let shared = cluster::connect(&target, node_timeout).await?;
        Ok(Self {
            target,
            shared,
            node_timeout,
        })
    }

    /// The layout now (one shard for a standalone server).
    pub(crate) async fn topology(&self) -> Result<Topology, ClientError> {
        self.shared.clone().topology(&self.target).await
    }

    /// Every activity with a stream, on whichever node serves it.
    pub(crate) async fn activities(&self) -> Result<Vec<ActivityId>, ClientError> {
        match &self.shared {
            RedisConn::Single(_) => {
                let mut conn = self.shared.clone();
                Ok(streams::discover(&mut conn)
                    .await
                    .map_err(|e| seckill_client::error::classify(&e))?
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect())
            }
            RedisConn::Cluster(_) => {
                let topology = self.topology().await?;
                let (found, failed) =
                    shards::discover_all(&self.target, &topology, self.node_timeout).await;
                if let Some((node, e)) = failed.into_iter().next() {
                    tracing::warn!(node, error = %e, "could not list the streams of a primary");
                }
                Ok(found.into_iter().map(|s| s.activity).collect())
            }
        }
    }
}

struct NodeConsumers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// Runs `worker.consumers` consumers on every primary until `shutdown`, following the
/// layout; waits for all of them. `db` is shared by every node's consumers (one MySQL, one
/// set of insert permits, one pace, one read size).
pub(crate) async fn run_consumers(
    redis: Redis,
    db: Database,
    settings: Settings,
    base: String,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let w = &settings.worker;
    let replicas = Replicas {
        min: settings.redis.min_replicas,
        timeout: settings.redis.replica_ack_timeout(),
    };
    let cluster = redis.target.is_cluster();
    let mut running: HashMap<String, NodeConsumers> = HashMap::new();
    let mut stopping: JoinSet<()> = JoinSet::new();
    loop {
        match redis.topology().await {
            Ok(topology) => {
                let primaries = topology.primaries();
                let gone: Vec<String> = running
                    .keys()
                    .filter(|n| !primaries.contains(n))
                    .cloned()
                    .collect();
                for node in gone {
                    if let Some(c) = running.remove(&node) {
                        let NodeConsumers { stop, mut tasks } = c;
                        tracing::info!(node, "not a primary any more; stopping its consumers");
                        stop.cancel();
                        stopping.spawn(async move { while tasks.join_next().await.is_some() {} });
                    }
                }
                for node in primaries {
                    if running.contains_key(&node) {
                        continue;
                    }
                    let stop = shutdown.child_token();
                    let mut tasks = JoinSet::new();
                    let mut connected = true;
                    for n in 0..w.consumers.max(1) {
                        match cluster::connect_node(&redis.target, &node, redis.node_timeout).await
                        {
                            Ok(conn) => {
                                let reader = StreamReader::for_node(
                                    &redis.target,
                                    &node,
                                    redis.node_timeout,
                                );
                                let c = Consumer::new(
                                    conn,
                                    db.clone(),
                                    w.clone(),
                                    format!("{base}-{n}"),
                                    metrics.clone(),
                                    replicas,
                                    cluster,
                                )
                                .with_reader(reader);
                                tasks.spawn(c.run(stop.clone()));
                            }
                            Err(e) => {
                                tracing::warn!(node, error = %e, "could not connect consumers; trying again");
                                connected = false;
                                break;
                            }
                        }
                    }
                    if connected {
                        if cluster {
                            tracing::info!(
                                node,
                                consumers = w.consumers.max(1),
                                "consumers started on a primary"
                            );
                        }
                        running.insert(node, NodeConsumers { stop, tasks });
                    } else {
                        stop.cancel();
                        stopping.spawn(async move { while tasks.join_next().await.is_some() {} });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the Redis layout"),
        }
        // Reap what finished (a panicked consumer is logged; its node starts afresh).
        for (node, c) in running.iter_mut() {
            while let Some(done) = c.tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(node, error = %e, "consumer task panicked");
                }
            }
        }
        running.retain(|_, c| !c.tasks.is_empty());
        while stopping.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(w.discover_interval_ms.max(100))) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    for (_, mut c) in running.drain() {
        c.stop.cancel();
        while c.tasks.join_next().await.is_some() {}
    }
    while stopping.join_next().await.is_some() {}
}
