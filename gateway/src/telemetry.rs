//! Structured JSON logs on stdout. Each request runs in a `request` span carrying its method,
//! path and request id, so every line logged while serving it names the request.
//!
//! With `telemetry.otlp_endpoint` set, the same spans are also exported over OTLP as
//! service `seckill-gateway` (see [`seckill_registry::otlp`]); unset, no exporter exists.

use seckill_registry::otlp::{LogOutput, OtlpGuard};
use seckill_registry::TelemetrySettings;

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
    let output = LogOutput {
        json: true,
        stderr: false,
    };
    seckill_registry::otlp::init_logging(default_filter, output, telemetry, SERVICE)
}
