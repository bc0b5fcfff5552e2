//! A minimal OTLP/gRPC trace receiver for tests of span export. A collector stands outside
//! our system, so a stub of it is fair; it records every span it is sent.

use anyhow::bail;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received span.
#[derive(Debug, Clone)]
pub struct SeenSpan {
    /// The exporting resource's `service.name`, as a debug rendering of the value.
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// Empty or all zero for a root span.
    pub parent_span_id: Vec<u8>,
}

impl SeenSpan {
    /// A real (non-zero) trace id and no parent: the first span of a trace.
    pub fn is_trace_root(&self) -> bool {
        self.trace_id.iter().any(|b| *b != 0) && self.parent_span_id.iter().all(|b| *b == 0)
    }

    /// Panics unless this span is a direct child of `parent` in the same trace and both come
    /// from a service whose name contains `service`.
    pub fn assert_child_of(&self, parent: &SeenSpan, service: &str) {
        assert_eq!(
            self.trace_id, parent.trace_id,
            "{} is in the trace of {}",
            self.name, parent.name
        );
        assert_eq!(
            self.parent_span_id, parent.span_id,
            "{} is a child of {}",
            self.name, parent.name
        );
        for span in [self, parent] {
            assert!(
                span.service.contains(service),
                "{} comes from {service}, not {}",
                span.name,
                span.service
            );
        }
    }
}

type Seen = Arc<Mutex<Vec<SeenSpan>>>;

struct Service(Seen);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self
            .0
            .lock()
            .map_err(|_| tonic::Status::internal("poisoned"))?;
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    seen.push(SeenSpan {
                        service: service.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The receiver, listening on a free loopback port; stopped on [`OtlpReceiver::stop`] or drop.
pub struct OtlpReceiver {
    pub port: u16,
    seen: Seen,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl OtlpReceiver {
    /// Starts serving on the current tokio runtime, on a port the OS picks (bound here, so
    /// no other process can take it between the pick and the bind).
    pub fn start() -> Self {
        let seen: Seen = Arc::default();
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .expect("bind an OTLP receiver on 127.0.0.1:0");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Service(seen.clone())))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Self {
            port,
            seen,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// What to give an exporter: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SeenSpan> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Polls the received spans until `find` answers, or fails after `timeout` naming the
    /// spans that did arrive (exporters send in batches, so spans come late).
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut find: impl FnMut(&[SeenSpan]) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if let Some(found) = find(&spans) {
                return Ok(found);
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
                bail!("the spans looked for did not arrive within {timeout:?}; got {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
