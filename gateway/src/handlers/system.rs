//! `GET /health`, `GET /metrics`, `GET /api/v1/openapi.json`.

use crate::envelope;
use crate::models::{HealthView, ReadyView};
use crate::state::State;
use chrono::{SecondsFormat, Utc};
use seckill_db::MySqlPool;
use std::convert::Infallible;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

pub(crate) async fn health(s: State) -> Result<Response, Infallible> {
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(match s.store.ping().await {
        Ok(()) => envelope::ok(
            StatusCode::OK,
            HealthView {
                status: "healthy",
                timestamp: ts,
                redis: None,
            },
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: redis unreachable");
            envelope::refusal_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "redis is unreachable",
                HealthView {
                    status: "unhealthy",
                    timestamp: ts,
                    redis: Some("down"),
                },
            )
        }
    })
}

/// Readiness: whether this gateway can serve the whole API now (Redis and MySQL both answer
/// within their deadlines). Load balancers route by it; `/health` stays the liveness check.
pub(crate) async fn ready(s: State) -> Result<Response, Infallible> {
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let (redis, mysql) = tokio::join!(
        s.store.ping(),
        mysql_ping(&s.db, s.settings.mysql_timeout())
    );
    let redis_ok = redis.is_ok();
    let mysql_ok = mysql.is_ok();
    let word = |ok: bool| if ok { "up" } else { "down" };
    let data = ReadyView {
        status: if redis_ok && mysql_ok {
            "ready"
        } else {
            "not-ready"
        },
        timestamp: ts,
        redis: word(redis_ok),
        mysql: word(mysql_ok),
    };
    Ok(if redis_ok && mysql_ok {
        envelope::ok(StatusCode::OK, data)
    } else {
        let down: Vec<&str> = [("redis", redis_ok), ("mysql", mysql_ok)]
            .into_iter()
            .filter_map(|(name, ok)| (!ok).then_some(name))
            .collect();
        tracing::warn!(?down, "readiness check failed");
        envelope::refusal_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            &format!("not ready: {} unreachable", down.join(" and ")),
            data,
        )
    })
}

async fn mysql_ping(
    db: &MySqlPool,
    deadline: std::time::Duration,
) -> Result<(), seckill_db::DbError> {
    seckill_db::error::timed(deadline, seckill_db::pool::ping(db)).await
}

pub(crate) async fn metrics(s: State) -> Result<Response, Infallible> {
    let mut res = Response::new(s.metrics.render().into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(res)
}

pub(crate) async fn openapi(s: State) -> Result<Response, Infallible> {
    let mut res = Response::new(s.openapi.clone().into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
