//! The route table and one filter per route. Path filters come first, then the method, then
//! auth, so a wrong path is a 404 and a wrong method a 405 (with `Allow`), never an auth
//! failure.
//!
//! [`ROUTES`] is the single list of (method, path template): it names the metrics' `route`
//! label, the OpenAPI document is generated from it (`crate::openapi`), and the `Allow`
//! header of a 405 is read from it.

use crate::auth::{bearer_token, Caller};
use crate::client_ip::ClientAddr;
use crate::error::{handle_rejection, ApiError};
use crate::handlers;
use crate::state::State;
use bytes::{Buf, Bytes, BytesMut};
use futures::TryStreamExt;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    /// OpenAPI-style template: `{id}` matches one path segment.
    pub path: &'static str,
    /// Metrics label.
    pub label: &'static str,
    /// Name of the request's trace span (`POST /api/v1/seckill`), built at compile time so
    /// naming the span costs nothing per request.
    pub span_name: &'static str,
}

macro_rules! r {
    ($method:literal, $path:literal, $label:literal) => {
        RouteSpec {
            method: $method,
            path: $path,
            label: $label,
            span_name: concat!($method, " ", $path),
        }
    };
}

/// The hot route first: requests are matched against this table in order (metrics label and
/// span name, per request).
pub const ROUTES: &[RouteSpec] = &[
    r!("POST", "/api/v1/seckill", "seckill"),
    r!("POST", "/api/v1/seckill/admission", "seckill_admission"),
    r!("POST", "/api/v1/seckill/challenge", "seckill_challenge"),
    r!("GET", "/health", "health"),
    r!("GET", "/ready", "ready"),
    r!("GET", "/metrics", "metrics"),
    r!("GET", "/api/v1/openapi.json", "openapi"),
    r!("POST", "/api/v1/auth/register", "register"),
    r!("POST", "/api/v1/auth/login", "login"),
    r!("GET", "/api/v1/activities", "activities"),
    r!("GET", "/api/v1/activities/{id}", "activity"),
    r!("GET", "/api/v1/seckill/result", "seckill_result"),
    r!("GET", "/api/v1/orders", "orders"),
    r!("POST", "/api/v1/orders/{id}/pay", "order_pay"),
    r!("POST", "/api/v1/orders/{id}/cancel", "order_cancel"),
    r!("POST", "/api/v1/admin/activities", "admin_create_activity"),
];

/// Whether `path` matches the template (`{x}` matches one non-empty segment).
pub(crate) fn template_matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                let is_param = ts.starts_with('{') && ts.ends_with('}');
                if !(ts == ps || (is_param && !ps.is_empty())) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The route a request matches, if any.
pub(crate) fn route_of(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES
        .iter()
        .find(|r| r.method == method && template_matches(r.path, path))
}

/// The storefront's pages (served by `static_files`, not part of the API table):
/// (label, span name) of `GET|HEAD /`, `GET|HEAD /docs` and `GET|HEAD /static/<name>`.
fn storefront_route(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    if method != "GET" && method != "HEAD" {
        return None;
    }
    if path == "/" {
        return Some(("storefront_index", "GET /"));
    }
    if path == "/docs" {
        return Some(("api_docs", "GET /docs"));
    }
    path.strip_prefix("/static/")
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .map(|_| ("storefront_asset", "GET /static/{name}"))
}

/// The metrics label of a request: its route's label, or `unmatched` (bounded cardinality).
pub(crate) fn route_label(method: &str, path: &str) -> &'static str {
    route_of(method, path)
        .map(|r| r.label)
        .or_else(|| storefront_route(method, path).map(|(label, _)| label))
        .unwrap_or("unmatched")
}

/// The trace span name of a request: `<METHOD> <route template>`, or `unmatched`.
pub(crate) fn span_name(method: &str, path: &str) -> &'static str {
    route_of(method, path)
        .map(|r| r.span_name)
        .or_else(|| storefront_route(method, path).map(|(_, span)| span))
        .unwrap_or("unmatched")
}

/// The methods `path` is served with, for `Allow` (empty: no such path).
pub(crate) fn allowed_methods(path: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|r| template_matches(r.path, path))
        .map(|r| r.method)
        .collect();
    if storefront_route("GET", path).is_some() {
        methods.extend(["GET", "HEAD"]);
    }
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// A 405 gets `Allow` (the methods of the path); a "405" for a path nobody serves is a 404.
fn with_allow(path: &FullPath, reply: Response) -> Response {
    if reply.status() != StatusCode::METHOD_NOT_ALLOWED {
        return reply;
    }
    let methods = allowed_methods(path.as_str());
    if methods.is_empty() {
        return ApiError::NotFound("no such route".into()).into_response();
    }
    let mut reply = reply;
    if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
        reply.headers_mut().insert(warp::http::header::ALLOW, v);
    }
    reply
}

