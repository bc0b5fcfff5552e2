//! OTLP export end to end: the real `seckill-gateway` binary with `telemetry.otlp_endpoint`
//! pointing at a minimal in-test OTLP/gRPC receiver (a collector stands outside our system,
//! so a stub of it is fair). One `POST /api/v1/seckill` must produce a server span named for
//! the route and the `redis.reserve` span, in one trace, from service `seckill-gateway`.

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

/// (service name, span name, trace id, parent span id).
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>, Vec<u8>, Vec<u8>)>>>;

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
                    seen.push((
                        service.clone(),
                        s.name,
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                    ));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test]
async fn a_seckill_request_is_one_trace_from_route_to_redis() -> anyhow::Result<()> {
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
    let mut gateway = ChildGuard::new(child);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let token = Jwt::new(SECRET.as_bytes(), 3600)
        .issue("4242", Role::User, chrono::Utc::now().timestamp() as u64)?
        .0;
    let started = Instant::now();
    let reply = loop {
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/v1/seckill"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"activity_id": "77", "product_id": "1", "quantity": 1}))
            .send()
            .await;
        match r {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(30) && gateway.is_running() => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => {
                let logs = std::fs::read_to_string(log_path.path()).unwrap_or_default();
                anyhow::bail!("gateway never answered: {e}\n{logs}");
            }
        }
    };
    assert_eq!(reply.status(), 200, "{}", reply.text().await?);

    // Spans arrive with the next batch (200 ms here).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (route, redis_span) = loop {
        let found = {
            let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let route = seen.iter().find(|s| s.1 == "POST /api/v1/seckill").cloned();
            let redis = seen.iter().find(|s| s.1 == "redis.reserve").cloned();
            route.zip(redis)
        };
        if let Some(f) = found {
            break f;
        }
        if Instant::now() > deadline {
            let names: Vec<String> = seen
                .lock()
                .map(|s| s.iter().map(|x| x.1.clone()).collect())
                .unwrap_or_default();
            let logs = std::fs::read_to_string(log_path.path()).unwrap_or_default();
            anyhow::bail!("spans not received; got {names:?}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        route.2, redis_span.2,
        "route and redis spans share one trace id"
    );
    assert!(route.2.iter().any(|b| *b != 0), "a real trace id");
    assert_eq!(
        redis_span.4, route.3,
        "redis.reserve is a child of the route span"
    );
    assert!(
        route.0.contains("seckill-gateway"),
        "service name: {}",
        route.0
    );

    gateway.kill();
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
