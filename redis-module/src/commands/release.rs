//! `SECKILL.RELEASE <activity> <reservation-id>`
//!
//! Returns a reservation's stock and lowers the buyer's held quantity, exactly once: the
//! released id is remembered (in its canonical spelling, so `01-1` and `1-1` are one
//! reservation), and a second call replies 0 and changes nothing. Replies with the quantity
//! returned.
//!
//! A reservation is released only into the sale it was made in. One below the activity's
//! trim point is final (its entry was trimmed): 0. One at or below the sale boundary belongs
//! to an earlier sale of a re-created activity: 0, so it can neither add stock to the new
//! sale nor lower a new buyer's mark. Otherwise the reservation is looked up in the stream;
//! an id that is not there is an argument error.

use super::activity_arg;
use crate::buyers;
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind};
use redis_module::key::RedisKey;
use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::limits::MAX_LIMIT;
use seckill_core::record::{self, OFF_REMAINING, OFF_RESERVATIONS};
use seckill_core::stream_id::release_scope;
use seckill_core::{Refusal, ReleaseScope, ReservationEntry, StreamId};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let args = super::without_keys(&args)?;
    if args.len() != 3 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let rid = StreamId::parse(args[2].as_slice())
        .map_err(|_| reply::bad_id("reservation id", args[2].as_slice()))?;
    let rid_s = store::string(ctx, &rid.to_string());
    let keys = ActivityKeys::new(ctx, &activity);

    let mut meta_key = Key::open(ctx, &keys.meta);
    let Some(rec) = store::record(&mut meta_key, true)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{activity}' does not exist"),
        ));
    };
    let sale = record::read_sale(rec).map_err(reply::internal)?;
    let scope = release_scope(rid, record::sale_from(rec), record::trimmed_below(rec));
    if scope == ReleaseScope::Trimmed {
        return Ok(RedisValue::Integer(0));
    }
    let released_name = ActivityKeys::released(ctx, &activity);
    let released = Key::open(ctx, &released_name);
    released.expect(Kind::Hash)?;
    let [already] = released.hash_get([&rid_s])?;
    if already.is_some() {
        return Ok(RedisValue::Integer(0));
    }
    let entry = match find_entry(ctx, &keys.stream, rid)? {
        None => {
            return Err(reply::arg(format_args!(
                "no reservation '{rid}' in activity '{activity}'"
            )))
        }
        Some(Err(e)) => {
            return Err(reply::internal(format_args!(
                "reservation entry is unreadable: {e}"
            )))
        }
        Some(Ok(e)) => e,
    };
    if scope == ReleaseScope::EarlierSale {
        return Ok(RedisValue::Integer(0));
    }

    let mut buyers = Key::open(ctx, &keys.buyers);
    buyers.expect_buyers()?;
    let user = entry.user.as_str();
    let user_s = store::string(ctx, user);
    let held_after = buyers.held(user)?.saturating_sub(entry.qty);
    // What one user can hold is bounded by the limit; a larger number can only come from a
    // hash edited by hand before the buyer set existed.
    let held_after = buyers::quantity(held_after).unwrap_or(MAX_LIMIT as u32);
    // Never above the total, whatever an operator did by hand.
    let remaining = (sale.remaining + entry.qty).min(sale.total);
    let reservations = record::read_u64(rec, OFF_RESERVATIONS).saturating_sub(1);
    let qty_s = store::num(ctx, entry.qty);

    released.hash_set(&[(&rid_s, Some(&qty_s))])?;
    store::replicate(ctx, c"HSET", &[&released_name, &rid_s, &qty_s]);
    buyers.set_held(user, held_after)?;
    let held_s = store::num(ctx, u64::from(held_after));
    store::replicate(ctx, c"SECKILL.HOLD", &[&keys.buyers, &user_s, &held_s]);
    // In place: the version-1 and version-2 layouts share these offsets, and the record is
    // replicated whole in whichever layout it has.
    record::write_u64(rec, OFF_REMAINING, remaining);
    record::write_u64(rec, OFF_RESERVATIONS, reservations);
    let rec_s = RedisString::create_from_slice(ctx.get_raw(), rec);
    store::replicate(ctx, c"SET", &[&keys.meta, &rec_s]);
    store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hset", &released_name);
    store::notify(
        ctx,
        NotifyEvent::MODULE.bits() as u32,
        "seckill.hold",
        &keys.buyers,
    );
    Ok(RedisValue::Integer(entry.qty as i64))
}

/// The stream entry of `rid`, read through a read-only key that is closed on return: the
/// crate's stream iterator deletes the current entry on drop when its key is writable.
fn find_entry(
    ctx: &Context,
    stream_name: &RedisString,
    rid: StreamId,
) -> Result<Option<Result<ReservationEntry, seckill_core::EntryError>>, RedisError> {
    let stream = RedisKey::open(ctx.get_raw(), stream_name);
    if stream.is_null() {
        return Ok(None);
    }
    if stream.key_type() != redis_module::KeyType::Stream {
        return Err(reply::wrong_type(&stream_name.to_string_lossy()));
    }
    let id = store::raw_id(rid);
    let mut it = stream.get_stream_range_iterator(Some(id), Some(id), false, false)?;
    Ok(it.next().map(|rec| {
        ReservationEntry::from_fields(rec.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }))
}
