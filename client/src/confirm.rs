//! Acknowledging only what survives a failover (`redis.min_replicas`).
//!
//! A reservation the gateway answered 200 for must be on the primary that takes over when its
//! node dies. Redis replicates asynchronously; `WAIT n timeout` blocks until `n` replicas
//! acknowledged every write *this connection* sent to *that node*. Two traps follow:
//!
//! - After a failover a fresh connection has sent nothing to the new primary, so a bare
//!   `WAIT` answers at once with every connected replica: a false acknowledgement of a
//!   reservation the new primary may not even hold.
//! - A `WAIT` on the connection that carries the reservations blocks all of them behind it.
//!
//! So a confirmation is one pipeline, on a connection of its own, to the node that holds the
//! activity: `SECKILL.HELD <a> <user>` (the buyer's mark) for every reservation waiting on that node,
//! then `SET seckill:{a}:fence 1` (a write in the slot of one of them), then `WAIT <n>
//! <timeout>`. None of these can be refused, and a redirected pipeline did not run, so it is
//! safe to send again. The buyer's mark proves the reservation is on the node that answers:
//! RESERVE writes the mark and the stream entry in one command on the primary, and replicas
//! and the AOF get both in one `SECKILL.APPLY`, so on any node one exists exactly when the
//! other does (until a release, which needs the order first); it is checked instead of
//! `XRANGE <stream> <rid> <rid>`, which says the same but returns the whole entry. The fence is
//! a write that node makes after everything it holds, so `WAIT` covers the reservations too,
//! whichever connection wrote them (or whichever old primary, before a failover).
//!
//! Reservations queue per node and at most two confirmations per node are in flight, each on a
//! connection of its own: those that arrive meanwhile go in the next one, so the cost is one
//! round trip (and one `WAIT`) per node per batch, and a replica that stops answering delays
//! each reservation by about one `timeout`, never by a growing queue. The outcome of one reservation:
//! - [`Confirmed::Replicated`]: present, and the `WAIT` counted at least `n` replicas;
//! - [`Confirmed::Pending`]: present but not confirmed in time, or the node could not be asked:
//!   the buyer holds it unless a failover loses it, and `GET /seckill/result` will tell;
//! - [`Confirmed::Lost`]: the node that holds the activity now does not have it (a failover
//!   lost it): nothing is held, the buyer may try again.

use crate::cluster::{RedisConn, TopologyCache};
use crate::topology::slot_of;
use redis::aio::ConnectionLike;
use redis::Value;
use seckill_core::{keys, ActivityId, UserId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Reservations confirmed in one round at most.
const MAX_ROUND: usize = 1024;
/// Rounds in flight per node, each on a connection of its own (a round's WAIT blocks its
/// connection): a reservation waits for the next free lane rather than for the round before
/// it to be acknowledged.
pub const ROUNDS_IN_FLIGHT: usize = 2;
/// Reservations waiting per node before callers wait to queue.
const QUEUE: usize = 8192;

/// The outcome of one reservation's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// On the node that holds the activity, and on this many replicas (at least the minimum).
    Replicated(u32),
    /// Held, but not confirmed on enough replicas in time (or the node could not be asked).
    Pending,
    /// Not on the node that holds the activity now: lost in a failover; nothing is held.
    Lost,
}

struct Job {
    activity: ActivityId,
    user: UserId,
    reply: oneshot::Sender<Confirmed>,
}

struct Inner {
    /// Connections of its own, one per lane: `WAIT` blocks the connection it is sent on.
    conns: Vec<RedisConn>,
    /// Which node holds which slot (a cluster); `None` for a standalone server.
    topology: Option<Arc<TopologyCache>>,
    min_replicas: u32,
    ack_timeout: Duration,
    queues: Mutex<HashMap<String, mpsc::Sender<Job>>>,
}

/// Confirms reservations on `min_replicas` replicas; cloning is cheap.
#[derive(Clone)]
pub struct Confirmer {
    inner: Arc<Inner>,
}

