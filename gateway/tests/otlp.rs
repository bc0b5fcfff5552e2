//! OTLP export end to end: the real `seckill-gateway` binary with `telemetry.otlp_endpoint`
//! pointing at a minimal in-test OTLP/gRPC receiver (a collector stands outside our system,
//! so a stub of it is fair). One `POST /api/v1/seckill` must produce a server span named for
//! the route and the `redis.reserve` span, in one trace, from service `seckill-gateway`; with
//! a W3C `traceparent` header, that trace is the caller's.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use seckill_gateway::auth::{Jwt, Role};
use seckill_testkit::{free_port, ChildGuard, RedisServer};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "otlp-test-jwt-secret-0123456789abcdefgh";

/// One received span.
#[derive(Debug, Clone)]
struct SeenSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

type Seen = Arc<Mutex<Vec<SeenSpan>>>;

struct Receiver(Seen);

#[tonic::async_trait]
impl TraceService for Receiver {
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

/// The in-test receiver, the gateway exporting to it and the Redis behind the gateway.
struct Setup {
    seen: Seen,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    gateway: ChildGuard,
    port: u16,
    log_path: tempfile::NamedTempFile,
    client: reqwest::Client,
    token: String,
    _redis: RedisServer,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        let seen: Seen = Arc::default();
        let otlp_port = free_port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver(seen.clone())))
                .serve_with_shutdown(([127, 0, 0, 1], otlp_port).into(), async {
                    let _ = stop_rx.await;
                }),
        );

        let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
        redis.cli(&["SECKILL.CREATE", "77", "STOCK", "10"])?;
        let port = free_port();
        let log_path = tempfile::NamedTempFile::new()?;
        let log = log_path.reopen()?;
        let child = Command::new(env!("CARGO_BIN_EXE_seckill-gateway"))
            // The working directory is gateway/: no configs/config.yaml, so built-in defaults.
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--redis-url")
            .arg(redis.url())
            .arg("--mysql-url")
            .arg(format!("mysql://root@127.0.0.1:{}/none", free_port()))
            .env("SECKILL_AUTH__JWT_SECRET", SECRET)
            .env(
                "SECKILL_TELEMETRY__OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp_port}"),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let gateway = ChildGuard::new(child);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let token = Jwt::new(SECRET.as_bytes(), 3600)
            .issue("4242", Role::User, chrono::Utc::now().timestamp() as u64)?
            .0;
        Ok(Self {
            seen,
            stop: Some(stop_tx),
            server: Some(server),
            gateway,
            port,
            log_path,
            client,
            token,
            _redis: redis,
        })
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path.path()).unwrap_or_default()
    }

    /// `POST /api/v1/seckill` with `headers`, retried until the gateway listens (≤ 30 s).
    async fn seckill(&mut self, headers: &[(&str, &str)]) -> anyhow::Result<reqwest::Response> {
        let started = Instant::now();
        loop {
            let mut req = self
                .client
                .post(format!("http://127.0.0.1:{}/api/v1/seckill", self.port))
                .bearer_auth(&self.token)
                .json(&serde_json::json!({"activity_id": "77", "product_id": "1", "quantity": 1}));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            match req.send().await {
                Ok(r) => return Ok(r),
                Err(_)
                    if started.elapsed() < Duration::from_secs(30) && self.gateway.is_running() =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => anyhow::bail!("gateway never answered: {e}\n{}", self.logs()),
            }
        }
    }

    /// The route span and the `redis.reserve` span, once both arrived (spans come with the
    /// next batch, 200 ms here; ≤ 20 s).
    async fn route_and_redis_spans(&self) -> anyhow::Result<(SeenSpan, SeenSpan)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = {
                let seen = self.seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                let route = seen
                    .iter()
                    .find(|s| s.name == "POST /api/v1/seckill")
                    .cloned();
                let redis = seen.iter().find(|s| s.name == "redis.reserve").cloned();
                route.zip(redis)
            };
            if let Some(f) = found {
                return Ok(f);
            }
            if Instant::now() > deadline {
                let names: Vec<String> = self
                    .seen
                    .lock()
                    .map(|s| s.iter().map(|x| x.name.clone()).collect())
                    .unwrap_or_default();
                anyhow::bail!("spans not received; got {names:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        self.gateway.kill();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

#[tokio::test]
async fn a_seckill_request_is_one_trace_from_route_to_redis() -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    let reply = setup.seckill(&[]).await?;
    assert_eq!(reply.status(), 200, "{}", reply.text().await?);

    let (route, redis_span) = setup.route_and_redis_spans().await?;
    assert_eq!(
        route.trace_id, redis_span.trace_id,
        "route and redis spans share one trace id"
    );
    assert!(route.trace_id.iter().any(|b| *b != 0), "a real trace id");
    assert!(
        route.parent_span_id.iter().all(|b| *b == 0),
        "without traceparent the route span is a root: {:?}",
        route.parent_span_id
    );
    assert_eq!(
        redis_span.parent_span_id, route.span_id,
        "redis.reserve is a child of the route span"
    );
    assert!(
        route.service.contains("seckill-gateway"),
        "service name: {}",
        route.service
    );
    setup.stop().await;
    Ok(())
}

/// A caller's W3C `traceparent` (with a `tracestate`) makes the server span its child: same
/// trace id, parent = the caller's span id, and the Redis call stays in that trace.
#[tokio::test]
async fn a_traceparent_header_continues_the_callers_trace() -> anyhow::Result<()> {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_ID: &str = "00f067aa0ba902b7";
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let mut setup = Setup::start().await?;
    let reply = setup
        .seckill(&[
            ("traceparent", traceparent.as_str()),
            ("tracestate", "vendor=opaque"),
        ])
        .await?;
    assert_eq!(reply.status(), 200, "{}", reply.text().await?);

    let (route, redis_span) = setup.route_and_redis_spans().await?;
    assert_eq!(hex(&route.trace_id), TRACE_ID, "the caller's trace id");
    assert_eq!(
        hex(&route.parent_span_id),
        PARENT_ID,
        "the server span's parent is the caller's span"
    );
    assert_ne!(hex(&route.span_id), PARENT_ID, "a span of its own");
    assert_eq!(
        hex(&redis_span.trace_id),
        TRACE_ID,
        "redis.reserve is in the caller's trace"
    );
    assert_eq!(
        redis_span.parent_span_id, route.span_id,
        "redis.reserve is a child of the route span"
    );
    assert!(
        route.service.contains("seckill-gateway"),
        "service name: {}",
        route.service
    );
    setup.stop().await;
    Ok(())
}

/// An invalid `traceparent` (all-zero trace id) is ignored: the request starts a new trace.
#[tokio::test]
async fn an_invalid_traceparent_starts_a_new_trace() -> anyhow::Result<()> {
    const PARENT_ID: &str = "00f067aa0ba902b7";
    let traceparent = format!("00-{}-{PARENT_ID}-01", "0".repeat(32));
    let mut setup = Setup::start().await?;
    let reply = setup
        .seckill(&[("traceparent", traceparent.as_str())])
        .await?;
    assert_eq!(reply.status(), 200, "{}", reply.text().await?);

    let (route, redis_span) = setup.route_and_redis_spans().await?;
    assert!(route.trace_id.iter().any(|b| *b != 0), "a real trace id");
    assert!(
        route.parent_span_id.iter().all(|b| *b == 0),
        "the route span is a root: {}",
        hex(&route.parent_span_id)
    );
    assert_eq!(redis_span.trace_id, route.trace_id, "one trace");
    setup.stop().await;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
