//! Per-node views, for what cannot be routed by key: which streams each primary holds (`SCAN`
//! runs on one node), their lag, and each primary's replicas (`INFO replication`). A
//! standalone server is one shard. Used by the worker (discovery, gauges) and `seckill lag`.
//!
//! A key whose slot is being imported shows up in the importing node's `SCAN` before the node
//! serves it; reading it there answers `MOVED`, and such a stream is left to the node that
//! serves it (it appears once, where it lives).

use crate::cluster::{node_connection, replication};
use crate::error::{classify, ClientError};
use crate::lag::stream_lag;
use crate::streams::discover;
use crate::topology::{Replication, Shard, Target, Topology};
use redis::RedisError;
use seckill_core::lag::StreamLag;
use seckill_core::ActivityId;
use std::collections::HashSet;
use std::time::Duration;

/// One stream and the primary that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStream {
    /// `host:port` of the primary.
    pub node: String,
    pub key: String,
    pub activity: ActivityId,
}

/// What one shard holds and how its replication stands.
#[derive(Debug, Clone)]
pub struct ShardView {
    pub shard: Shard,
    /// `INFO replication` of the primary (`None` when it could not be asked).
    pub replication: Option<Replication>,
    /// The lag rows of the streams it serves, by activity.
    pub streams: Vec<StreamLag>,
    /// Why the primary could not be read (fully or partly).
    pub error: Option<String>,
}

/// Whether a per-key failure means "not served here" (the slot moved or is migrating).
pub fn is_elsewhere(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Moved | redis::ErrorKind::Ask | redis::ErrorKind::TryAgain
    )
}

/// Every activity stream of every primary of `topology`, each once. A primary that cannot be
/// reached is reported in the second list and skipped.
pub async fn discover_all(
    target: &Target,
    topology: &Topology,
    timeout: Duration,
) -> (Vec<NodeStream>, Vec<(String, ClientError)>) {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    let mut seen: HashSet<ActivityId> = HashSet::new();
    for node in topology.primaries() {
        let found = async {
            let mut conn = node_connection(target, &node, timeout).await?;
            discover(&mut conn).await.map_err(|e| classify(&e))
        }
        .await;
        match found {
            Ok(streams) => {
                for (key, activity) in streams {
                    if seen.insert(activity.clone()) {
                        out.push(NodeStream {
                            node: node.clone(),
                            key,
                            activity,
                        });
                    }
                }
            }
            Err(e) => failed.push((node, e)),
        }
    }
    (out, failed)
}

/// The shards of `topology` with their replication and the lag of every stream they serve
/// for `group`.
pub async fn shard_views(
    target: &Target,
    topology: &Topology,
    group: &str,
    timeout: Duration,
) -> Vec<ShardView> {
    let mut views = Vec::with_capacity(topology.shards.len());
    for shard in &topology.shards {
        let mut view = ShardView {
            shard: shard.clone(),
            replication: None,
            streams: Vec::new(),
            error: None,
        };
        let read = async {
            let mut conn = node_connection(target, &shard.primary, timeout).await?;
            view.replication = Some(replication(&mut conn).await?);
            for (key, activity) in discover(&mut conn).await.map_err(|e| classify(&e))? {
                match stream_lag(&mut conn, &key, &activity, group).await {
                    Ok(row) => view.streams.push(row),
                    Err(e) if is_elsewhere(&e) => {}
                    Err(e) => return Err(classify(&e)),
                }
            }
            Ok::<(), ClientError>(())
        }
        .await;
        if let Err(e) = read {
            view.error = Some(e.to_string());
        }
        view.streams.sort_by(|a, b| a.activity.cmp(&b.activity));
        views.push(view);
    }
    views
}
