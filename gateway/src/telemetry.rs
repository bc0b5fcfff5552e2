//! Structured JSON logs on stdout. Each request runs in a `request` span carrying its method,
//! path and request id, so every line logged while serving it names the request.
//!
//! With `telemetry.otlp_endpoint` set, the same spans are also exported over OTLP as
//! service `seckill-gateway` (see `seckill_runtime::telemetry`); unset, no exporter exists.
//! A request carrying a valid W3C `traceparent` (and optional `tracestate`) continues the
//! caller's trace: its server span is a child of the caller's span
//! ([`follow_remote_parent`]).

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use seckill_runtime::telemetry::{LogGuard, LogOutput};
use seckill_runtime::TelemetrySettings;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use warp::http::HeaderMap;

/// The OpenTelemetry service name of the gateway.
pub const SERVICE: &str = "seckill-gateway";

/// Installs the JSON subscriber, written on the calling thread (for tests); `RUST_LOG`
/// overrides `default_filter`. Idempotent.
pub fn init(default_filter: &str) {
    let output = LogOutput {
        json: true,
        stderr: false,
        non_blocking: false,
    };
    let _ = seckill_runtime::telemetry::init_logging(
        default_filter,
        output,
        &TelemetrySettings::default(),
        SERVICE,
    );
}

/// The gateway's subscriber: JSON lines handed to a background writer thread (a slow stdout
/// never stalls a request), plus OTLP export when configured. Keep the guard until exit:
/// dropping it flushes the lines and spans still buffered. Call inside the Tokio runtime.
pub fn init_with(default_filter: &str, telemetry: &TelemetrySettings) -> anyhow::Result<LogGuard> {
    let output = LogOutput {
        json: true,
        stderr: false,
        non_blocking: true,
    };
    seckill_runtime::telemetry::init_logging(default_filter, output, telemetry, SERVICE)
}

/// Makes `span` (a request's server span, not yet entered) a child of the caller's span when
/// `headers` carry a valid `traceparent`. Without that header nothing else is looked at: the
/// common request without tracing pays one header lookup. An invalid header, or export off
/// (the global propagator is then the no-op one), leaves the span the root of a new trace.
pub(crate) fn follow_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract_with_context(&opentelemetry::Context::new(), &Headers(headers))
    });
    // An unparsable header yields an empty context; setting it would change nothing, but
    // skipping it keeps "invalid means new trace" explicit.
    if cx.span().span_context().is_valid() {
        // Fails only when the span is disabled (filtered out): then there is nothing to link.
        if let Err(e) = span.set_parent(cx) {
            tracing::debug!(error = %e, "traceparent not applied");
        }
    }
}

/// Read access to request headers for OpenTelemetry propagators (non-UTF-8 values count as
/// absent, which makes them invalid).
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn the_adapter_hands_header_values_to_propagators() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", PARENT.parse().expect("a valid header value"));
        assert_eq!(Headers(&h).get("traceparent"), Some(PARENT));
        assert_eq!(Headers(&h).get("tracestate"), None);
        assert_eq!(Headers(&h).keys(), vec!["traceparent"]);
    }
}
