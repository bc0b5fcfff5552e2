//! What every long-running seckill process (gateway, worker) does around the sale, written once:
//! it announces itself in etcd, follows runtime settings kept in etcd, and exports its traces.
//!
//! None of this may hurt the sale: etcd calls run in background tasks that retry with backoff
//! and only log while etcd is away; startup never waits for etcd; with no endpoint configured
//! nothing runs at all.
//!
//! # Layout
//! - [`settings`]: the `etcd` and `telemetry` sections of `configs/config.yaml`.
//! - [`members`]: [`members::Member`], the value under `/seckill/members/<kind>/<id>`;
//!   [`members::register`] keeps it alive under a lease and deletes it on shutdown;
//!   [`members::list`] reads them back (for `seckill members`).
//! - [`watch`]: [`watch::watch_prefix`] mirrors every key under a prefix (e.g.
//!   `/seckill/config/`) and reports each change.
//! - [`otlp`]: [`otlp::init_logging`], the one subscriber set-up of every binary (log layer,
//!   plus the OpenTelemetry layer exporting spans over OTLP/gRPC when
//!   `telemetry.otlp_endpoint` is set).
//! - [`backoff`]: the retry pause of the background loops.
//! - [`process_metrics`]: the process' CPU and memory metrics, unprefixed, for `/metrics`.

pub mod backoff;
pub mod members;
pub mod otlp;
pub mod process_metrics;
pub mod settings;
pub mod watch;

pub use members::Member;
pub use settings::{EtcdSettings, TelemetrySettings};

use std::time::Duration;

/// How long one etcd call may take before the loop treats etcd as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A client whose connection attempts and dead connections are detected within seconds, so
/// background loops notice an outage instead of hanging on a half-open socket.
pub async fn connect(endpoints: &[String]) -> Result<etcd_client::Client, etcd_client::Error> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    match tokio::time::timeout(
        CALL_TIMEOUT,
        etcd_client::Client::connect(endpoints, Some(options)),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(etcd_client::Error::InvalidArgs(
            "timed out connecting to etcd".into(),
        )),
    }
}

/// Runs one etcd call with [`CALL_TIMEOUT`].
pub async fn timed<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("etcd {what} failed"))),
        Err(_) => anyhow::bail!("etcd {what} timed out after {CALL_TIMEOUT:?}"),
    }
}