/// Every route, with the per-IP limit in front, request ids, the single `recover`, metrics
/// and access logs. The request span around it all is the listener's (`crate::server`,
/// [`request_span`]).
pub fn all(state: State) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    // The sale's hot route first: every route before it is tried and rejected per request.
    let api = seckill(state.clone())
        .or(seckill_admission(state.clone()))
        .or(seckill_challenge(state.clone()))
        .or(health(state.clone()))
        .or(ready(state.clone()))
        .or(metrics(state.clone()))
        .or(openapi(state.clone()))
        .or(register(state.clone()))
        .or(login(state.clone()))
        .or(activities(state.clone()))
        .or(activity(state.clone()))
        .or(seckill_result(state.clone()))
        .or(orders(state.clone()))
        .or(order_pay(state.clone()))
        .or(order_cancel(state.clone()))
        .or(admin_create_activity(state.clone()))
        .or(crate::static_files::routes())
        .map(Reply::into_response)
        // The routes' combined future is large; boxing it once keeps the layers below from
        // moving it around (memcpy showed in profiles).
        .boxed();
    let access = state.clone();
    request_id()
        .and(warp::path::full())
        .and(
            ip_limit(state.clone())
                .and(api)
                .recover(handle_rejection)
                .unify(),
        )
        .map(|id: HeaderValue, path: FullPath, reply: Response| {
            let mut res = with_allow(&path, reply);
            res.headers_mut().insert("x-request-id", id);
            res
        })
        .with(warp::log::custom(move |info| {
            let label = route_label(info.method().as_str(), info.path());
            account(
                &access,
                info.method(),
                info.path(),
                label,
                info.status(),
                info.elapsed(),
            );
        }))
}

/// A served request's metrics and, when [`crate::access_log`] says so, its access-log line:
/// the same for the warp routes and the hot route's own path (`crate::hot_route`).
pub(crate) fn account(
    state: &State,
    method: &Method,
    path: &str,
    label: &'static str,
    status: StatusCode,
    elapsed: std::time::Duration,
) {
    let m = &state.metrics;
    m.requests
        .with_label_values(&[label, status.as_str()])
        .inc();
    m.latency
        .with_label_values(&[label])
        .observe(elapsed.as_secs_f64());
    let status = status.as_u16();
    if let Some(why) = state.access_log.decide(label, status) {
        tracing::info!(
            target: "access",
            method = %method,
            path,
            route = label,
            status,
            elapsed_us = elapsed.as_micros() as u64,
            logged = ?why,
        );
    }
}

/// The request's id, put into its extensions by the listener with the request span
/// ([`request_span`]).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) HeaderValue);

/// The client's `x-request-id` when it is short and printable, else a new one.
pub(crate) fn request_id_of(headers: &HeaderMap) -> HeaderValue {
    headers
        .get("x-request-id")
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 64
                && b.iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&new_request_id())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        })
}

/// The span around one request, every field set here: a field recorded later makes the JSON
/// log layer parse the span's fields back and write them again (two such records per
/// request were ~5% of the gateway's CPU under load). `otel.name` names the exported span
/// after the route (OTLP only; logs keep `request`); `otel.kind` marks it as the server side
/// of the call. A caller's `traceparent` makes it a child of the caller's span.
pub(crate) fn request_span(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    id: &HeaderValue,
    client: IpAddr,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = span_name(method.as_str(), path),
        otel.kind = "server",
        method = method.as_str(),
        path,
        request_id = id.to_str().unwrap_or("invalid"),
        client = %client,
    );
    crate::telemetry::follow_remote_parent(&span, headers);
    span
}

/// The id the listener gave the request (see [`request_span`]), echoed in the reply.
fn request_id() -> impl Filter<Extract = (HeaderValue,), Error = Infallible> + Clone {
    warp::ext::get::<RequestId>()
        .map(|RequestId(id)| id)
        // Served without the listener (never in the binaries): an id all the same.
        .or(warp::any().map(|| request_id_of(&HeaderMap::new())))
        .unify()
}

