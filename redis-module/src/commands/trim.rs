//! `SECKILL.TRIM <activity> <min-id>`
//!
//! Bounds the memory of an activity's stream. The order worker calls it with a min-id below
//! which every reservation is final in MySQL (paid, or cancelled/expired and already
//! released). It removes the stream entries below min-id (exactly, as `XTRIM MINID` without
//! `~`) and their release markers, and records min-id as the activity's trim point, so a
//! later `SECKILL.RELEASE` of such an id replies 0 and changes nothing. Replies with the
//! number of entries removed.
//!
//! The trim point only moves up: a min-id at or below it changes nothing. It never passes
//! the id right after the stream's last generated id, so a min-id in the future cannot make
//! reservations that do not exist yet count as final. The dead-letter stream is not touched.
//!
//! The command reads no clock and depends only on the keyspace, so it is replicated (and
//! written to the AOF) verbatim: a replica and an AOF replay run it on the same state and end
//! in the same one.

use super::activity_arg;
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind};
use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::record::{self, Version};
use seckill_core::stream_id::trim_target;
use seckill_core::{ActivityId, Refusal, StreamId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    pub activity: ActivityId,
    pub min_id: StreamId,
}

impl Trim {
    pub fn parse(args: &[RedisString]) -> Result<Self, RedisError> {
        if args.len() != 3 {
            return Err(RedisError::WrongArity);
        }
        Ok(Self {
            activity: activity_arg(&args[1])?,
            min_id: StreamId::parse(args[2].as_slice())
                .map_err(|_| reply::bad_id("min-id", args[2].as_slice()))?,
        })
    }
}

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let req = Trim::parse(super::without_keys(&args)?)?;
    let keys = ActivityKeys::new(ctx, &req.activity);
    // Asked before any key is opened for writing: it runs a command (XINFO) of its own.
    let last_generated = store::stream_last_generated(ctx, &keys.stream)?;
    let mut meta_key = Key::open(ctx, &keys.meta);
    let Some(rec) = store::record(&mut meta_key, true)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{}' does not exist", req.activity),
        ));
    };
    let Some(target) = trim_target(req.min_id, record::trimmed_below(rec), last_generated) else {
        return Ok(RedisValue::Integer(0));
    };
    let released_name = ActivityKeys::released(ctx, &req.activity);
    let released = Key::open(ctx, &released_name);
    released.expect(Kind::Hash)?;
    let stream = Key::open(ctx, &keys.stream);
    stream.expect(Kind::Stream)?;

    // What can fail is done before the first write.
    let upgraded = match record::version(rec) {
        Some(Version::V2) => None,
        // A first-layout record has no room for the trim point: it is stored whole, upgraded.
        _ => {
            let mut bytes = record::upgrade(rec).map_err(reply::internal)?;
            record::write_trimmed_below(&mut bytes, target).map_err(reply::internal)?;
            Some(bytes)
        }
    };
    let markers = released.hash_split_by_id(target)?;
    let s = |b: &[u8]| RedisString::create_from_slice(ctx.get_raw(), b);
    if markers.kept.len() < markers.below.len() {
        // Most markers go: build the hash again from the few that stay. Deleting fields one
        // by one would leave a large hash table that shrinks only step by step.
        released.delete();
        for (field, value) in &markers.kept {
            released.hash_set(&[(&s(field), Some(&s(value)))])?;
        }
    } else {
        for field in &markers.below {
            released.hash_set(&[(&s(field), None)])?;
        }
    }
    let removed = stream.stream_trim(target)?;

    match upgraded {
        Some(bytes) => {
            store::set_record(ctx, &meta_key, &bytes)?;
        }
        None => record::write_trimmed_below(rec, target).map_err(reply::internal)?,
    }

    ctx.replicate_verbatim();
    if removed > 0 {
        store::notify(
            ctx,
            NotifyEvent::STREAM.bits() as u32,
            "xtrim",
            &keys.stream,
        );
    }
    if !markers.below.is_empty() {
        store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hdel", &released_name);
    }
    Ok(RedisValue::Integer(removed as i64))
}
