//! `SECKILL.RELEASE <activity> <reservation-id>`
//!
//! Returns a reservation's stock and lowers the buyer's held quantity, exactly once: the
//! released id is remembered, and a second call replies 0 and changes nothing. Replies with
//! the quantity returned. The reservation is looked up in the activity's stream, so the stream
//! must not be trimmed below reservations that can still be released.

use super::activity_arg;
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind};
use redis_module::key::RedisKey;
use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::record::{self, OFF_REMAINING, OFF_RESERVATIONS};
use seckill_core::{Refusal, ReservationEntry};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 3 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let rid_s = &args[2];
    let rid = store::parse_id(rid_s.as_slice()).ok_or_else(|| {
        reply::arg(format_args!(
            "reservation id must look like <ms>-<seq>, got '{}'",
            rid_s.to_string_lossy().chars().take(40).collect::<String>()
        ))
    })?;
    let keys = ActivityKeys::new(ctx, &activity);

    // Find the reservation first, with a read-only key that is closed before any write.
    let entry = {
        let stream = RedisKey::open(ctx.get_raw(), &keys.stream);
        if stream.is_null() {
            None
        } else {
            if stream.key_type() != redis_module::KeyType::Stream {
                return Err(reply::wrong_type(&keys.stream.to_string_lossy()));
            }
            let mut it = stream.get_stream_range_iterator(Some(rid), Some(rid), false, false)?;
            it.next().map(|rec| {
                ReservationEntry::from_fields(
                    rec.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                )
            })
        }
    };

    let mut meta_key = Key::open(ctx, &keys.meta);
    let Some(rec) = store::record(&mut meta_key, true)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{activity}' does not exist"),
        ));
    };
    let sale = record::read_sale(rec).map_err(reply::internal)?;
    let released_name = ActivityKeys::released(ctx, &activity);
    let released = Key::open(ctx, &released_name);
    released.expect(Kind::Hash)?;
    let [already] = released.hash_get([rid_s])?;
    if already.is_some() {
        return Ok(RedisValue::Integer(0));
    }
    let entry = match entry {
        None => {
            return Err(reply::arg(format_args!(
                "no reservation '{}' in activity '{activity}'",
                store::format_id(&rid)
            )))
        }
        Some(Err(e)) => {
            return Err(reply::internal(format_args!(
                "reservation entry is unreadable: {e}"
            )))
        }
        Some(Ok(e)) => e,
    };

    let buyers = Key::open(ctx, &keys.buyers);
    buyers.expect(Kind::Hash)?;
    let user_s = store::string(ctx, entry.user.as_str());
    let [held] = buyers.hash_get([&user_s])?;
    let held_after = store::to_u64(&held).unwrap_or(0).saturating_sub(entry.qty);
    // Never above the total, whatever an operator did by hand.
    let remaining = (sale.remaining + entry.qty).min(sale.total);
    let reservations = record::read_u64(rec, OFF_RESERVATIONS).saturating_sub(1);
    let qty_s = store::num(ctx, entry.qty);

    released.hash_set(&[(rid_s, Some(&qty_s))])?;
    store::replicate(ctx, c"HSET", &[&released_name, rid_s, &qty_s]);
    if held_after == 0 {
        buyers.hash_set(&[(&user_s, None)])?;
        store::replicate(ctx, c"HDEL", &[&keys.buyers, &user_s]);
    } else {
        let held_s = store::num(ctx, held_after);
        buyers.hash_set(&[(&user_s, Some(&held_s))])?;
        store::replicate(ctx, c"HSET", &[&keys.buyers, &user_s, &held_s]);
    }
    record::write_u64(rec, OFF_REMAINING, remaining);
    record::write_u64(rec, OFF_RESERVATIONS, reservations);
    let rec_s = RedisString::create_from_slice(ctx.get_raw(), rec);
    store::replicate(ctx, c"SET", &[&keys.meta, &rec_s]);
    store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hset", &released_name);
    store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hset", &keys.buyers);
    Ok(RedisValue::Integer(entry.qty as i64))
}
