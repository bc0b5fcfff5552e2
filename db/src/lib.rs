//! The seckill database, for the gateway, the worker and the CLI alike: the pool, the one
//! migrator, and every SQL statement, each written once and owned by the module of its table.
//!
//! # Layout
//! - [`pool`]: the lazy pool and the embedded migrations (`migrations/`).
//! - [`error`]: [`DbError`], every failure classified once (duplicate, transient, rejected),
//!   and [`error::timed`] for statement deadlines.
//! - [`users`]: accounts (register, login, administrators, load-test users).
//! - [`activities`]: activities and products, and [`activities::create`] (rows + preheat).
//! - [`orders`]: the worker's batch insert, the API's reads, and the order state machine
//!   (pay, cancel, expire, release) with its invariants.
//! - [`audit`]: both sides of an activity gathered for `seckill_core::audit`.
//!
//! Functions take the pool (or a connection) and return [`DbError`]; deadlines are the
//! caller's (`error::timed`), since the gateway and the worker want different ones.

pub mod activities;
pub mod audit;
pub mod error;
pub mod orders;
pub mod pool;
pub mod users;

pub use error::DbError;
pub use sqlx::MySqlPool;
