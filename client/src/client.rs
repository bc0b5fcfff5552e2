//! [`SeckillClient`]: the gateway's Redis, with a deadline on every call.
//!
//! - Standalone: one multiplexed connection (reconnected in the background), the hot path's
//!   `SECKILL.RESERVE`s pipelined through the [`Coalescer`].
//! - Redis Cluster (`redis.cluster_nodes`): a [`crate::router::Router`] that sends each
//!   command to the node of its activity and follows MOVED/ASK/TRYAGAIN; the coalesced
//!   RESERVEs go as one pipeline per node, and only a command whose reply is a redirect (it
//!   did not run) is sent again, alone, through the router.
//!
//! With `min_replicas` > 0 a reservation is acknowledged only once that many replicas hold it
//! ([`crate::confirm`], one confirmation per node per batch); otherwise its
//! [`Durability`] says it is pending.

use crate::cluster::{self, RedisConn, TopologyCache};
use crate::coalesce::Coalescer;
use crate::confirm::{Confirmed, Confirmer, ROUNDS_IN_FLIGHT};
use crate::error::ClientError;
use crate::sale::{self, CreateArgs, Durability, Reservation, Status};
use crate::topology::{Target, Topology};
use seckill_core::{ActivityId, UserId};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Where Redis is, and what a reservation waits for before it is acknowledged.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub target: Target,
    /// The deadline of one call (connect included).
    pub timeout: Duration,
    /// Replicas that must hold a reservation before it is acknowledged; 0: none asked.
    pub min_replicas: u32,
    /// How long one confirmation waits for them (`WAIT`'s timeout).
    pub replica_ack_timeout: Duration,
}

impl ClientSettings {
    /// A standalone server, nothing asked of replicas.
    pub fn standalone(url: &str, timeout: Duration) -> Self {
        Self {
            target: Target::new(url, &[]),
            timeout,
            min_replicas: 0,
            replica_ack_timeout: Duration::from_millis(100),
        }
    }
}

#[derive(Clone)]
pub struct SeckillClient {
    conn: RedisConn,
    /// The hot path's `SECKILL.RESERVE`s, pipelined together (per node in a cluster).
    batch: Coalescer,
    /// Replica confirmations (`min_replicas` > 0 only).
    confirm: Option<Confirmer>,
    /// The cluster's layout (a cluster only).
    topology: Option<Arc<TopologyCache>>,
    timeout: Duration,
    replica_ack_timeout: Duration,
}

impl SeckillClient {
    /// A standalone server (bounded by a few `timeout`s); reconnects happen in the background.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::connect_with(&ClientSettings::standalone(url, timeout)).await
    }

    /// Connects to the standalone server or the cluster of `s`.
    pub async fn connect_with(s: &ClientSettings) -> Result<Self, ClientError> {
        let conn = cluster::connect(&s.target, s.timeout).await?;
        let topology = match &conn {
            RedisConn::Cluster(router) => Some(Arc::clone(router.topology())),
            RedisConn::Single(_) => None,
        };
        let confirm = if s.min_replicas > 0 {
            // Connections of its own: WAIT blocks the connection it runs on.
            let ack = s.replica_ack_timeout;
            let timeout = s.timeout.max(ack + Duration::from_secs(1));
            let mut own = Vec::with_capacity(ROUNDS_IN_FLIGHT);
            for _ in 0..ROUNDS_IN_FLIGHT {
                own.push(match &conn {
                    RedisConn::Cluster(_) => conn.with_own_connections(timeout).await?,
                    RedisConn::Single(_) => cluster::connect(&s.target, timeout).await?,
                });
            }
            Some(Confirmer::new(own, topology.clone(), s.min_replicas, ack))
        } else {
            None
        };
        let batch = match &conn {
            RedisConn::Single(c) => Coalescer::spawn(c.clone()),
            RedisConn::Cluster(router) => Coalescer::spawn_cluster(router.clone()),
        };
        Ok(Self {
            conn,
            batch,
            confirm,
            topology,
            timeout: s.timeout,
            replica_ack_timeout: s.replica_ack_timeout,
        })
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle on the shared connection (routed by key in a cluster), for calls this type
    /// does not wrap.
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// The cluster's layout as last read (`None` for a standalone server).
    pub fn topology(&self) -> Option<Arc<Topology>> {
        self.topology.as_ref().map(|t| t.get())
    }

    async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or(Err(ClientError::Timeout(self.timeout)))
    }

    /// `SECKILL.RESERVE` (in the next coalesced pipeline), then, with
    /// `min_replicas` > 0, its confirmation on replicas: [`Durability::Replicated`] or
    /// [`Durability::Pending`]; a reservation the node holding the activity no longer has (a
    /// failover lost it) is [`ClientError::Unavailable`]: nothing is held, try again.
    pub async fn reserve(
        &self,
        activity: &ActivityId,
        user: &UserId,
        qty: u64,
        product: &str,
    ) -> Result<Reservation, ClientError> {
        let cmd = sale::reserve_cmd(activity, user, qty, product);
        let mut r = self
            .timed(async { sale::parse_reservation(self.batch.query(cmd).await?) })
            .await?;
        let Some(confirm) = &self.confirm else {
            return Ok(r);
        };
        // A round takes the ack timeout at most, plus its round trip.
        let bound = self.replica_ack_timeout + Duration::from_millis(250);
        r.durability = match tokio::time::timeout(bound, confirm.confirm(activity, user)).await {
            Ok(Confirmed::Replicated(n)) => Durability::Replicated(n),
            Ok(Confirmed::Lost) => {
                return Err(ClientError::Unavailable(format!(
                "reservation {} of activity '{activity}' was lost in a failover; nothing is held",
                r.id
            )))
            }
            Ok(Confirmed::Pending) | Err(_) => Durability::Pending,
        };
        Ok(r)
    }

    pub async fn release(
        &self,
        activity: &ActivityId,
        reservation: &str,
    ) -> Result<u64, ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::release(&mut conn, activity, reservation))
            .await
    }

    pub async fn status(&self, activity: &ActivityId) -> Result<Option<Status>, ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::status(&mut conn, activity)).await
    }

    pub async fn create(&self, args: &CreateArgs) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::create(&mut conn, args)).await
    }

    pub async fn held(&self, activity: &ActivityId, user: &UserId) -> Result<u64, ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::held(&mut conn, activity, user)).await
    }

    /// PING (every primary, in a cluster).
    pub async fn ping(&self) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        self.timed(async move {
            let _: redis::Value = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| crate::error::classify(&e))?;
            Ok(())
        })
        .await
    }
}
