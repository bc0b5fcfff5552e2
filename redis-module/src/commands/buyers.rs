//! The buyers of an activity, read through the module (the key holds the module's own type,
//! which plain hash commands cannot read or write):
//!
//! - `SECKILL.HELD <activity> <user>`: units the user holds (0 when none). The gateway's
//!   replica confirmation asks it of a reservation's buyer, the result page of a user.
//! - `SECKILL.BUYERS <activity>`: every `user, units` pair (the audit compares them with the
//!   database). O(N): one reply with every buyer, as `HGETALL` of the hash was.
//! - `SECKILL.HOLD <buyers-key> <user> <units> [<user> <units> ...]`: internal, the effect a
//!   RELEASE replicates and what an AOF rewritten without the RDB preamble re-creates a set
//!   with; sets what each user holds (0 removes the user). Refused to clients like
//!   `SECKILL.APPLY`: with it a client could clear a buyer's mark and buy past the limit.
//!
//! Both reads also accept a buyers key still holding a hash (written before the set existed),
//! which the next write converts.

use super::activity_arg;
use crate::buyers;
use crate::reply;
use crate::store::{ActivityKeys, Key};
use redis_module::{
    Context, ContextFlags, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue,
};
use seckill_core::limits::{parse_bounded, MAX_LIMIT};
use seckill_core::UserId;

pub fn held(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let args = super::without_keys(&args)?;
    if args.len() != 3 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let user = UserId::parse(args[2].as_slice()).map_err(reply::arg)?;
    let keys = ActivityKeys::new(ctx, &activity);
    let buyers = Key::open_read(ctx, &keys.buyers);
    buyers.expect_buyers()?;
    Ok(RedisValue::Integer(buyers.held(user.as_str())? as i64))
}

pub fn list(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let args = super::without_keys(&args)?;
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let keys = ActivityKeys::new(ctx, &activity);
    let buyers = Key::open_read(ctx, &keys.buyers);
    buyers.expect_buyers()?;
    Ok(RedisValue::Array(
        buyers
            .buyer_list()?
            .into_iter()
            .flat_map(|(user, qty)| {
                [
                    RedisValue::StringBuffer(user),
                    RedisValue::Integer(qty as i64),
                ]
            })
            .collect(),
    ))
}

pub fn hold(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Err(reply::internal_only("SECKILL.HOLD"));
    }
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return Err(RedisError::WrongArity);
    }
    let name = &args[1];
    // Parsed whole before anything changes: a bad pair changes nothing.
    let mut pairs = Vec::with_capacity((args.len() - 2) / 2);
    for pair in args[2..].chunks(2) {
        let user = UserId::parse(pair[0].as_slice()).map_err(reply::arg)?;
        let qty =
            parse_bounded("quantity", pair[1].as_slice(), 0, MAX_LIMIT).map_err(reply::arg)?;
        let qty = buyers::quantity(qty).ok_or_else(|| reply::arg("quantity out of range"))?;
        pairs.push((user, qty));
    }
    let mut key = Key::open(ctx, name);
    key.expect_buyers()?;
    for (user, qty) in &pairs {
        key.set_held(user.as_str(), *qty)?;
    }
    // A replica of this replica gets the same effect.
    ctx.replicate_verbatim();
    ctx.notify_keyspace_event(NotifyEvent::MODULE, "seckill.hold", name);
    Ok(RedisValue::SimpleStringStatic("OK"))
}
