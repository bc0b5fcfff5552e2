//! Connections for both topologies.
//!
//! - [`RedisConn`]: a connection that routes every command by its key: one multiplexed
//!   connection (reconnected in the background) to a standalone server, or a
//!   `redis::cluster_async::ClusterConnection`, which keeps one multiplexed connection per
//!   node, routes a command by the key at argument 1 (our activity id, whose slot holds all of
//!   the activity's keys) and follows MOVED/ASK and retries TRYAGAIN/CLUSTERDOWN (a redirected
//!   command did not run, so resending it is safe). Multi-key pipelines across slots are not
//!   something it can carry: callers send such commands one by one or per node.
//! - [`connect_node`] / [`node_connection`]: a connection to one node by address, for what
//!   is per node by nature (SCAN, INFO, a consumer's XREADGROUP followed by WAIT).
//! - [`TopologyCache`]: the cluster's shards as last read from `CLUSTER NODES`, refreshed in
//!   the background and on demand.

use crate::error::{classify, ClientError};
use crate::topology::{Replication, Target, Topology};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Retries of a redirected or refused (TRYAGAIN, CLUSTERDOWN, connection lost) cluster command:
/// enough to outlast a failover (a few seconds); callers bound every call with their own
/// deadline anyway, and a command whose caller gave up is not sent again.
const CLUSTER_RETRIES: u32 = 40;
/// Pauses between those retries grow from a few ms to this.
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

/// A connection that routes commands by key, for either topology. Cheap to clone.
// Cloned per call, as the ConnectionManager it wraps is; boxing it would allocate per clone.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// The layout: `CLUSTER NODES` of any node in a cluster; one shard otherwise.
    pub async fn topology(&mut self, target: &Target) -> Result<Topology, ClientError> {
        match self {
            RedisConn::Single(_) => Ok(Topology::standalone(
                &target.standalone_addr().unwrap_or_default(),
            )),
            RedisConn::Cluster(c) => {
                let v = c
                    .route_command(
                        redis::cmd("CLUSTER").arg("NODES"),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await
                    .map_err(|e| classify(&e))?;
                let text: String = redis::from_owned_redis_value(v)
                    .map_err(|e| ClientError::Protocol(format!("CLUSTER NODES replied {e}")))?;
                Ok(Topology::parse_cluster_nodes(&text))
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects to `target` (bounded by a few `timeout`s). `timeout` is also each command's
/// response timeout, so callers that block on purpose (`WAIT`) pass a longer one.
pub async fn connect(target: &Target, timeout: Duration) -> Result<RedisConn, ClientError> {
    let bound = timeout * 4;
    match target {
        Target::Standalone { url } => {
            let conn = tokio::time::timeout(bound, manager(url, timeout))
                .await
                .map_err(|_| ClientError::Timeout(bound))??;
            Ok(RedisConn::Single(conn))
        }
        Target::Cluster { seeds } => {
            let client = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(2)
                .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                .build()
                .map_err(|e| ClientError::Unavailable(format!("invalid cluster nodes: {e}")))?;
            let conn = tokio::time::timeout(bound, client.get_async_connection())
                .await
                .map_err(|_| ClientError::Timeout(bound))?
                .map_err(|e| ClientError::Unavailable(e.to_string()))?;
            Ok(RedisConn::Cluster(conn))
        }
    }
}

async fn manager(url: &str, timeout: Duration) -> Result<ConnectionManager, ClientError> {
    let client = redis::Client::open(url)
        .map_err(|e| ClientError::Unavailable(format!("invalid redis URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(2)
        .set_max_delay(1_000);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| ClientError::Unavailable(e.to_string()))
}

/// A reconnecting connection to node `addr` (`host:port`) itself, with `target`'s scheme and
/// credentials: what runs there stays there (no redirect is followed).
pub async fn connect_node(
    target: &Target,
    addr: &str,
    timeout: Duration,
) -> Result<ConnectionManager, ClientError> {
    let bound = timeout * 4;
    tokio::time::timeout(bound, manager(&target.node_url(addr), timeout))
        .await
        .map_err(|_| ClientError::Timeout(bound))?
}

/// A one-off connection to node `addr` (the CLI, the lag poller).
pub async fn node_connection(
    target: &Target,
    addr: &str,
    timeout: Duration,
) -> Result<MultiplexedConnection, ClientError> {
    let client = redis::Client::open(target.node_url(addr))
        .map_err(|e| ClientError::Unavailable(format!("invalid redis URL: {e}")))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    tokio::time::timeout(
        timeout * 2,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| ClientError::Timeout(timeout * 2))?
    .map_err(|e| classify(&e))
}

/// `INFO replication` of the node behind `conn`.
pub async fn replication<C: ConnectionLike + Send>(
    conn: &mut C,
) -> Result<Replication, ClientError> {
    let text: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await
        .map_err(|e| classify(&e))?;
    Ok(Replication::parse(&text))
}

/// The cluster's layout as last read, shared by whoever groups work by node; refreshed every
/// so often and whenever a caller saw it was stale.
pub struct TopologyCache {
    target: Target,
    current: RwLock<Arc<Topology>>,
    stale: Notify,
}

impl TopologyCache {
    /// Starts with one read of the layout.
    pub async fn load(target: &Target, conn: &mut RedisConn) -> Result<Arc<Self>, ClientError> {
        let first = conn.topology(target).await?;
        Ok(Arc::new(Self {
            target: target.clone(),
            current: RwLock::new(Arc::new(first)),
            stale: Notify::new(),
        }))
    }

    pub fn get(&self) -> Arc<Topology> {
        match self.current.read() {
            Ok(t) => Arc::clone(&t),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Asks the refresher for a new read now (a node refused, moved or vanished).
    pub fn mark_stale(&self) {
        self.stale.notify_one();
    }

    /// Reads the layout again.
    pub async fn refresh(&self, conn: &mut RedisConn) -> Result<Arc<Topology>, ClientError> {
        let t = Arc::new(conn.topology(&self.target).await?);
        match self.current.write() {
            Ok(mut cur) => *cur = Arc::clone(&t),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&t),
        }
        Ok(t)
    }

    /// Refreshes every `every` and when marked stale (at most every 100 ms), until the cache
    /// is dropped. Nothing to do for a standalone server.
    pub fn spawn_refresher(self: &Arc<Self>, mut conn: RedisConn, every: Duration) {
        if !self.target.is_cluster() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = cache.stale.notified() => {}
                }
                if let Err(e) = cache.refresh(&mut conn).await {
                    tracing::debug!(error = %e, "cluster topology refresh failed");
                }
                drop(cache);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}
