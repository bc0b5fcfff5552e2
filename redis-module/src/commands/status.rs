//! `SECKILL.STATUS <activity>`: settings, counters and state of an activity, as field/value
//! pairs. New fields are appended at the end; clients find fields by name.

use super::{activity_arg, now_ms};
use crate::reply;
use crate::store::{self, ActivityKeys, Key};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::record::ActivityRecord;
use seckill_core::Refusal;

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let args = super::without_keys(&args)?;
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let keys = ActivityKeys::new(ctx, &activity);
    let mut meta_key = Key::open_read(ctx, &keys.meta);
    let Some(rec) = store::record(&mut meta_key, false)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{activity}' does not exist"),
        ));
    };
    let rec = ActivityRecord::decode(rec).map_err(reply::internal)?;
    let buyers = Key::open_read(ctx, &keys.buyers);
    buyers.expect_buyers()?;
    let s = rec.sale;
    let int = |v: u64| RedisValue::Integer(v as i64);
    let pairs = vec![
        ("total", int(s.total)),
        ("remaining", int(s.remaining)),
        ("reserved", int(s.reserved())),
        ("reservations", int(rec.reservations)),
        ("buyers", int(buyers.buyer_count()?)),
        ("limit", int(s.limit)),
        ("start", int(s.start_ms)),
        ("end", int(s.end_ms)),
        ("product", RedisValue::BulkString(rec.product)),
        ("price", int(rec.price_cents)),
        (
            "state",
            RedisValue::SimpleStringStatic(s.state(now_ms()).as_str()),
        ),
        // Reservation ids at or below `sale-from` belong to earlier sales of this id; those
        // below `trimmed-below` were trimmed as final. Both `0-0` when never set.
        (
            "sale-from",
            RedisValue::BulkString(rec.sale_from.to_string()),
        ),
        (
            "trimmed-below",
            RedisValue::BulkString(rec.trimmed_below.to_string()),
        ),
    ];
    Ok(RedisValue::Array(
        pairs
            .into_iter()
            .flat_map(|(k, v)| [RedisValue::SimpleStringStatic(k), v])
            .collect(),
    ))
}
