//! `GET /health`, `GET /metrics`, `GET /api/v1/openapi.json`.

use crate::envelope;
use crate::state::State;
use chrono::{SecondsFormat, Utc};
use serde_json::json;
use std::convert::Infallible;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

pub(crate) async fn health(s: State) -> Result<Response, Infallible> {
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(match s.store.ping().await {
        Ok(()) => envelope::ok(
            StatusCode::OK,
            json!({"status": "healthy", "timestamp": ts}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: redis unreachable");
            envelope::refusal_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "redis is unreachable",
                json!({"status": "unhealthy", "timestamp": ts, "redis": "down"}),
            )
        }
    })
}

pub(crate) async fn metrics(s: State) -> Result<Response, Infallible> {
    let mut res = Response::new(s.metrics.render().into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(res)
}

pub(crate) async fn openapi() -> Result<Response, Infallible> {
    let mut res = Response::new(crate::OPENAPI_JSON.into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
