//! The seckill HTTP gateway: warp routes in front of the Redis module (the hot path) and MySQL
//! (accounts, activities, orders).
//!
//! `POST /api/v1/seckill` verifies a JWT, validates the body and sends exactly one
//! `SECKILL.RESERVE` over a multiplexed Redis connection; it never touches MySQL. Everything
//! else (register, login, activities, result polling, orders, admin) reads or writes MySQL and,
//! where live stock matters, asks Redis with `SECKILL.STATUS`.
//!
//! # Layout
//! - [`config`]: settings (YAML file, `SECKILL_*` environment, command-line flags) and checks.
//! - [`startup`]: [`startup::Application::build`] binds, [`startup::Application::run_until_stopped`]
//!   serves until SIGINT/SIGTERM and drains in-flight requests.
//! - `server`: the listener (hyper around warp's filter): connection cap, header-read and idle
//!   timeouts, the client address.
//! - `hot_route`: `POST /api/v1/seckill` served by the listener without warp's filter tree,
//!   with the same checks and replies.
//! - [`client_ip`]: who the client is (trusted proxies, `X-Forwarded-For`, IPv6 /64 keys).
//! - [`routes`]: the route table (shared by metrics labels and the OpenAPI check) and one
//!   function per route returning a warp `Filter`.
//! - `handlers/`: one module per resource (system, accounts, activities, seckill, orders),
//!   one async function per endpoint; every handler goes through one wrapper that applies
//!   the request deadline and builds the envelope.
//! - `models`: request bodies parsed into domain values, response bodies.
//! - `error`: `ApiError` (HTTP status + machine code), the mapping of the storage layers'
//!   errors to HTTP, and the single `recover` handler for warp's own rejections.
//! - `envelope`: the `{"code","message","data"[,"error"]}` reply, built only here.
//! - [`auth`]: the caller of a request (bearer token); tokens and hashes are
//!   `seckill_core::auth`.
//! - `store`: Redis through `seckill_client` (deadlines, the hot path's coalesced pipeline),
//!   with a span and a latency metric around each call. SQL is `seckill_db`'s, run under the
//!   statement deadline.
//! - `sold_out`: the per-activity local sold-out flag that expires quickly (no undersell).
//! - `rate_limit`: per-user and per-IP GCRA limits (governor), and the stricter ones of the
//!   password routes (per client, per username).
//! - `hashing`: password hashing on a bounded pool (quick 503 when full).
//! - `cache`: the short-lived single-flight caches of the public reads.
//! - `admission`: the admission policy in force, its key and the seen-set (tokens and
//!   challenges themselves are `seckill_core::admission`).
//! - `openapi`: the OpenAPI document, generated from the routes and the types.
//! - `metrics`: Prometheus registry and the metrics the gateway exports.
//! - `access_log`: which requests get a line (problems always, the rest sampled) and the
//!   periodic `access summary`.
//! - `runtime`: runtime settings from etcd (rate limits, sold-out flag lifetime, admission).
//! - [`telemetry`]: JSON logs, and OTLP span export when `telemetry.otlp_endpoint` is set.
//!
//! # etcd
//! With `etcd.endpoints` set, a running gateway
//! - registers as `/seckill/members/gateway/<host>-<pid>` (JSON: kind, id, addr = the listen
//!   address, pid, version, started_at) under a lease of `etcd.member_ttl_secs` kept alive in
//!   the background; the key is deleted on graceful shutdown and expires with the lease when
//!   the process dies (`seckill members` lists it);
//! - follows the keys under `/seckill/config/` that `runtime` lists (rate limits, the
//!   sold-out flag, access-log sampling, admission: required, difficulty, window, and both
//!   per activity), applied without restart and logged (plain text values, e.g.
//!   `etcdctl put /seckill/config/rate_limit.per_user_burst 5`).
//!   A deleted key returns to the file's value; an invalid value is ignored with a warning.
//!
//! etcd is never on the request path: startup does not wait for it, and while it is down
//! the gateway keeps selling with the last settings it saw, retrying in the background.
//!
//! # Tracing
//! With `telemetry.otlp_endpoint` set (OTLP/gRPC, e.g. Jaeger's `:4317`), every request is a
//! trace: a server span named `<METHOD> <route>` (e.g. `POST /api/v1/seckill`) with the Redis
//! command spans (`redis.reserve`, ...) inside. Unset (the default) no exporter exists.

mod access_log;
mod admission;
pub mod auth;
mod cache;
pub mod client_ip;
pub mod config;
mod envelope;
mod error;
mod handlers;
mod hashing;
mod hot_route;
mod metrics;
mod models;
mod openapi;
mod rate_limit;
pub mod routes;
mod runtime;
mod server;
mod sold_out;
pub mod startup;
pub mod state;
pub mod static_files;
mod store;
pub mod telemetry;

/// The OpenAPI document the gateway serves for these settings (the same text as
/// `/api/v1/openapi.json`).
pub fn openapi_json(settings: &config::Settings) -> anyhow::Result<String> {
    openapi::document(settings)
        .map_err(|e| anyhow::anyhow!(e))?
        .to_pretty_json()
        .map_err(anyhow::Error::from)
}
