//! The seckill order worker: drains every activity's reservation stream into MySQL orders,
//! expires unpaid orders and returns their stock, and exports stream lag.
//!
//! # Layout
//! - Pure logic, tested alone:
//!   - [`plan`]: an entry becomes an order row or a dead letter (with the reason).
//!   - backoff with jitter comes from [`seckill_registry::backoff`] (shared with the etcd loops).
//!   - [`lag`]: consumer-group lag from `XINFO`, robust to Redis 7.0's nil `lag`.
//!   - [`audit`]: Redis against MySQL, the drift report of `seckill audit`.
//! - I/O:
//!   - [`streams`]: discovery (SCAN), XREADGROUP, XAUTOCLAIM, XACK, dead letters, XINFO.
//!   - [`db`]: the pool, migrations, the one multi-row insert per batch.
//!   - [`consumer`]: the loop around `try_process_batch`; XACK only after COMMIT.
//!   - [`inspect`]: gathers Redis and MySQL for the audit.
//!   - [`orders`], [`sweeper`], [`leader`]: payment timeout as a singleton.
//!   - [`metrics`]: Prometheus registry and `/metrics`.
//! - [`config`]: layered settings (file, `SECKILL_*` env, flags).
//! - [`app`]: `Worker::build` + `run_until_stopped`; with `etcd.endpoints` set it also
//!   registers the worker as `/seckill/members/worker/<host>-<pid>` (lease, keep-alive,
//!   deleted on shutdown; see [`seckill_registry::members`]).

pub mod app;
pub mod audit;
pub mod config;
pub mod consumer;
pub mod db;
pub mod inspect;
pub mod lag;
pub mod leader;
pub mod metrics;
pub mod orders;
pub mod plan;
pub mod streams;
pub mod sweeper;

pub use app::Worker;
pub use config::Settings;

/// The OpenTelemetry service name of the worker.
pub const SERVICE: &str = "seckill-worker";

/// Initialises tracing from `RUST_LOG` (default `info`), to stderr; `json` for JSON lines.
pub fn init_tracing(json: bool) {
    let _ = init_tracing_with(json, &config::TelemetrySettings::default());
}

/// Like [`init_tracing`], plus OTLP span export when `telemetry.otlp_endpoint` is set (each
/// consumer batch is one trace: `worker.batch` around `redis.xreadgroup`,
/// `mysql.insert_orders`, `redis.xack`). Keep the guard until exit: dropping it flushes the
/// buffered spans. Call inside the Tokio runtime.
pub fn init_tracing_with(
    json: bool,
    telemetry: &config::TelemetrySettings,
) -> anyhow::Result<Option<seckill_registry::otlp::OtlpGuard>> {
    let output = seckill_registry::otlp::LogOutput { json, stderr: true };
    seckill_registry::otlp::init_logging("info", output, telemetry, SERVICE)
}
