//! `SECKILL.STATUS <activity>`: settings, counters and state of an activity, as a map
//! (field/value pairs under RESP2).

use super::{activity_arg, now_ms};
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::Refusal;

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let keys = ActivityKeys::new(ctx, &activity);
    let meta_key = Key::open(ctx, &keys.meta);
    let Some(meta) = store::read_meta(&meta_key)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{activity}' does not exist"),
        ));
    };
    let buyers = Key::open(ctx, &keys.buyers);
    buyers.expect(Kind::Hash)?;
    let s = meta.sale;
    let text = |v: &Option<RedisString>| {
        RedisValue::BulkString(v.as_ref().map(|v| v.to_string_lossy()).unwrap_or_default())
    };
    let int = |v: u64| RedisValue::Integer(v as i64);
    let pairs = vec![
        ("total", int(s.total)),
        ("remaining", int(s.remaining)),
        ("reserved", int(s.reserved())),
        ("reservations", int(meta.reservations)),
        ("buyers", int(buyers.len())),
        ("limit", int(s.limit)),
        ("start", int(s.start_ms)),
        ("end", int(s.end_ms)),
        ("product", text(&meta.product)),
        ("price", int(store::to_u64(&meta.price).unwrap_or(0))),
        (
            "state",
            RedisValue::SimpleStringStatic(s.state(now_ms()).as_str()),
        ),
    ];
    Ok(RedisValue::Array(
        pairs
            .into_iter()
            .flat_map(|(k, v)| [RedisValue::SimpleStringStatic(k), v])
            .collect(),
    ))
}
