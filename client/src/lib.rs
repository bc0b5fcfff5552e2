//! The typed client of the seckill Redis module, shared by the gateway, the worker and the CLI:
//! the one place that speaks the `SECKILL.*` protocol and the reservation streams.
//!
//! # Layout
//! - [`sale`]: `SECKILL.CREATE`, `RESERVE`, `RELEASE`, `STATUS` (and the buyer lookup) built
//!   and parsed once, over any `ConnectionLike`.
//! - [`error`]: [`ClientError`], every reply or failure classified once (refusal codes,
//!   argument errors, unreachable, timeout).
//! - [`client`]: [`SeckillClient`], the gateway's connection: deadlines on every call, the
//!   hot path's RESERVEs through the [`coalesce`] pipeline (standalone) or one by one over
//!   the cluster connection, and their replica confirmation ([`confirm`]).
//! - [`coalesce`]: concurrent commands sent as one pipeline per scheduler turn.
//! - [`topology`]: standalone or Redis Cluster ([`Target`]), the shards from `CLUSTER NODES`,
//!   a primary's replicas from `INFO replication` (pure parsers).
//! - [`cluster`]: [`RedisConn`] (routed by key, MOVED/ASK/TRYAGAIN followed in a cluster),
//!   direct connections to one node, the cached layout.
//! - [`router`]: the cluster routing itself, on one multiplexed connection per node.
//! - [`confirm`]: acknowledging only what `min_replicas` replicas hold (SECKILL.HELD + fence + WAIT
//!   per node per batch).
//! - [`shards`]: per-node views for the worker and the CLI (streams on each primary, lag and
//!   replication per shard).
//! - [`streams`]: stream discovery, the consumer group, reads, claims, acks, dead letters.
//! - [`lag`]: the group's lag per stream, from `XINFO`.

pub mod client;
pub mod cluster;
pub mod coalesce;
pub mod confirm;
pub mod error;
pub mod lag;
pub mod reader;
pub mod router;
pub mod sale;
pub mod shards;
pub mod streams;
pub mod topology;

pub use client::{ClientSettings, SeckillClient};
pub use cluster::RedisConn;
pub use error::ClientError;
pub use sale::{CreateArgs, Durability, Reservation, Status};
pub use topology::{Access, Nodes, Target, Topology};
