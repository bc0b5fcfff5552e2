//! The seckill Redis module: `SECKILL.CREATE`, `SECKILL.RESERVE`, `SECKILL.RELEASE`,
//! `SECKILL.STATUS`, `SECKILL.TRIM`, `SECKILL.HELD` and `SECKILL.BUYERS`, plus the internal
//! `SECKILL.APPLY` and `SECKILL.HOLD`.
//!
//! One `SECKILL.RESERVE` checks the window, the per-user limit and the stock, decrements the
//! stock, records the buyer and appends the reservation to the activity's stream, all inside
//! one command, so nothing can happen between the decrement and the queue.
//!
//! # Layout
//! - `commands/`: one file per command, each with `parse` (arguments to a typed request) and
//!   `apply` (the request against the keyspace).
//! - [`store`]: typed access to an activity's keys through the low-level key API, and the
//!   replication of effects.
//! - [`reply`]: every error reply is built here.
//! - [`docs`]: `COMMAND DOCS` / `COMMAND INFO` metadata (summary, arity, key specs, arguments).
//!
//! The decision itself (window, limit, stock) is `seckill_core::decide_reserve`, plain Rust.
//!
//! # Replication and persistence
//! Commands never replicate themselves: the clock is read once on the primary, and what
//! changed is propagated as deterministic effects (`SET`/`HSET`/`DEL` of what CREATE and
//! RELEASE wrote; `SECKILL.APPLY` with the stream id and counters for RESERVE), so a replica,
//! an AOF replay or an RDB reload done after the window closed ends in the same state, with
//! the same stream entry ids. `SECKILL.TRIM` reads no clock and is replicated verbatim.
//! `SECKILL.APPLY` is accepted only from the replication link or while an AOF loads: for a
//! client it would be a way around every check; so is the internal `SECKILL.HOLD` (the buyer
//! marks a RELEASE changes). The record, release markers and stream are plain strings,
//! hashes and streams; the buyers are the module's own type (`seckbuyrs`, see [`buyers`]),
//! saved in RDB files by the module, so loading an RDB or AOF needs the module.

use buyers::BUYERS_TYPE;
use redis_module::{redis_module, Context, RedisString, Status};

pub mod buyers;
pub mod commands;
pub mod docs;
pub mod reply;
pub mod store;

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    store::Names::init();
    if let Err(e) = docs::register(ctx) {
        // Docs are a convenience: a server that refuses them still gets working commands.
        ctx.log_warning(&format!("seckill: command docs not registered: {e}"));
    }
    Status::Ok
}

redis_module! {
    name: "seckill",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [BUYERS_TYPE],
    init: init,
    commands: [
        // getkeys-api: the KEYS clause's keys are reported to Redis (see commands::report_keys).
        ["seckill.create", commands::create::run, "write deny-oom getkeys-api", 1, 1, 1, ""],
        ["seckill.reserve", commands::reserve::run, "write deny-oom fast getkeys-api", 1, 1, 1, ""],
        ["seckill.release", commands::release::run, "write deny-oom getkeys-api", 1, 1, 1, ""],
        ["seckill.apply", commands::reserve::apply, "write deny-oom fast", 1, 1, 1, ""],
        ["seckill.status", commands::status::run, "readonly fast getkeys-api", 1, 1, 1, ""],
        ["seckill.trim", commands::trim::run, "write deny-oom getkeys-api", 1, 1, 1, ""],
        ["seckill.held", commands::buyers::held, "readonly fast getkeys-api", 1, 1, 1, ""],
        ["seckill.buyers", commands::buyers::list, "readonly getkeys-api", 1, 1, 1, ""],
        // Takes the buyers key itself (it is an effect, never routed by a cluster client).
        ["seckill.hold", commands::buyers::hold, "write deny-oom", 1, 1, 1, ""],
    ],
}
