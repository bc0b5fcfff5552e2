//! The typed client of the seckill Redis module, shared by the gateway, the worker and the CLI:
//! the one place that speaks the `SECKILL.*` protocol and the reservation streams.
//!
//! # Layout
//! - [`sale`]: `SECKILL.CREATE`, `RESERVE`, `RELEASE`, `STATUS` (and the buyer lookup) built
//!   and parsed once, over any `ConnectionLike`.
//! - [`error`]: [`ClientError`], every reply or failure classified once (refusal codes,
//!   argument errors, unreachable, timeout).
//! - [`client`]: [`SeckillClient`], the gateway's connection: deadlines on every call and the
//!   hot path's RESERVEs through the [`coalesce`] pipeline.
//! - [`coalesce`]: concurrent commands sent as one pipeline per scheduler turn.
//! - [`streams`]: stream discovery, the consumer group, reads, claims, acks, dead letters.
//! - [`lag`]: the group's lag per stream, from `XINFO`.

pub mod client;
pub mod coalesce;
pub mod error;
pub mod lag;
pub mod sale;
pub mod streams;

pub use client::SeckillClient;
pub use error::ClientError;
pub use sale::{CreateArgs, Reservation, Status};
