//! `SECKILL.RESERVE <activity> <user> <qty>`
//!
//! Checks the window, the per-user limit and the stock, then decrements the stock, records
//! the buyer and appends the reservation to the stream, in one command. Replies with
//! `[reservation-id, remaining]`.

use super::{activity_arg, now_ms};
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind, Names};
use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::limits::{parse_bounded, MAX_LIMIT};
use seckill_core::{decide_reserve, ActivityId, Refusal, UserId};

pub struct Reserve {
    pub activity: ActivityId,
    pub user: UserId,
    pub qty: u64,
}

impl Reserve {
    pub fn parse(args: &[RedisString]) -> Result<Self, RedisError> {
        if args.len() != 4 {
            return Err(RedisError::WrongArity);
        }
        Ok(Self {
            activity: activity_arg(&args[1])?,
            user: UserId::parse(args[2].as_slice()).map_err(reply::arg)?,
            qty: parse_bounded("quantity", args[3].as_slice(), 1, MAX_LIMIT).map_err(reply::arg)?,
        })
    }
}

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let req = Reserve::parse(&args)?;
    // The user's argument string is reused as hash field and stream value: no copy.
    apply(ctx, &req, &args[1], &args[2])
}

fn apply(
    ctx: &Context,
    req: &Reserve,
    activity_s: &RedisString,
    user_s: &RedisString,
) -> RedisResult {
    let names = Names::get();
    let keys = ActivityKeys::new(ctx, &req.activity);
    let meta_key = Key::open(ctx, &keys.meta);
    let Some(meta) = store::read_meta(&meta_key)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{}' does not exist", req.activity),
        ));
    };
    let buyers = Key::open(ctx, &keys.buyers);
    buyers.expect(Kind::Hash)?;
    let [held] = buyers.hash_get([user_s])?;
    let held = store::to_u64(&held).unwrap_or(0);

    let now = now_ms();
    let grant = decide_reserve(&meta.sale, held, req.qty, now).map_err(|r| {
        let detail = match r {
            Refusal::SoldOut => format!(
                "only {} left of activity '{}'",
                meta.sale.remaining, req.activity
            ),
            Refusal::Limit => format!(
                "user '{}' holds {held}, the limit is {} per user",
                req.user, meta.sale.limit
            ),
            Refusal::NotStarted => format!(
                "activity '{}' starts at {}",
                req.activity, meta.sale.start_ms
            ),
            Refusal::Ended => format!("activity '{}' ended at {}", req.activity, meta.sale.end_ms),
            Refusal::NoActivity => format!("activity '{}' does not exist", req.activity),
        };
        reply::refusal(r, detail)
    })?;

    let stream = Key::open(ctx, &keys.stream);
    stream.expect(Kind::Stream)?;
    let empty = store::string(ctx, "");
    let product = meta.product.as_ref().unwrap_or(&empty);
    let price = meta
        .price
        .as_ref()
        .map_or_else(|| store::num(ctx, 0), |p| p.safe_clone(ctx));
    let qty = store::num(ctx, req.qty);
    let ts = store::num(ctx, now);
    let fields = [
        &names.activity,
        activity_s,
        &names.product,
        product,
        &names.user,
        user_s,
        &names.qty,
        &qty,
        &names.price,
        &price,
        &names.ts,
        &ts,
    ];
    // The append comes first: if it fails nothing else has changed yet.
    let id = stream.stream_add(&fields)?;
    let held_s = store::num(ctx, grant.held);
    buyers.hash_set(&[(user_s, Some(&held_s))])?;
    let remaining_s = store::num(ctx, grant.remaining);
    let reservations_s = store::num(ctx, meta.reservations + 1);
    meta_key.hash_set(&[
        (&names.remaining, Some(&remaining_s)),
        (&names.reservations, Some(&reservations_s)),
    ])?;

    let rid = store::format_id(&id);
    let rid_s = store::string(ctx, &rid);
    let mut xadd: Vec<&RedisString> = Vec::with_capacity(fields.len() + 2);
    xadd.push(&keys.stream);
    xadd.push(&rid_s);
    xadd.extend_from_slice(&fields);
    store::replicate(ctx, "XADD", &xadd);
    store::replicate(ctx, "HSET", &[&keys.buyers, user_s, &held_s]);
    store::replicate(
        ctx,
        "HSET",
        &[
            &keys.meta,
            &names.remaining,
            &remaining_s,
            &names.reservations,
            &reservations_s,
        ],
    );
    store::notify(ctx, NotifyEvent::STREAM.bits() as u32, "xadd", &keys.stream);
    store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hset", &keys.buyers);
    store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hset", &keys.meta);

    Ok(RedisValue::Array(vec![
        RedisValue::BulkString(rid),
        RedisValue::Integer(grant.remaining as i64),
    ]))
}
