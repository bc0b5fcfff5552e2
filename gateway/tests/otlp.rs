//! OTLP export end to end: the real `seckill-gateway` binary with `telemetry.otlp_endpoint`
//! pointing at a minimal in-test OTLP/gRPC receiver (a collector stands outside our system,
//! so a stub of it is fair). One `POST /api/v1/seckill` must produce a server span named for
//! the route and the `redis.reserve` span, in one trace, from service `seckill-gateway`; with
//! a W3C `traceparent` header, that trace is the caller's.

use seckill_gateway::auth::{Jwt, Role};
use seckill_testkit::ports::{retry_on_free_port, wait_for_listener};
use seckill_testkit::{free_port, ChildGuard, OtlpReceiver, RedisServer, SeenSpan};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "otlp-test-jwt-secret-0123456789abcdefgh";

/// The in-test receiver, the gateway exporting to it and the Redis behind the gateway.
struct Setup {
    receiver: OtlpReceiver,
    gateway: ChildGuard,
    port: u16,
    log_path: tempfile::NamedTempFile,
    client: reqwest::Client,
    token: String,
    _redis: RedisServer,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        let receiver = OtlpReceiver::start();
        let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
        redis.cli(&["SECKILL.CREATE", "77", "STOCK", "10"])?;
        let log_path = tempfile::NamedTempFile::new()?;
        // On a free port, started again on another when it was taken before the gateway
        // bound it; up once the gateway itself listens.
        let (log, redis_url, endpoint) = (log_path.reopen()?, redis.url(), receiver.endpoint());
        let (port, gateway) = tokio::task::spawn_blocking(move || {
            retry_on_free_port("seckill-gateway", |port| {
                let child = Command::new(env!("CARGO_BIN_EXE_seckill-gateway"))
                    // The working directory is gateway/: no configs/config.yaml, so
                    // built-in defaults.
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--redis-url")
                    .arg(&redis_url)
                    .arg("--mysql-url")
                    .arg(format!("mysql://root@127.0.0.1:{}/none", free_port()))
                    .env("SECKILL_AUTH__JWT_SECRET", SECRET)
                    .env("SECKILL_TELEMETRY__OTLP_ENDPOINT", &endpoint)
                    .env("OTEL_BSP_SCHEDULE_DELAY", "200")
                    .env("RUST_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log.try_clone()?)
                    .spawn()?;
                let mut gateway = ChildGuard::new(child);
                wait_for_listener(&mut gateway, port, Duration::from_secs(30))?;
                Ok((port, gateway))
            })
        })
        .await??;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let token = Jwt::new(SECRET.as_bytes(), 3600)
            .issue("4242", Role::User, chrono::Utc::now().timestamp() as u64)?
            .0;
        Ok(Self {
            receiver,
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
        self.receiver
            .wait_for(Duration::from_secs(20), |seen| {
                let route = seen.iter().find(|s| s.name == "POST /api/v1/seckill");
                let redis = seen.iter().find(|s| s.name == "redis.reserve");
                route.cloned().zip(redis.cloned())
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", self.logs()))
    }

    async fn stop(mut self) {
        self.gateway.kill();
        self.receiver.stop().await;
    }
}

#[tokio::test]
async fn a_seckill_request_is_one_trace_from_route_to_redis() -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    let reply = setup.seckill(&[]).await?;
    assert_eq!(reply.status(), 200, "{}", reply.text().await?);

    let (route, redis_span) = setup.route_and_redis_spans().await?;
    assert!(
        route.is_trace_root(),
        "without traceparent the route span starts the trace: {route:?}"
    );
    redis_span.assert_child_of(&route, "seckill-gateway");
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
    redis_span.assert_child_of(&route, "seckill-gateway");
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
    assert!(route.is_trace_root(), "a new trace: {route:?}");
    redis_span.assert_child_of(&route, "seckill-gateway");
    setup.stop().await;
    Ok(())
}

/// Every line logged for a request carries the request's id (the caller's `x-request-id`, or
/// one made up and echoed) and its client, from the request span: a refused body (400) is
/// always logged, and the line names both.
#[tokio::test]
async fn logged_requests_carry_their_id_and_client() -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    setup.seckill(&[]).await?; // the gateway is up
    let url = format!("http://127.0.0.1:{}/api/v1/seckill", setup.port);
    let mut ids = Vec::new();
    for given in [Some("log-me-42"), None] {
        let mut req = setup
            .client
            .post(&url)
            .bearer_auth(&setup.token)
            .header("content-type", "application/json")
            .body("{not json");
        if let Some(id) = given {
            req = req.header("x-request-id", id);
        }
        let reply = req.send().await?;
        assert_eq!(reply.status(), 400);
        let echoed = reply
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(id) = given {
            assert_eq!(echoed, id, "the caller's id is echoed");
        }
        assert!(!echoed.is_empty(), "every reply carries an id");
        ids.push(echoed);
    }
    for id in &ids {
        let started = Instant::now();
        let line = loop {
            let logs = setup.logs();
            let found = logs
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|l| l["span"]["request_id"] == id.as_str() && l["fields"]["status"] == 400);
            match found {
                Some(line) => break line,
                None if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                None => anyhow::bail!("no log line for request {id} with status 400 in\n{logs}"),
            }
        };
        assert_eq!(line["span"]["client"], "127.0.0.1", "{line}");
        assert_eq!(line["span"]["path"], "/api/v1/seckill", "{line}");
    }
    setup.stop().await;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
