//! `POST /api/v1/seckill` served by the listener itself, not through warp's filter tree.
//!
//! The sale is this one route, tens of thousands of times a second. Through warp it also paid
//! for the request-id, client-limit, `recover`, `Allow` and access-log wrappers, the `or` chain
//! and their boxed futures: ~8% of the gateway's CPU under the shipped benchmark
//! (docs/benchmarks.md, "Where the time goes"), work that says nothing about a reservation.
//! Here the same checks run in the same order, with the same pieces (`routes::authorize`,
//! `routes::body_read_within`, `routes::account`, the handler itself), and give the same
//! replies; `tests/api/hot_route.rs` serves one set of requests both ways and compares them.
//!
//! Order, as in `routes`: the per-client limit, the bearer token and the per-user limit, the
//! Content-Length limit, the body under the request deadline, then the handler.

use crate::error::{self, ApiError};
use crate::handlers;
use crate::routes;
use crate::state::State;
use http_body_util::BodyExt as _;
use std::net::IpAddr;
use std::time::Instant;
use warp::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use warp::http::{HeaderValue, Method, Request};
use warp::reply::Response;

/// The route served here.
pub(crate) const PATH: &str = "/api/v1/seckill";

/// Its metrics label in `routes::ROUTES` (a test keeps the two equal).
const LABEL: &str = "seckill";

/// Whether the listener serves `req` here rather than through warp.
pub(crate) fn is_hot<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST && req.uri().path() == PATH
}

/// Serves one reservation request from `ip` whose id is `id`: the reply, with `x-request-id`,
/// after the request's metrics and access log are accounted.
pub(crate) async fn serve<B>(state: State, ip: IpAddr, id: HeaderValue, req: Request<B>) -> Response
where
    B: hyper::body::Body,
{
    let started = Instant::now();
    let mut res = match reply(&state, ip, req).await {
        Ok(res) => res,
        Err(refused) => refused,
    };
    res.headers_mut().insert("x-request-id", id);
    routes::account(
        &state,
        &Method::POST,
        PATH,
        LABEL,
        res.status(),
        started.elapsed(),
    );
    res
}

/// The handler's reply, or the refusal of the checks before it.
async fn reply<B>(state: &State, ip: IpAddr, req: Request<B>) -> Result<Response, Response>
where
    B: hyper::body::Body,
{
    if !state.limits.allow_ip(ip) {
        return Err(ApiError::RateLimited.into_response());
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = routes::authorize(state, header).map_err(ApiError::into_response)?;
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(error::length_required)?;
    if length > state.settings.gateway.body_limit_bytes {
        return Err(error::body_too_large());
    }
    let read = async { req.into_body().collect().await.map(|b| b.to_bytes()) };
    let body = routes::body_read_within(state.settings.request_timeout(), read)
        .await
        .map_err(ApiError::into_response)?;
    let Ok(res) = handlers::seckill::reserve(caller, body, state.clone()).await;
    Ok(res)
}

#[cfg(test)]
mod tests {
    // Equivalence with the warp route is tested end to end in `tests/api/hot_route.rs`,
    // against a gateway with Redis and MySQL behind it; the pure part is only this.
    use super::*;

    #[test]
    fn only_the_exact_route_and_method_are_hot() {
        let req = |m: Method, p: &str| Request::builder().method(m).uri(p).body(()).unwrap();
        assert!(is_hot(&req(Method::POST, "/api/v1/seckill")));
        assert!(is_hot(&req(Method::POST, "/api/v1/seckill?x=1")));
        assert!(!is_hot(&req(Method::GET, "/api/v1/seckill")));
        assert!(!is_hot(&req(Method::POST, "/api/v1/seckill/")));
        assert!(!is_hot(&req(Method::POST, "/api/v1/seckill/admission")));
        assert!(!is_hot(&req(Method::POST, "/api/v1/seckillx")));
    }

    #[test]
    fn the_label_is_the_route_tables() {
        assert_eq!(routes::route_label("POST", PATH), LABEL);
    }
}
