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
//! - [`routes`]: the route table (shared by metrics labels and the OpenAPI check) and one
//!   function per route returning a warp `Filter`.
//! - [`handlers`]: one async function per endpoint; they return replies, never rejections.
//! - [`models`]: request bodies parsed into domain values (`TryFrom`), response bodies.
//! - [`error`]: [`error::ApiError`] (HTTP status + machine code) and the single
//!   `recover` handler for warp's own rejections.
//! - [`envelope`]: the `{"code","message","data"[,"error"]}` reply, built only here.
//! - [`auth`]: JWT issue/verify (HS256) and argon2 password hashing.
//! - [`store`]: the Redis commands (`SECKILL.*`), each with a timeout, a span and a latency
//!   metric; module refusals become [`seckill_core::Refusal`].
//! - [`db`]: the SQL the gateway runs.
//! - [`release`]: cancel = `pending -> cancelled`, `SECKILL.RELEASE`, `released_at`; shared with
//!   the worker's expiry sweeper.
//! - [`sold_out`]: the per-activity local sold-out flag that expires quickly (no undersell).
//! - [`rate_limit`]: per-user and per-IP GCRA limits (governor).
//! - [`metrics`]: Prometheus registry and the metrics the gateway exports.
//! - [`telemetry`]: JSON logs.

pub mod auth;
pub mod config;
pub mod db;
pub mod envelope;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod models;
pub mod rate_limit;
pub mod release;
pub mod routes;
pub mod sold_out;
pub mod startup;
pub mod state;
pub mod static_files;
pub mod store;
pub mod telemetry;

/// The OpenAPI 3 document served at `/api/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");
