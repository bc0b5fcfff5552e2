//! The gateway's edge protections, each against real servers (the gateway on a loopback
//! port, redis-server with the module, MariaDB, etcd where settings change live):
//!
//! - `listener`: slow-header clients are cut off and the sale goes on; connections over the
//!   cap are refused at once, not queued; a trickling body gets 408.
//! - `client_ip`: per-client buckets behind a trusted proxy, forged `X-Forwarded-For`
//!   ignored, one IPv6 /64 is one client (over `::1`).
//! - `auth_flood`: 2,000 concurrent wrong logins: bounded memory, quick 503s with
//!   `Retry-After`, and the sale's p99 stays low meanwhile.
//! - `admission`: reservations without a valid token change nothing; proof of work; the
//!   difficulty set live through etcd.
//! - `lottery`: 10,000 clicks in the opening window win in an order unrelated to arrival.
//! - `roles`: a demoted admin is refused at once; 405 carries `Allow`.
//! - `cache`: 600 anonymous reads of the activities cost one `SECKILL.STATUS` per activity.
//! - `openapi_doc`: the served document is well-formed OpenAPI 3 and declares the bounds.
//!
//! Run `cargo build -p seckill-module -p seckill-gateway` first (the harness loads the module;
//! `auth_flood` runs the gateway binary to measure its memory alone).

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod admission;
mod auth_flood;
mod cache;
mod client_ip;
mod listener;
mod lottery;
mod openapi_doc;
mod roles;
mod support;
