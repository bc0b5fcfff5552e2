//! Pure domain logic of seckill, shared by the Redis module, the gateway and the worker.
//!
//! Nothing in this crate talks to Redis, MySQL or HTTP, so every rule of the sale can be
//! tested alone with tables and property tests.
//!
//! # Layout
//! - [`ids`]: validated identifiers (activity, user) that are safe to embed in key names.
//! - [`keys`]: the Redis key layout; every key of an activity shares its hash tag.
//! - [`decision`]: the reservation decision (window, per-user limit, stock) and activity state.
//! - [`limits`]: bounds on numbers accepted from outside, and their parsing.
//! - [`entry`]: the reservation entry appended to the activity's stream, encoded and decoded.
//! - [`record`]: the fixed-layout activity record the module keeps in a Redis string.
//! - [`refusal`]: machine-readable refusal codes shared by the module and the gateway.
//! - [`account`]: what a username and a password may be (registration and the CLI alike).
//! - [`lag`]: a consumer group's lag from `XINFO` figures, robust to Redis 7.0's nil `lag`.
//! - [`audit`]: Redis's view of an activity against MySQL's orders: the drift report.
//! - `auth` (feature `auth`): JWT claims, signing and verification, argon2 password hashes.
//! - `admission` (feature `admission`): signed admission tickets and proof-of-work
//!   challenges, and the random order of a sale's opening moment.
//! - [`stream_id`]: stream/reservation ids, and where an id stands against a sale's boundary
//!   and trim point.

pub mod account;
#[cfg(feature = "admission")]
pub mod admission;
pub mod audit;
#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "buyers")]
pub mod buyers;
pub mod decision;
pub mod entry;
pub mod ids;
pub mod keys;
pub mod lag;
pub mod limits;
pub mod record;
pub mod refusal;
pub mod stream_id;

pub use account::{AccountError, Username};
pub use decision::{decide_reserve, ActivityState, Grant, Sale};
pub use entry::{EntryError, ReservationEntry};
pub use ids::{ActivityId, IdError, ProductId, UserId};
pub use refusal::Refusal;
pub use stream_id::{ReleaseScope, StreamId};
