//! Structured JSON logs on stdout. Each request runs in a `request` span carrying its method,
//! path and request id, so every line logged while serving it names the request.
//!
//! With `telemetry.otlp_endpoint` set, the same spans are also exported over OTLP as
//! service `seckill-gateway` (see [`seckill_registry::otlp`]); unset, no exporter exists.

use seckill_registry::otlp::OtlpGuard;
use seckill_registry::TelemetrySettings;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The OpenTelemetry service name of the gateway.
pub const SERVICE: &str = "seckill-gateway";

/// Installs the JSON subscriber; `RUST_LOG` overrides `default_filter`. Idempotent.
pub fn init(default_filter: &str) {
    let _ = init_with(default_filter, &TelemetrySettings::default());
}

/// Like [`init`], plus OTLP export when configured. Keep the guard until exit: dropping it
/// flushes the spans still buffered. Call inside the Tokio runtime.
pub fn init_with(
    default_filter: &str,
    telemetry: &TelemetrySettings,
) -> anyhow::Result<Option<OtlpGuard>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false);
    let base = tracing_subscriber::registry().with(filter).with(logs);
    match seckill_registry::otlp::layer(telemetry, SERVICE)? {
        Some((otel, guard)) => {
            let _ = base.with(otel).try_init();
            Ok(Some(guard))
        }
        None => {
            let _ = base.try_init();
            Ok(None)
        }
    }
}
