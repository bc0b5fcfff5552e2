//! One file per command: `parse` turns arguments into a typed request, `apply` runs it.

pub mod create;
pub mod release;
pub mod reserve;
pub mod status;
pub mod trim;

use crate::reply;
use redis_module::{RedisError, RedisString};
use seckill_core::ActivityId;

pub(crate) fn activity_arg(raw: &RedisString) -> Result<ActivityId, RedisError> {
    ActivityId::parse(raw.as_slice()).map_err(reply::arg)
}

pub(crate) fn now_ms() -> u64 {
    // Safe: RedisModule_Milliseconds is set once the module is loaded and takes no arguments.
    let ms = unsafe { redis_module::raw::RedisModule_Milliseconds.map_or(0, |f| f()) };
    u64::try_from(ms).unwrap_or(0)
}
