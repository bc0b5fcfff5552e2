//! End-to-end tests: a real gateway on a loopback port, a private redis-server with the module,
//! a private MariaDB (one per test binary, a fresh database per test) and, where orders must
//! exist, the real order worker in-process. Requests go over real HTTP.
//!
//! Run `cargo build -p seckill-module` first (the harness loads the built module).

mod admin;
mod bad_input;
mod health_auth;
mod helpers;
mod hot_route;
mod memory;
mod openapi;
mod orders;
mod ready;
mod seckill;
