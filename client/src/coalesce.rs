//! Coalesces concurrent hot-path commands into one Redis pipeline per scheduler turn.
//!
//! Under a flash sale thousands of requests per second each send one `SECKILL.RESERVE`. The
//! multiplexed connection already pipelines commands that happen to be queued together, but
//! its writer is woken by the first one, so most writes carried one or two commands and the
//! gateway spent a large share of its CPU in loopback `write`s. Here a collector task takes
//! the first queued command, yields once so the request tasks that are ready on this worker
//! queue theirs too, and sends everything queued as one pipeline: one channel message, one
//! write and one read for the lot. Replies are matched back in order; each command keeps its
//! own result (a refusal of one does not fail the others).
//!
//! In a Redis Cluster ([`Coalescer::spawn_cluster`]) the batch is split by the node that
//! serves each command's activity, one pipeline per node on that node's connection. A reply
//! that is a redirect or a refusal of a moving cluster (`MOVED`, `ASK`, `TRYAGAIN`,
//! `CLUSTERDOWN`...) means that command did not run: it alone is sent again through the
//! router, which follows it; the others keep their replies.

use crate::error::{classify, ClientError};
use crate::router::{must_reroute, Router};
use redis::aio::ConnectionLike;
use redis::{Cmd, Value};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Commands per pipeline at most: large enough to absorb a burst, small enough that one
/// slow batch does not hold many requests.
const MAX_BATCH: usize = 256;
/// Queued commands before senders wait (backpressure instead of unbounded memory).
const QUEUE: usize = 4096;

type Reply = Result<Value, ClientError>;

struct Job {
    cmd: Cmd,
    reply: oneshot::Sender<Reply>,
}

/// Handle to the collector; cloning is cheap. The collector stops when every handle is gone.
#[derive(Clone)]
pub struct Coalescer {
    tx: mpsc::Sender<Job>,
}

impl Coalescer {
    /// Starts the collector on the current tokio runtime.
    pub fn spawn<C>(conn: C) -> Self
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(collect(conn, rx));
        Self { tx }
    }

    /// Starts the collector for a Redis Cluster: one pipeline per node per batch.
    pub fn spawn_cluster(router: Router) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(collect_with(rx, move |jobs| {
            tokio::spawn(send_cluster(router.clone(), jobs));
        }));
        Self { tx }
    }

    /// Sends `cmd` in the next pipeline and waits for its own reply. The caller bounds the
    /// wait (the store's deadline); a dropped wait leaves the command to complete unobserved.
    pub async fn query(&self, cmd: Cmd) -> Reply {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { cmd, reply })
            .await
            .map_err(|_| ClientError::Unavailable("the redis command queue is closed".into()))?;
        rx.await.map_err(|_| {
            ClientError::Unavailable("the redis command was dropped before its reply".into())
        })?
    }
}

async fn collect<C>(conn: C, rx: mpsc::Receiver<Job>)
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    collect_with(rx, move |jobs| {
        tokio::spawn(send(conn.clone(), jobs));
    })
    .await
}

/// Takes batches off `rx` (everything queued in one scheduler turn) and hands each to `go`.
async fn collect_with(mut rx: mpsc::Receiver<Job>, go: impl Fn(Vec<Job>)) {
    while let Some(first) = rx.recv().await {
        // Sized for a typical batch; a large preallocation per batch cost more than growth.
        let mut jobs = Vec::with_capacity(16);
        jobs.push(first);
        // One turn of the scheduler: request tasks that are ready now add their commands.
        tokio::task::yield_now().await;
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // The next batch is collected while this one is in flight.
        go(jobs);
    }
}

/// One pipeline per node; commands refused by a moving cluster go again through the router.
async fn send_cluster(router: Router, batch: Vec<Job>) {
    let mut by_node: HashMap<String, Vec<Job>> = HashMap::new();
    let mut alone = Vec::new();
    for job in batch {
        if job.reply.is_closed() {
            continue;
        }
        match router.node_of(&job.cmd) {
            Some(node) => by_node.entry(node).or_default().push(job),
            None => alone.push(job),
        }
    }
    let reroute = |job: Job, router: Router| async move {
        let r = router.route(&job.cmd).await.map_err(|e| classify(&e));
        let _ = job.reply.send(r);
    };
    let mut work: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = Vec::new();
    for job in alone {
        work.push(Box::pin(reroute(job, router.clone())));
    }
    for (node, jobs) in by_node {
        let router = router.clone();
        work.push(Box::pin(async move {
            let mut conn = match router.node(&node).await {
                Ok(c) => c,
                // Not connected: nothing was sent; each goes through the router, which
                // retries (a failover under way) within the caller's deadline.
                Err(_) => {
                    router.forget(&node);
                    futures::future::join_all(
                        jobs.into_iter().map(|job| reroute(job, router.clone())),
                    )
                    .await;
                    return;
                }
            };
            let mut pipe = redis::pipe();
            for job in &jobs {
                pipe.add_command(job.cmd.clone());
            }
            let sent = conn.req_packed_commands(&pipe, 0, jobs.len()).await;
            if sent.is_err() {
                router.forget(&node);
            }
            match sent {
                Ok(values) if values.len() == jobs.len() => {
                    let mut again = Vec::new();
                    for (job, value) in jobs.into_iter().zip(values) {
                        if must_reroute(&value) {
                            again.push(job);
                        } else {
                            let _ = job.reply.send(split_reply(value));
                        }
                    }
                    futures::future::join_all(
                        again.into_iter().map(|job| reroute(job, router.clone())),
                    )
                    .await;
                }
                Ok(values) => {
                    let e = ClientError::Protocol(format!(
                        "a pipeline of {} commands got {} replies",
                        jobs.len(),
                        values.len()
                    ));
                    for job in jobs {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
                // The connection failed: any of them may have run; each caller is told.
                Err(e) => {
                    let e = classify(&e);
                    for job in jobs {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        }));
    }
    futures::future::join_all(work).await;
}

async fn send<C: ConnectionLike>(mut conn: C, batch: Vec<Job>) {
    let mut pipe = redis::pipe();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        // A caller that already gave up (deadline) need not be sent.
        if job.reply.is_closed() {
            continue;
        }
        pipe.add_command(job.cmd);
        replies.push(job.reply);
    }
    if replies.is_empty() {
        return;
    }
    let values = match conn.req_packed_commands(&pipe, 0, replies.len()).await {
        Ok(values) if values.len() == replies.len() => Ok(values),
        Ok(values) => Err(ClientError::Protocol(format!(
            "a pipeline of {} commands got {} replies",
            replies.len(),
            values.len()
        ))),
        Err(e) => Err(classify(&e)),
    };
    match values {
        Ok(values) => {
            for (reply, value) in replies.into_iter().zip(values) {
                let _ = reply.send(split_reply(value));
            }
        }
        // The whole pipeline failed: every caller in it gets the same error.
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// One command's reply: an error reply (a refusal, an argument error) becomes that
/// command's error alone.
fn split_reply(value: Value) -> Reply {
    value.extract_error().map_err(|e| classify(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_core::Refusal;

    #[test]
    fn error_replies_stay_with_their_command() {
        let ok = split_reply(Value::Array(vec![
            Value::BulkString(b"1-0".to_vec()),
            Value::Int(9),
        ]));
        assert!(ok.is_ok());
        let refused = redis::parse_redis_value(b"-SOLDOUT only 0 left\r\n")
            .map(split_reply)
            .ok();
        assert!(matches!(
            refused,
            Some(Err(ClientError::Refused {
                refusal: Refusal::SoldOut,
                ..
            }))
        ));
    }
}