/// `<random per process>-<counter>`: unique without a syscall per request.
fn new_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn with_state(state: State) -> impl Filter<Extract = (State,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Requests limited per client (`crate::client_ip`, resolved by the listener, which also
/// names it in the request span; an IPv6 client per /64).
fn ip_limit(state: State) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and_then(move |client: Option<ClientAddr>| {
            let state = state.clone();
            async move {
                let Some(client) = client else {
                    return Ok(());
                };
                if state.limits.allow_ip(client.ip) {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::RateLimited))
                }
            }
        })
        .untuple_one()
}

/// The stricter per-client limit of the routes that hash passwords; and, when the hashing
/// pool is full, the refusal it would give, before the body is even read.
fn auth_limit(state: State) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and_then(move |client: Option<ClientAddr>| {
            let state = state.clone();
            async move {
                match client {
                    Some(c) if !state.limits.allow_auth_ip(c.ip) => {
                        return Err(warp::reject::custom(ApiError::RateLimited))
                    }
                    _ => {}
                }
                if state.passwords.saturated() {
                    return Err(warp::reject::custom(ApiError::Overloaded(
                        "too many logins at once; try again in a moment".into(),
                    )));
                }
                Ok(())
            }
        })
        .untuple_one()
}

/// The bearer token's caller, rate-limited per user.
fn caller(state: State) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
        .and_then(move |header: Option<String>| {
            let state = state.clone();
            async move { authorize(&state, header.as_deref()).map_err(warp::reject::custom) }
        })
}

/// The caller of a request whose `Authorization` header is `header` (`None`: absent or not
/// text), rate-limited per user.
pub(crate) fn authorize(state: &State, header: Option<&str>) -> Result<Caller, ApiError> {
    let caller = bearer_token(header).and_then(|t| state.jwt.verify(t))?;
    if !state.limits.allow_user(&caller.user) {
        return Err(ApiError::RateLimited);
    }
    Ok(caller)
}

/// An admin caller: the token must say admin, and so must the database, asked on every
/// admin request (a demoted or deleted admin is refused at once, whatever their token says).
fn admin(state: State) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    caller(state.clone()).and_then(move |c: Caller| {
        let state = state.clone();
        async move {
            let refuse = |why: &str| warp::reject::custom(ApiError::Forbidden(why.into()));
            if !c.is_admin() {
                return Err(refuse("this endpoint needs the admin role"));
            }
            let Ok(id) = c.user.as_str().parse::<u64>() else {
                return Err(refuse("this endpoint needs the admin role"));
            };
            let role = seckill_db::error::timed(
                state.settings.mysql_timeout(),
                seckill_db::users::role_by_id(&state.db, id),
            )
            .await
            .map_err(|e| warp::reject::custom(ApiError::from(e)))?;
            if role.as_deref() == Some(crate::auth::Role::Admin.as_str()) {
                Ok(c)
            } else {
                Err(refuse("your account no longer has the admin role"))
            }
        }
    })
}

/// The raw body, refused past `gateway.body_limit_bytes` (by Content-Length, before reading),
/// and read under the request deadline (a body trickling in is cut off with 408).
fn body(state: &State) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    let deadline = state.settings.request_timeout();
    warp::body::content_length_limit(state.settings.gateway.body_limit_bytes)
        .and(warp::body::stream())
        .and_then(move |stream| read_body(stream, deadline))
}

async fn read_body<S, B>(stream: S, deadline: std::time::Duration) -> Result<Bytes, Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let read = stream.try_fold(BytesMut::new(), |mut acc, mut chunk| async move {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            acc.extend_from_slice(part);
            chunk.advance(n);
        }
        Ok(acc)
    });
    body_read_within(deadline, async { read.await.map(BytesMut::freeze) })
        .await
        .map_err(warp::reject::custom)
}

/// A body read (`read`) under the request deadline: a body that fails to arrive is a 400, one
/// still trickling in at the deadline a 408.
pub(crate) async fn body_read_within<E>(
    deadline: std::time::Duration,
    read: impl std::future::Future<Output = Result<Bytes, E>>,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(ApiError::InvalidArgument(
            "the request body could not be read".into(),
        )),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

fn health(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("health")
        .and(warp::get())
        .and(with_state(s))
        .and_then(handlers::system::health)
}

fn ready(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("ready")
        .and(warp::get())
        .and(with_state(s))
        .and_then(handlers::system::ready)
}

fn metrics(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_state(s))
        .and_then(handlers::system::metrics)
}

fn openapi(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .and(with_state(s))
        .and_then(handlers::system::openapi)
}

