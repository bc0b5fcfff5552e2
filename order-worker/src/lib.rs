//! The seckill order worker: drains every activity's reservation stream into MySQL orders,
//! expires unpaid orders and returns their stock, and exports stream lag.
//!
//! # Layout
//! - Pure logic, tested alone:
//!   - [`plan`]: an entry becomes an order row or a dead letter (with the reason).
//!   - [`backoff`]: exponential backoff with jitter.
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
//! - [`app`]: `Worker::build` + `run_until_stopped`.

pub mod app;
pub mod audit;
pub mod backoff;
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

/// Initialises tracing from `RUST_LOG` (default `info`), to stderr; `json` for JSON lines.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
