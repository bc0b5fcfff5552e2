//! Connections for both topologies.
//!
//! - [`RedisConn`]: a connection that routes every command by its key: one multiplexed
//!   connection (reconnected in the background) to a standalone server, or a [`Router`] over
//!   one multiplexed connection per cluster node, which sends a command to the primary of its
//!   key's slot (our commands' key is the activity id, whose slot holds all of the activity's
//!   keys) and follows MOVED/ASK and retries TRYAGAIN/CLUSTERDOWN (a redirected or refused
//!   command did not run, so resending it is safe).
//! - [`connect_node`] / [`node_connection`]: a connection to one node by address, for what
//!   is per node by nature (SCAN, INFO, a consumer's XREADGROUP followed by WAIT).
//! - [`TopologyCache`]: the cluster's shards as last read from `CLUSTER NODES`, refreshed in
//!   the background and on demand.

use crate::error::{classify, ClientError};
pub use crate::router::Router;
use crate::topology::{Nodes, Replication, Target, Topology};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a cluster's layout is read again (also whenever a node misbehaves).
const TOPOLOGY_REFRESH: Duration = Duration::from_secs(2);

/// A connection that routes commands by key, for either topology. Cheap to clone.
// Cloned per call, as the ConnectionManager it wraps is; boxing it would allocate per clone.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(Router),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// The layout, read now: `CLUSTER NODES` in a cluster; one shard otherwise.
    pub async fn topology(&mut self, target: &Target) -> Result<Topology, ClientError> {
        match self {
            RedisConn::Single(_) => Ok(Topology::standalone(
                &target.standalone_addr().unwrap_or_default(),
            )),
            RedisConn::Cluster(r) => Ok(r.topology().refresh().await?.as_ref().clone()),
        }
    }

    /// The same connection with its own node connections and another response timeout (for
    /// commands that block on purpose: `WAIT`).
    pub async fn with_own_connections(&self, timeout: Duration) -> Result<Self, ClientError> {
        match self {
            RedisConn::Single(_) => Err(ClientError::Protocol(
                "a standalone connection is made with connect()".into(),
            )),
            RedisConn::Cluster(r) => Ok(RedisConn::Cluster(r.with_own_connections(timeout))),
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
    match &target.nodes {
        Nodes::Standalone { .. } => {
            let client = target.client().map_err(|e| invalid_url(&e))?;
            probe(&client, bound).await?;
            let conn = tokio::time::timeout(bound, manager(client, timeout))
                .await
                .map_err(|_| ClientError::Timeout(bound))??;
            Ok(RedisConn::Single(conn))
        }
        Nodes::Cluster { .. } => {
            let cache = tokio::time::timeout(bound, TopologyCache::load(target, timeout))
                .await
                .map_err(|_| ClientError::Timeout(bound))??;
            cache.spawn_refresher(TOPOLOGY_REFRESH);
            Ok(RedisConn::Cluster(Router::new(
                target.clone(),
                cache,
                timeout,
            )))
        }
    }
}

/// One plain connection attempt, dropped once it succeeded: a refused login or certificate
/// is reported as such (the connection manager's retries would end in a bare timeout).
async fn probe(client: &redis::Client, bound: Duration) -> Result<(), ClientError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(bound)
        .set_response_timeout(bound);
    tokio::time::timeout(
        bound,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| ClientError::Timeout(bound))?
    .map_err(|e| ClientError::Unavailable(e.to_string()))?;
    Ok(())
}

/// A URL that does not parse, or TLS files that do not load; never quoting the URL (it may
/// hold a password).
fn invalid_url(e: &redis::RedisError) -> ClientError {
    ClientError::Unavailable(format!("invalid redis URL or TLS files: {e}"))
}

async fn manager(
    client: redis::Client,
    timeout: Duration,
) -> Result<ConnectionManager, ClientError> {
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
    let client = target.node_client(addr).map_err(|e| invalid_url(&e))?;
    tokio::time::timeout(bound, manager(client, timeout))
        .await
        .map_err(|_| ClientError::Timeout(bound))?
}

/// A one-off connection to node `addr` (the CLI, the lag poller).
pub async fn node_connection(
    target: &Target,
    addr: &str,
    timeout: Duration,
) -> Result<MultiplexedConnection, ClientError> {
    let client = target.node_client(addr).map_err(|e| invalid_url(&e))?;
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

/// The cluster's layout as last read, shared by whoever routes or groups work by node;
/// refreshed every so often and whenever a caller saw it was stale.
pub struct TopologyCache {
    target: Target,
    current: RwLock<Arc<Topology>>,
    stale: Notify,
    timeout: Duration,
}

impl TopologyCache {
    /// Starts with one read of the layout (from any seed node that answers).
    pub async fn load(target: &Target, timeout: Duration) -> Result<Arc<Self>, ClientError> {
        let cache = Arc::new(Self {
            target: target.clone(),
            current: RwLock::new(Arc::new(Topology::default())),
            stale: Notify::new(),
            timeout,
        });
        cache.refresh().await?;
        Ok(cache)
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

    /// Reads the layout again: `CLUSTER NODES` of the first node that answers, the known
    /// primaries first, then their replicas, then the seeds.
    pub async fn refresh(&self) -> Result<Arc<Topology>, ClientError> {
        let t = Arc::new(self.read_layout().await?);
        match self.current.write() {
            Ok(mut cur) => *cur = Arc::clone(&t),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&t),
        }
        Ok(t)
    }

    async fn read_layout(&self) -> Result<Topology, ClientError> {
        let Nodes::Cluster { seeds } = &self.target.nodes else {
            return Ok(Topology::standalone(
                &self.target.standalone_addr().unwrap_or_default(),
            ));
        };
        let known = self.get();
        let mut candidates: Vec<String> = known.primaries();
        candidates.extend(known.shards.iter().flat_map(|s| s.replicas.iter().cloned()));
        candidates.extend(
            seeds
                .iter()
                .map(|u| crate::topology::address_of(u).to_owned()),
        );
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|c| seen.insert(c.clone()));
        let mut last = ClientError::Unavailable("no cluster node to ask".into());
        for addr in candidates {
            let read = async {
                let mut conn = node_connection(&self.target, &addr, self.timeout).await?;
                let text: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| classify(&e))?;
                Ok::<Topology, ClientError>(Topology::parse_cluster_nodes(&text))
            }
            .await;
            match read {
                Ok(t) if !t.shards.is_empty() => return Ok(t),
                Ok(_) => last = ClientError::Unavailable(format!("{addr} knows no shard")),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Refreshes every `every` and when marked stale (at most every 50 ms), until the cache
    /// is dropped. Nothing to do for a standalone server.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) {
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
                if let Err(e) = cache.refresh().await {
                    tracing::debug!(error = %e, "cluster topology refresh failed");
                }
                drop(cache);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}