fn register(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "auth" / "register")
        .and(warp::post())
        .and(auth_limit(s.clone()))
        .and(body(&s))
        .and(with_state(s))
        .and_then(handlers::accounts::register)
}

fn login(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "auth" / "login")
        .and(warp::post())
        .and(auth_limit(s.clone()))
        .and(body(&s))
        .and(with_state(s))
        .and_then(handlers::accounts::login)
}

fn activities(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "activities")
        .and(warp::get())
        .and(with_state(s))
        .and_then(handlers::activities::list)
}

fn activity(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "activities" / String)
        .and(warp::get())
        .and(with_state(s))
        .and_then(handlers::activities::get)
}

fn seckill(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "seckill")
        .and(warp::post())
        .and(caller(s.clone()))
        .and(body(&s))
        .and(with_state(s))
        .and_then(handlers::seckill::reserve)
}

fn seckill_admission(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "seckill" / "admission")
        .and(warp::post())
        .and(caller(s.clone()))
        .and(body(&s))
        .and(with_state(s))
        .and_then(handlers::admission::admit)
}

fn seckill_challenge(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "seckill" / "challenge")
        .and(warp::post())
        .and(caller(s.clone()))
        .and(body(&s))
        .and(with_state(s))
        .and_then(handlers::admission::challenge)
}

fn seckill_result(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "seckill" / "result")
        .and(warp::get())
        .and(caller(s.clone()))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with_state(s))
        .and_then(handlers::seckill::result)
}

fn orders(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "orders")
        .and(warp::get())
        .and(caller(s.clone()))
        .and(with_state(s))
        .and_then(handlers::orders::list)
}

fn order_pay(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "orders" / String / "pay")
        .and(warp::post())
        .and(caller(s.clone()))
        .and(with_state(s))
        .and_then(handlers::orders::pay)
}

fn order_cancel(s: State) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "orders" / String / "cancel")
        .and(warp::post())
        .and(caller(s.clone()))
        .and(with_state(s))
        .and_then(handlers::orders::cancel)
}

fn admin_create_activity(
    s: State,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "admin" / "activities")
        .and(warp::post())
        .and(admin(s.clone()))
        .and(body(&s))
        .and(with_state(s))
        .and_then(handlers::activities::create)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_one_segment_per_param() {
        assert!(template_matches(
            "/api/v1/orders/{id}/pay",
            "/api/v1/orders/17/pay"
        ));
        assert!(!template_matches(
            "/api/v1/orders/{id}/pay",
            "/api/v1/orders//pay"
        ));
        assert!(!template_matches(
            "/api/v1/orders/{id}/pay",
            "/api/v1/orders/1/2/pay"
        ));
        assert!(template_matches("/health", "/health"));
        assert!(!template_matches("/health", "/health/x"));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(route_label("POST", "/api/v1/seckill"), "seckill");
        assert_eq!(route_label("GET", "/api/v1/activities/9"), "activity");
        assert_eq!(span_name("POST", "/api/v1/seckill"), "POST /api/v1/seckill");
        assert_eq!(
            span_name("GET", "/api/v1/activities/9"),
            "GET /api/v1/activities/{id}"
        );
        assert_eq!(span_name("GET", "/nope"), "unmatched");
        assert_eq!(
            route_label("POST", "/api/v1/orders/3/cancel"),
            "order_cancel"
        );
        assert_eq!(route_label("GET", "/api/v1/seckill"), "unmatched");
        assert_eq!(route_label("GET", "/random/8237"), "unmatched");
        assert_eq!(route_label("GET", "/"), "storefront_index");
        assert_eq!(route_label("HEAD", "/static/app.js"), "storefront_asset");
        assert_eq!(route_label("GET", "/static/a/b"), "unmatched");
        assert_eq!(route_label("POST", "/"), "unmatched");
        assert_eq!(span_name("GET", "/static/app.js"), "GET /static/{name}");
    }

    #[test]
    fn allow_lists_the_methods_of_a_path() {
        assert_eq!(allowed_methods("/api/v1/seckill"), vec!["POST"]);
        assert_eq!(allowed_methods("/health"), vec!["GET"]);
        assert_eq!(allowed_methods("/api/v1/orders/9/pay"), vec!["POST"]);
        assert_eq!(allowed_methods("/"), vec!["GET", "HEAD"]);
        assert_eq!(allowed_methods("/static/app.js"), vec!["GET", "HEAD"]);
        assert!(allowed_methods("/nope").is_empty());
    }

    #[test]
    fn request_ids_are_unique() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(HeaderValue::from_str(&a).is_ok());
    }
}
