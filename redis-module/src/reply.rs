//! Error replies, built in one place so every prefix stays machine-readable, and the hot
//! path's success reply.
//!
//! Refusals start with their code (`-SOLDOUT ...`); argument errors with `ERR`; a key of the
//! wrong type with `WRONGTYPE`.

use redis_module::{raw, Context, RedisError, RedisString};
use seckill_core::Refusal;
use std::fmt::Display;

pub fn refusal(r: Refusal, detail: impl Display) -> RedisError {
    RedisError::String(format!("{} {detail}", r.code()))
}

pub fn arg(detail: impl Display) -> RedisError {
    RedisError::String(format!("ERR {detail}"))
}

pub fn wrong_type(key: &str) -> RedisError {
    RedisError::String(format!(
        "WRONGTYPE key '{key}' holds a value that is not a seckill activity's"
    ))
}

/// An activity that exists and whose window has not ended cannot be overwritten.
pub fn exists(activity: impl Display) -> RedisError {
    RedisError::String(format!(
        "EXISTS activity '{activity}' exists and has not ended; it cannot be overwritten"
    ))
}

pub fn internal(detail: impl Display) -> RedisError {
    RedisError::String(format!("ERR internal: {detail}"))
}

/// A command that only the replication link and AOF loading may run (SPEC invariant 8).
pub fn internal_only(command: &str) -> RedisError {
    RedisError::String(format!(
        "ERR {command} is internal: it is only accepted from the replication link or while loading the AOF"
    ))
}

/// A stream id argument that is not a complete `<ms>-<seq>`.
pub fn bad_id(what: &str, raw: &[u8]) -> RedisError {
    arg(format_args!(
        "{what} must look like <ms>-<seq>, got '{}'",
        String::from_utf8_lossy(raw)
            .chars()
            .take(40)
            .collect::<String>()
    ))
}

/// Replies `[id, count]` (RESERVE's success) through the raw reply API.
pub fn id_and_count(ctx: &Context, id: &RedisString, count: u64) {
    let ctx = ctx.get_raw();
    raw::reply_with_array(ctx, 2);
    raw::reply_with_string(ctx, id.inner);
    raw::reply_with_long_long(ctx, count as i64);
}
