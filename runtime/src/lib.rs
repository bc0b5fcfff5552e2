//! What every long-running seckill process does around the sale, written once: it reads its
//! layered configuration, logs and exports traces, serves `/metrics`, stops on a signal,
//! retries with backoff, announces itself in etcd and follows runtime settings kept there.
//!
//! None of this may hurt the sale: etcd calls run in background tasks that retry with backoff
//! and only log while etcd is away; startup never waits for etcd; with no endpoint configured
//! nothing runs at all.
//!
//! # Layout
//! - [`config`]: the layered loader (defaults, `configs/config.yaml`, `SECKILL_*` environment,
//!   flags), [`config::Secret`], [`config::redact_url`] (the only form of a server URL that
//!   reaches a log or an error), and the sections every binary shares (`redis`, `mysql`,
//!   `etcd`, `telemetry`), which build the Redis client (ACL user per binary, `rediss://`
//!   with CA and client certificate) and the MySQL connect options (TLS files) of every
//!   binary.
//! - [`telemetry`]: [`telemetry::init_logging`], the one subscriber set-up of every binary
//!   (log layer, plus the OpenTelemetry layer exporting spans over OTLP/gRPC when
//!   `telemetry.otlp_endpoint` is set).
//! - [`span_fields`]: how the JSON log lines keep span fields (cheaper than
//!   tracing-subscriber's own, which spans made on every request paid for).
//! - [`metrics`]: the process' CPU and memory metrics, and [`metrics::serve`], the
//!   `/metrics` + `/health` endpoint of processes that serve no other HTTP.
//! - [`shutdown`]: SIGINT/SIGTERM as a future, or fanned out through a `CancellationToken`.
//! - [`backoff`]: the retry pause of every loop that waits for a dependency.
//! - [`etcd`]: [`etcd::connect`] (deadlines, keep-alives, TLS for `https://` endpoints),
//!   [`etcd::members`] (the service registry under leases) and [`etcd::watch`] (mirroring a
//!   prefix, for runtime settings).

pub mod backoff;
pub mod config;
pub mod etcd;
pub mod metrics;
pub mod shutdown;
pub mod span_fields;
pub mod telemetry;

pub use config::{
    redact_url, EtcdSettings, MysqlSettings, RedisSettings, RedisUser, Secret, TelemetrySettings,
    TlsFiles,
};
pub use etcd::members::Member;