impl Confirmer {
    /// `conns` ([`ROUNDS_IN_FLIGHT`] of them) must be connections of the confirmer's own, with a
    /// response timeout longer than `ack_timeout`.
    pub fn new(
        conns: Vec<RedisConn>,
        topology: Option<Arc<TopologyCache>>,
        min_replicas: u32,
        ack_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                conns,
                topology,
                min_replicas,
                ack_timeout,
                queues: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn min_replicas(&self) -> u32 {
        self.inner.min_replicas
    }

    /// Waits for the round that confirms `user`'s reservation in `activity`. The caller bounds
    /// the wait (a round takes about `ack_timeout` at most); giving up means
    /// [`Confirmed::Pending`].
    pub async fn confirm(&self, activity: &ActivityId, user: &UserId) -> Confirmed {
        let node = match &self.inner.topology {
            Some(t) => t.get().primary_for(activity).unwrap_or("").to_owned(),
            None => String::new(),
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            activity: activity.clone(),
            user: user.clone(),
            reply,
        };
        let tx = self.queue(&node);
        if tx.send(job).await.is_err() {
            return Confirmed::Pending;
        }
        rx.await.unwrap_or(Confirmed::Pending)
    }

    /// The queue of `node`, its task started on first use.
    fn queue(&self, node: &str) -> mpsc::Sender<Job> {
        let mut queues = match self.inner.queues.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = queues.get(node).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        queues.insert(node.to_owned(), tx.clone());
        tokio::spawn(node_rounds(Arc::downgrade(&self.inner), rx));
        tx
    }
}

/// One node's rounds, one at a time, each with everything queued since the last one.
async fn node_rounds(inner: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Job>) {
    let lanes = Arc::new(tokio::sync::Semaphore::new(ROUNDS_IN_FLIGHT));
    let mut next_lane = 0usize;
    loop {
        // A lane first, then the reservations: everything queued while the lanes were busy
        // goes into this round.
        let Ok(permit) = Arc::clone(&lanes).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Callers that gave up need no answer.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let lane = next_lane % inner.conns.len().max(1);
        next_lane = next_lane.wrapping_add(1);
        tokio::spawn(async move {
            let outcomes = round(&inner, lane, &jobs).await;
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
            drop(permit);
        });
    }
}

/// Confirms `jobs` (all on one node, as far as the topology knows): one pipeline; if the
/// cluster refuses it (the topology moved under it), one pipeline per slot.
async fn round(inner: &Inner, lane: usize, jobs: &[Job]) -> Vec<Confirmed> {
    let all: Vec<usize> = (0..jobs.len()).collect();
    let started = std::time::Instant::now();
    let mut result = pipeline_round(inner, lane, jobs, &all).await;
    // A slot migrating or failing over under the round (a reply was a redirect): the move is
    // short, so the round is sent again, to the node that serves the slot now, until about
    // one ack timeout has passed.
    while matches!(&result, Err(e) if e.kind() == redis::ErrorKind::TryAgain)
        && started.elapsed() < inner.ack_timeout
    {
        if let Some(t) = &inner.topology {
            t.mark_stale();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        result = pipeline_round(inner, lane, jobs, &all).await;
    }
    match result {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::debug!(error = %e, jobs = jobs.len(), "confirmation round failed");
            let Some(topology) = &inner.topology else {
                return vec![Confirmed::Pending; jobs.len()];
            };
            topology.mark_stale();
            let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
            for (i, j) in jobs.iter().enumerate() {
                by_slot.entry(slot_of(&j.activity)).or_default().push(i);
            }
            let mut out = vec![Confirmed::Pending; jobs.len()];
            if by_slot.len() < 2 {
                return out;
            }
            for idx in by_slot.values() {
                match pipeline_round(inner, lane, jobs, idx).await {
                    Ok(o) => {
                        for (i, c) in idx.iter().zip(o) {
                            out[*i] = c;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "confirmation of one slot failed"),
                }
            }
            out
        }
    }
}

/// `[SECKILL.HELD <activity> <user> per reservation, SET fence, WAIT n timeout]` for `jobs[idx]`, sent to the
/// primary of the first one's slot; the outcome of each, in `idx` order.
async fn pipeline_round(
    inner: &Inner,
    lane: usize,
    jobs: &[Job],
    idx: &[usize],
) -> Result<Vec<Confirmed>, redis::RedisError> {
    let Some(first) = idx.first().map(|i| &jobs[*i]) else {
        return Ok(Vec::new());
    };
    let mut pipe = redis::pipe();
    for i in idx {
        let j = &jobs[*i];
        pipe.add_command(crate::sale::held_cmd(&j.activity, j.user.as_str()));
    }
    pipe.cmd("SET").arg(keys::fence(&first.activity)).arg(1);
    pipe.cmd("WAIT")
        .arg(inner.min_replicas)
        .arg(inner.ack_timeout.as_millis() as u64);
    let n = idx.len() + 2;
    let Some(mut conn) = inner.conns.get(lane).cloned() else {
        return Ok(vec![Confirmed::Pending; idx.len()]);
    };
    let values = match &mut conn {
        RedisConn::Cluster(router) => {
            let values = router
                .pipeline_on_slot(slot_of(&first.activity), &pipe, 0, n)
                .await?;
            // The layout moved under the round: a reply is a redirect, not an answer.
            let moving = |v: &Value| {
                matches!(v, Value::ServerError(e)
                    if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
            };
            if values.iter().any(moving) {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::TryAgain,
                    "confirmation redirected: the layout moved",
                )));
            }
            values
        }
        single @ RedisConn::Single(_) => single.req_packed_commands(&pipe, 0, n).await?,
    };
    if values.len() != n {
        return Err(redis::RedisError::from((
            redis::ErrorKind::ResponseError,
            "confirmation pipeline",
            format!("{n} commands got {} replies", values.len()),
        )));
    }
    let acked = match &values[n - 1] {
        Value::Int(k) => u32::try_from(*k).unwrap_or(0),
        _ => 0,
    };
    let replicated = acked >= inner.min_replicas;
    Ok(values[..idx.len()]
        .iter()
        .map(|v| match v {
            Value::Int(0) => Confirmed::Lost,
            Value::Int(_) if replicated => Confirmed::Replicated(acked),
            // An error inline (a standalone connection) tells nothing about the reservation.
            _ => Confirmed::Pending,
        })
        .collect())
}
