//! Logs, and span export over OTLP/gRPC only when `telemetry.otlp_endpoint` is set.
//!
//! [`layer`] returns `None` when the endpoint is empty: then no exporter, no batch thread and
//! no OpenTelemetry layer exist, and spans cost what they cost before (the JSON log layer).
//! When set, every `tracing` span that passes the log filter becomes an OpenTelemetry span
//! (name = the span name, or its `otel.name` field), batched and sent in the background; a
//! collector that is down only loses spans.
//!
//! With export on, [`init_logging`] also installs the W3C Trace Context propagator as the
//! global text-map propagator, so a server can continue a caller's trace from its
//! `traceparent`/`tracestate` headers (the gateway does, see `seckill_gateway::telemetry`).
//! With export off the global stays the no-op propagator: nothing is parsed.

use crate::config::TelemetrySettings;
use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// Flushes and stops the exporter when dropped (keep it alive until the process exits).
pub struct OtlpGuard {
    provider: SdkTracerProvider,
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        // Sends the spans still buffered; a collector that is away costs at most its timeout.
        if let Err(e) = self.provider.shutdown() {
            eprintln!("OTLP exporter shutdown: {e}");
        }
    }
}

/// The OpenTelemetry layer for `service` (e.g. `seckill-gateway`), or `None` when tracing
/// export is off. Must be called inside a Tokio runtime (the gRPC channel lives there).
pub(crate) fn layer<S>(
    settings: &TelemetrySettings,
    service: &'static str,
) -> anyhow::Result<Option<(OpenTelemetryLayer<S, SdkTracer>, OtlpGuard)>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let endpoint = settings.otlp_endpoint.trim();
    if endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("Failed to build the OTLP exporter for {endpoint}"))?;
    let ratio = settings.sample_ratio.clamp(0.0, 1.0);
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer(service);
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok(Some((layer, OtlpGuard { provider })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::Registry;

    #[test]
    fn off_by_default_means_no_exporter() {
        let s = TelemetrySettings::default();
        assert!(s.otlp_endpoint.is_empty());
        let l = layer::<Registry>(&s, "seckill-test").expect("no error when off");
        assert!(l.is_none());
    }

    #[tokio::test]
    async fn an_endpoint_builds_an_exporter() {
        let s = TelemetrySettings {
            otlp_endpoint: "http://127.0.0.1:4317".into(),
            ..TelemetrySettings::default()
        };
        let l = layer::<Registry>(&s, "seckill-test").expect("exporter builds");
        assert!(l.is_some());
    }
}

/// Where log lines go and in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOutput {
    /// JSON lines (production) or human-readable text.
    pub json: bool,
    /// stderr instead of stdout (the CLI prints results on stdout).
    pub stderr: bool,
    /// Hand lines to a background thread instead of writing them on the calling thread: a
    /// slow disk or pipe then never stalls a request. Servers use it; the CLI does not.
    pub non_blocking: bool,
}

/// Lines a non-blocking writer buffers before the caller waits (backpressure, never loss:
/// errors must not vanish; the gateway samples its access log so the volume stays low).
const LOG_BUFFER_LINES: usize = 256 * 1024;

/// Keeps the logging machinery alive: dropping it flushes buffered log lines and spans. Hold
/// it until the process exits.
#[must_use = "dropping the guard stops the log writer and the span exporter"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
    _otlp: Option<OtlpGuard>,
}

/// Installs the process' `tracing` subscriber once: the log layer (filtered by `RUST_LOG`,
/// else `default_filter`) and, when `telemetry.otlp_endpoint` is set, the OTLP layer for
/// `service`, plus the W3C Trace Context propagator as the global text-map propagator. Keep
/// the returned guard until exit. A second call is a no-op. Must run inside a Tokio runtime
/// when OTLP is on.
pub fn init_logging(
    default_filter: &str,
    output: LogOutput,
    telemetry: &TelemetrySettings,
    service: &'static str,
) -> anyhow::Result<LogGuard> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, writer_guard) = match (output.non_blocking, output.stderr) {
        (false, true) => (BoxMakeWriter::new(std::io::stderr), None),
        (false, false) => (BoxMakeWriter::new(std::io::stdout), None),
        (true, stderr) => {
            let sink: Box<dyn std::io::Write + Send> = if stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            };
            let (w, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_BUFFER_LINES)
                .lossy(false)
                .thread_name("seckill-log")
                .finish(sink);
            (BoxMakeWriter::new(w), Some(guard))
        }
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(writer);
    let logs = if output.json {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(crate::span_fields::SpanJsonFields)
            .boxed()
    } else {
        logs.boxed()
    };
    let base = tracing_subscriber::registry().with(filter).with(logs);
    let otlp = match layer(telemetry, service)? {
        Some((otel, guard)) => {
            // Only with export on: a remote parent matters only for exported spans, and the
            // default no-op propagator keeps extraction free when export is off.
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let _ = base.with(otel).try_init();
            Some(guard)
        }
        None => {
            let _ = base.try_init();
            None
        }
    };
    Ok(LogGuard {
        _writer: writer_guard,
        _otlp: otlp,
    })
}
