//! [`Router`]: Redis Cluster routing of our own, on one multiplexed connection per node.
//!
//! Why not `redis::cluster_async::ClusterConnection`: under load, a primary SIGKILLed made
//! it stop serving every slot, not only the dead node's, and never come back (its single
//! routing task stopped being polled after a burst of MOVED/refused retries and slot
//! refreshes: reproduced in `tests/cluster.rs` one run in three). A gateway that stops selling
//! on all shards because one failed defeats the cluster; so routing is done here, simply:
//!
//! - which primary serves a slot comes from [`TopologyCache`] (`CLUSTER NODES`, read again
//!   every couple of seconds and at once when a node refuses, moves or vanishes);
//! - a command goes to the primary of the slot of its key, on that node's multiplexed
//!   connection (created on first use, dropped when it fails);
//! - `MOVED` is followed to the node it names (the topology is re-read meanwhile); `ASK`
//!   sends `ASKING` and the command as one pipeline on the target's connection, so nothing
//!   else slips in between; `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING` and a node that
//!   cannot be connected to are retried after a short pause. None of these ran the command,
//!   so retrying is safe; the caller's deadline bounds the retries. A connection that fails
//!   after the command was written is not retried (the command may have run): the caller
//!   sees the error (unavailable, 503) and the node's connection is made again next time.
//! - Keyless commands (PING, INFO) go to the first primary that answers.

use crate::cluster::TopologyCache;
use crate::topology::Target;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Redirects and refusals followed for one command at most (each with a short pause);
/// the caller's deadline usually ends it first.
const MAX_ATTEMPTS: u32 = 64;
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Routes commands to the node serving their key's slot. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    topology: Arc<TopologyCache>,
    /// One multiplexed connection per node address, made on first use.
    nodes: Mutex<HashMap<String, MultiplexedConnection>>,
    /// Response timeout of each node connection (and connect timeout).
    timeout: Duration,
}

/// The key a command is routed by: argument 1, except for subcommand forms (`XINFO STREAM
/// <key>`, `XGROUP CREATE <key>`) and `XREADGROUP`/`XREAD` (the first key after `STREAMS`);
/// `None` for keyless commands.
pub fn routing_key(cmd: &Cmd) -> Option<Vec<u8>> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(b),
            redis::Arg::Cursor => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" | b"INFO" | b"CLUSTER" | b"WAIT" | b"ASKING" | b"SCAN" | b"DBSIZE" | b"TIME"
        | b"COMMAND" | b"CONFIG" | b"ROLE" => None,
        b"XINFO" | b"XGROUP" | b"OBJECT" | b"MEMORY" => args.get(2).map(|k| k.to_vec()),
        b"XREADGROUP" | b"XREAD" => args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))
            .and_then(|i| args.get(i + 1))
            .map(|k| k.to_vec()),
        _ => args.get(1).map(|k| k.to_vec()),
    }
}

/// The node a `MOVED`/`ASK` error names (`host:port`).
fn redirect_target(e: &RedisError) -> Option<String> {
    e.redirect_node().map(|(addr, _slot)| addr.to_owned())
}

/// Whether a reply is a redirect or a refusal of a moving cluster (nothing ran): the command
/// must go through [`Router::route`] again.
pub fn must_reroute(v: &Value) -> bool {
    matches!(v, Value::ServerError(e)
        if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING"))
}

/// Refusals that mean "nothing ran, the cluster is moving: try again shortly".
fn is_transient(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::TryAgain
            | ErrorKind::ClusterDown
            | ErrorKind::MasterDown
            | ErrorKind::BusyLoadingError
    )
}

