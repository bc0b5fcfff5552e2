//! Metrics plumbing shared by every process: the process' own CPU, memory and
//! file-descriptor metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...)
//! in a registry without the `seckill_<kind>_` prefix, so dashboards query every process the
//! same way; and [`serve`], the `/metrics` + `/health` endpoint of a process that serves no
//! other HTTP (the worker), on the warp stack the gateway already uses.

use prometheus::{process_collector::ProcessCollector, Encoder, Registry, TextEncoder};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::http::{header, StatusCode};
use warp::Filter;

/// A registry holding only the collector of this process (read from /proc at scrape time).
pub fn process_registry() -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    registry.register(Box::new(ProcessCollector::for_self()))?;
    Ok(registry)
}

/// A process's `/metrics` page: its own registry followed by the process registry, in the
/// Prometheus text format.
pub fn render(own: &Registry, process: &Registry) -> String {
    let mut families = own.gather();
    families.extend(process.gather());
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
        tracing::warn!(error = %e, "failed to encode metrics");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// What a process's `/health` reports: `Ok(())` when healthy, else why not (503).
pub type HealthCheck = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// Serves `GET /metrics` (the text of `render`) and `GET /health` (200 `ok`, or 503 with the
/// reason from `health`) on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    health: HealthCheck,
    shutdown: CancellationToken,
) {
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(render(), header::CONTENT_TYPE, "text/plain; version=0.0.4")
    });
    let health = warp::path!("health")
        .and(warp::get())
        .and_then(move || health_reply(health.clone()));
    warp::serve(metrics.or(health).boxed())
        .incoming(listener)
        .graceful(async move { shutdown.cancelled().await })
        .run()
        .await;
}

async fn health_reply(
    check: HealthCheck,
) -> Result<warp::reply::WithStatus<String>, std::convert::Infallible> {
    Ok(match check().await {
        Ok(()) => warp::reply::with_status("ok\n".to_owned(), StatusCode::OK),
        Err(why) => warp::reply::with_status(
            format!("unhealthy: {why}\n"),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_cpu_and_memory() {
        let names: Vec<String> = process_registry()
            .expect("registry")
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(
            names.contains(&"process_cpu_seconds_total".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"process_resident_memory_bytes".to_owned()),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h = healthy.clone();
        let check: HealthCheck = Arc::new(move || {
            let ok = h.load(std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("mysql down".into())
                }
            })
        });
        let server = tokio::spawn(serve(
            listener,
            Arc::new(|| "up 1\n".to_owned()),
            check,
            stop.clone(),
        ));
        let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
        let m = get("/metrics").await.unwrap();
        assert_eq!(m.status(), 200);
        assert_eq!(m.text().await.unwrap(), "up 1\n");
        assert_eq!(get("/health").await.unwrap().status(), 200);
        healthy.store(false, std::sync::atomic::Ordering::Relaxed);
        let h = get("/health").await.unwrap();
        assert_eq!(h.status(), 503);
        assert!(h.text().await.unwrap().contains("mysql down"));
        assert_eq!(get("/nope").await.unwrap().status(), 404);
        stop.cancel();
        server.await.unwrap();
    }
}
