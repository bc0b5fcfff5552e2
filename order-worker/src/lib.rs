//! The seckill order worker: drains every activity's reservation stream into MySQL orders,
//! expires unpaid orders and returns their stock, and exports stream lag.
//!
//! # Layout
//! - Pure logic, tested alone:
//!   - [`plan`]: an entry becomes an order row or a dead letter (with the reason).
//!   - [`trim`]'s [`trim::is_final`] and [`trim::min_id`]: how far a stream may be trimmed.
//! - I/O:
//!   - [`consumer`]: the loop around `try_process_batch`; XACK only after COMMIT. Streams
//!     are read and acked through `seckill_client::streams`, rows written by
//!     `seckill_db::orders::insert_batch`.
//!   - [`sweeper`], [`leader`]: payment timeout as a singleton (the state changes are
//!     `seckill_db::orders`'s), with backoff for releases that keep failing; the same
//!     leader trims the streams ([`trim`]).
//!   - [`metrics`]: the worker's Prometheus registry (served by `seckill_runtime::metrics`),
//!     with per-shard gauges (which node serves which activity, replicas acknowledging,
//!     replication lag).
//!   - `shards`: the worker's Redis for either topology, and its consumers per node (every
//!     primary of a Redis Cluster, followed through failovers and slot moves).
//! - [`config`]: the worker's settings (layered by `seckill_runtime::config`).
//! - [`app`]: `Worker::build` + `run_until_stopped`; with `etcd.endpoints` set it also
//!   registers the worker as `/seckill/members/worker/<host>-<pid>` (lease, keep-alive,
//!   deleted on shutdown; see `seckill_runtime::etcd::members`).

mod app;
mod arrivals;
pub mod config;
mod consumer;
mod leader;
pub mod metrics;
mod pace;
pub mod plan;
mod read_size;
mod shards;
pub mod sweeper;
pub mod trim;

pub use app::Worker;
pub use config::Settings;

/// The OpenTelemetry service name of the worker.
pub const SERVICE: &str = "seckill-worker";

/// Initialises tracing from `RUST_LOG` (default `info`), to stderr through a background
/// writer (`json` for JSON lines), plus OTLP span export when `telemetry.otlp_endpoint` is
/// set (each consumer batch is one trace: `worker.batch` around `redis.xreadgroup`,
/// `mysql.insert_orders`, `redis.xack`). Keep the guard until exit: dropping it flushes the
/// buffered lines and spans. Call inside the Tokio runtime.
pub fn init_tracing_with(
    json: bool,
    telemetry: &config::TelemetrySettings,
) -> anyhow::Result<seckill_runtime::telemetry::LogGuard> {
    let output = seckill_runtime::telemetry::LogOutput {
        json,
        stderr: true,
        non_blocking: true,
    };
    seckill_runtime::telemetry::init_logging("info", output, telemetry, SERVICE)
}