impl Router {
    pub fn new(target: Target, topology: Arc<TopologyCache>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                target,
                topology,
                nodes: Mutex::new(HashMap::new()),
                timeout,
            }),
        }
    }

    pub fn topology(&self) -> &Arc<TopologyCache> {
        &self.inner.topology
    }

    /// A router over the same layout with node connections of its own and another response
    /// timeout (for commands that block on purpose: `WAIT`).
    pub fn with_own_connections(&self, timeout: Duration) -> Self {
        Self::new(
            self.inner.target.clone(),
            Arc::clone(&self.inner.topology),
            timeout,
        )
    }

    /// The connection to node `addr`, made if there is none.
    pub async fn node(&self, addr: &str) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.nodes().get(addr) {
            return Ok(c.clone());
        }
        let client = self.inner.target.node_client(addr)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.inner.timeout)
            .set_response_timeout(self.inner.timeout);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.nodes().insert(addr.to_owned(), conn.clone());
        Ok(conn)
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, MultiplexedConnection>> {
        match self.inner.nodes.lock() {
            Ok(n) => n,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Forgets the connection to `addr` (it failed) and asks for a fresh layout.
    pub fn forget(&self, addr: &str) {
        self.nodes().remove(addr);
        self.inner.topology.mark_stale();
    }

    /// The primary serving `slot` per the layout last read.
    fn primary_of_slot(&self, slot: u16) -> Option<String> {
        self.inner
            .topology
            .get()
            .shard_for_slot(slot)
            .map(|s| s.primary.clone())
    }

    /// The node that serves `cmd`'s key per the layout last read (`None`: keyless, or no
    /// primary known for the slot).
    pub fn node_of(&self, cmd: &Cmd) -> Option<String> {
        routing_key(cmd).and_then(|k| self.primary_of_slot(redis::cluster_routing::get_slot(&k)))
    }

    /// `pipe` on node `addr`'s connection as it is: replies (refusals and redirects inline)
    /// in order. A connection that fails drops the node's connection (made again next time).
    pub async fn pipeline_on_node(
        &self,
        addr: &str,
        pipe: &Pipeline,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let mut conn = match self.node(addr).await {
            Ok(c) => c,
            Err(e) => {
                self.forget(addr);
                return Err(e);
            }
        };
        conn.req_packed_commands(pipe, 0, count)
            .await
            .inspect_err(|_| {
                self.forget(addr);
            })
    }

    /// Sends `cmd` to the node of its key, following redirects (see the module docs).
    pub async fn route(&self, cmd: &Cmd) -> RedisResult<Value> {
        let Some(key) = routing_key(cmd) else {
            return self.any_primary(cmd).await;
        };
        let slot = redis::cluster_routing::get_slot(&key);
        let mut pause = FIRST_PAUSE;
        let mut next: Option<String> = None;
        let mut asking = false;
        let mut last: Option<RedisError> = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some(addr) = next.take().or_else(|| self.primary_of_slot(slot)) else {
                // No primary known for the slot (a failover under way): read again, wait.
                self.inner.topology.mark_stale();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                continue;
            };
            let mut conn = match self.node(&addr).await {
                Ok(c) => c,
                Err(e) => {
                    // Could not connect: nothing was sent.
                    self.forget(&addr);
                    last = Some(e);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                }
            };
            let reply = if asking {
                asking = false;
                let mut pipe = redis::pipe();
                pipe.cmd("ASKING").ignore();
                pipe.add_command(cmd.clone());
                conn.req_packed_commands(&pipe, 1, 1)
                    .await
                    .and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| RedisError::from((ErrorKind::ResponseError, "no reply")))
                    })
            } else {
                conn.req_packed_command(cmd).await
            };
            let value = match reply {
                Ok(v) => v,
                Err(e) => {
                    // The command may have run: not retried.
                    self.forget(&addr);
                    return Err(e);
                }
            };
            match value.extract_error() {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == ErrorKind::Moved => {
                    self.inner.topology.mark_stale();
                    next = redirect_target(&e);
                    last = Some(e);
                }
                Err(e) if e.kind() == ErrorKind::Ask => {
                    next = redirect_target(&e);
                    asking = true;
                    last = Some(e);
                }
                Err(e) if is_transient(&e) => {
                    if e.kind() == ErrorKind::ClusterDown {
                        self.inner.topology.mark_stale();
                    }
                    last = Some(e);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                // A refusal of the command itself (SOLDOUT, ERR ...): the caller's.
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((ErrorKind::ClusterDown, "no node serves the slot"))
        }))
    }

    /// A keyless command: the first primary that answers.
    async fn any_primary(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut last = None;
        for addr in self.inner.topology.get().primaries() {
            let mut conn = match self.node(&addr).await {
                Ok(c) => c,
                Err(e) => {
                    self.forget(&addr);
                    last = Some(e);
                    continue;
                }
            };
            match conn.req_packed_command(cmd).await {
                Ok(v) => return v.extract_error(),
                Err(e) => {
                    self.forget(&addr);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from((ErrorKind::ClusterDown, "no primary known"))))
    }

    /// `pipe` (every command in the slot of its first command's key) on the primary of that
    /// slot, once: replies come back as they are, errors inline, for the caller to judge
    /// (a `MOVED` reply means the layout changed: it was asked to be read again).
    pub async fn pipeline_on_slot(
        &self,
        slot: u16,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let addr = self
            .primary_of_slot(slot)
            .ok_or_else(|| RedisError::from((ErrorKind::ClusterDown, "no node serves the slot")))?;
        let mut conn = match self.node(&addr).await {
            Ok(c) => c,
            Err(e) => {
                self.forget(&addr);
                return Err(e);
            }
        };
        match conn.req_packed_commands(pipe, offset, count).await {
            Ok(values) => {
                if values.iter().any(
                    |v| matches!(v, Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK")),
                ) {
                    self.inner.topology.mark_stale();
                }
                Ok(values)
            }
            Err(e) => {
                self.forget(&addr);
                Err(e)
            }
        }
    }
}

impl ConnectionLike for Router {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        Box::pin(self.route(cmd))
    }

    /// A pipeline goes whole to the primary of its first keyed command's slot (callers keep a
    /// pipeline within one slot); replies as they are.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let slot = pipe
                .cmd_iter()
                .find_map(routing_key)
                .map(|k| redis::cluster_routing::get_slot(&k))
                .unwrap_or(0);
            self.pipeline_on_slot(slot, pipe, offset, count).await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_routed_by_their_key() {
        let key = |c: &Cmd| routing_key(c).map(|k| String::from_utf8_lossy(&k).into_owned());
        let mut c = redis::cmd("SECKILL.RESERVE");
        c.arg("42").arg("u").arg(1);
        assert_eq!(key(&c).as_deref(), Some("42"));
        let mut c = redis::cmd("XINFO");
        c.arg("STREAM").arg("seckill:{7}:stream");
        assert_eq!(key(&c).as_deref(), Some("seckill:{7}:stream"));
        let mut c = redis::cmd("XREADGROUP");
        c.arg(&["GROUP", "g", "c", "COUNT", "5", "STREAMS", "s1", ">"]);
        assert_eq!(key(&c).as_deref(), Some("s1"));
        for keyless in ["PING", "INFO", "WAIT"] {
            assert_eq!(key(&redis::cmd(keyless)), None);
        }
        let mut c = redis::cmd("HGET");
        c.arg("seckill:{1}:buyers").arg("u");
        assert_eq!(key(&c).as_deref(), Some("seckill:{1}:buyers"));
    }
}
