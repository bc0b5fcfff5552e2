//! `SECKILL.RESERVE <activity> <user> <qty> [PRODUCT <id>]` and its replicated effect
//! `SECKILL.APPLY`.
//!
//! RESERVE checks the window, the per-user limit and the stock, then decrements the stock,
//! records the buyer and appends the reservation to the stream, in one command. Replies with
//! `[reservation-id, remaining]`. With `PRODUCT`, the caller states which product it means to
//! buy: a reservation is refused (argument error, nothing changed) when the activity sells a
//! different one, so a stale page or a crafted request cannot buy under the wrong product.
//!
//! What it changed is propagated to replicas and the AOF as one deterministic command,
//! `SECKILL.APPLY <activity> <reservation-id> <user> <qty> <ts> <remaining> <reservations>`,
//! which writes the same stream entry (same id), buyer and counters without looking at the
//! clock. One propagated command instead of three core ones (XADD, HSET, SET) matters here:
//! each `RedisModule_Replicate` looks its command name up, which cost a sixth of RESERVE.
//!
//! APPLY sets stock, buyer and counters without any check, so it runs only where effects
//! come from: the replication link (a replica, or a replica of a replica, whose primary
//! forwards the same stream) and the loading of an AOF. A client, whatever its ACL, is
//! refused and nothing changes (SPEC invariant 8).

use super::{activity_arg, now_ms};
use crate::buyers;
use crate::reply;
use crate::store::{self, ActivityKeys, Hot, Key, Kind, Names};
use redis_module::raw::RedisModuleStreamID;
use redis_module::{
    Context, ContextFlags, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue,
};
use seckill_core::limits::{parse_bounded, MAX_LIMIT, MAX_STOCK, MAX_TIME_MS};
use seckill_core::record::{self, OFF_PRICE, OFF_REMAINING, OFF_RESERVATIONS};
use seckill_core::{
    decide_reserve, decision, ActivityId, ProductId, Refusal, Sale, StreamId, UserId,
};

pub struct Reserve {
    pub activity: ActivityId,
    pub user: UserId,
    pub qty: u64,
    /// The product the caller expects the activity to sell (`PRODUCT <id>`).
    pub product: Option<ProductId>,
}

impl Reserve {
    pub fn parse(args: &[RedisString]) -> Result<Self, RedisError> {
        if args.len() < 4 {
            return Err(RedisError::WrongArity);
        }
        let product = match &args[4..] {
            [] => None,
            [name, value] if name.as_slice().eq_ignore_ascii_case(b"PRODUCT") => Some(
                ProductId::parse(value.as_slice()).map_err(|_| {
                    reply::arg("PRODUCT may only contain letters, digits, '-', '_', '.' and ':' (at most 64)")
                })?,
            ),
            [name, ..] => {
                return Err(reply::arg(format!(
                    "unexpected argument '{}' after the quantity; expected PRODUCT <id>",
                    String::from_utf8_lossy(name.as_slice())
                )))
            }
        };
        Ok(Self {
            activity: activity_arg(&args[1])?,
            user: UserId::parse(args[2].as_slice()).map_err(reply::arg)?,
            qty: parse_bounded("quantity", args[3].as_slice(), 1, MAX_LIMIT).map_err(reply::arg)?,
            product,
        })
    }
}

fn refusal(r: Refusal, req: &Reserve, sale: &Sale, held: u64) -> RedisError {
    let a = &req.activity;
    let detail = match r {
        Refusal::SoldOut => format!("only {} left of activity '{a}'", sale.remaining),
        Refusal::Limit => format!(
            "user '{}' holds {held}; one reservation of at most {} per user",
            req.user, sale.limit
        ),
        Refusal::NotStarted => format!("activity '{a}' starts at {}", sale.start_ms),
        Refusal::Ended => format!("activity '{a}' ended at {}", sale.end_ms),
        Refusal::NoActivity => format!("activity '{a}' does not exist"),
    };
    reply::refusal(r, detail)
}

/// The quantity argument as a string: the caller's own string when it is already canonical
/// (the common case), so no new string is made.
fn canonical_qty(ctx: &Context, raw: &RedisString, qty: u64) -> RedisString {
    let bytes = raw.as_slice();
    if bytes.first() != Some(&b'0') && bytes.iter().all(u8::is_ascii_digit) {
        raw.safe_clone(ctx)
    } else {
        store::num(ctx, qty)
    }
}

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let args = super::without_keys(&args)?;
    let req = Reserve::parse(args)?;
    let (activity_s, user_s) = (&args[1], &args[2]);
    let hot = Hot::get(&req.activity);
    let keys = &hot.keys;
    let mut meta_key = Key::open(ctx, &keys.meta);
    let Some(rec) = store::record(&mut meta_key, true)? else {
        return Err(refusal(Refusal::NoActivity, &req, &Sale::default(), 0));
    };
    let sale = record::read_sale(rec).map_err(reply::internal)?;
    let expected = req.product.as_ref().map(|p| p.as_str().as_bytes());
    if !decision::product_matches(record::product_bytes(rec), expected) {
        return Err(reply::arg(format!(
            "activity '{}' does not sell product '{}'",
            req.activity,
            req.product.as_ref().map_or("", |p| p.as_str())
        )));
    }
    let mut buyers = Key::open(ctx, &keys.buyers);
    buyers.expect_buyers()?;
    let stream = Key::open(ctx, &keys.stream);
    stream.expect(Kind::Stream)?;
    let user = req.user.as_str();

    let now = now_ms();
    // Decide as if the user held nothing, then claim the user's slot with one
    // insert-if-absent: a user who already holds a reservation is refused as LIMIT. Only a
    // SOLDOUT refusal looks the user up, because LIMIT is reported first.
    let grant = match decide_reserve(&sale, 0, req.qty, now) {
        Ok(grant) => grant,
        Err(Refusal::SoldOut) => {
            let held = buyers.held(user)?;
            let r = if held > 0 {
                Refusal::Limit
            } else {
                Refusal::SoldOut
            };
            return Err(refusal(r, &req, &sale, held));
        }
        Err(r) => return Err(refusal(r, &req, &sale, 0)),
    };
    let qty_s = canonical_qty(ctx, &args[3], req.qty);
    let qty = buyers::quantity(req.qty).ok_or_else(|| reply::arg("quantity out of range"))?;
    if !buyers.buyers_mut()?.insert_new(user, qty) {
        let held = buyers.held(user)?;
        return Err(refusal(Refusal::Limit, &req, &sale, held.max(1)));
    }
    let ts_s = store::num(ctx, now);
    let reservations = record::read_u64(rec, OFF_RESERVATIONS) + 1;
    let (product_s, price_s) = hot.entry_strings(
        ctx,
        record::product_bytes(rec),
        record::read_u64(rec, OFF_PRICE),
    );
    let entry = Entry {
        activity: activity_s,
        product: &product_s,
        user: user_s,
        qty: &qty_s,
        price: &price_s,
        ts: &ts_s,
    };
    let id = match append(&stream, &entry, None) {
        Ok(id) => id,
        Err(e) => {
            // Undo the claim: a failed reservation changes nothing.
            buyers.set_held(user, 0)?;
            return Err(e);
        }
    };
    record::write_u64(rec, OFF_REMAINING, grant.remaining);
    record::write_u64(rec, OFF_RESERVATIONS, reservations);

    let rid_s = store::stream_id_string(ctx, &id);
    let remaining_s = store::num(ctx, grant.remaining);
    let reservations_s = store::num(ctx, reservations);
    store::replicate(
        ctx,
        c"SECKILL.APPLY",
        &[
            activity_s,
            &rid_s,
            user_s,
            &qty_s,
            &ts_s,
            &remaining_s,
            &reservations_s,
        ],
    );
    store::notify(ctx, NotifyEvent::STREAM.bits() as u32, "xadd", &keys.stream);
    // `[reservation-id, remaining]`, written straight to the client: the crate's
    // `RedisValue::Array` would allocate a vector for two items on every reservation.
    reply::id_and_count(ctx, &rid_s, grant.remaining);
    Ok(RedisValue::NoReply)
}

/// The six fields of a reservation's stream entry.
struct Entry<'a> {
    activity: &'a RedisString,
    product: &'a RedisString,
    user: &'a RedisString,
    qty: &'a RedisString,
    price: &'a RedisString,
    ts: &'a RedisString,
}

/// Appends the reservation entry.
fn append(
    stream: &Key,
    e: &Entry,
    id: Option<RedisModuleStreamID>,
) -> Result<RedisModuleStreamID, RedisError> {
    let names = Names::get();
    stream.stream_add(
        id,
        &[
            &names.activity,
            e.activity,
            &names.product,
            e.product,
            &names.user,
            e.user,
            &names.qty,
            e.qty,
            &names.price,
            e.price,
            &names.ts,
            e.ts,
        ],
    )
}

/// `SECKILL.APPLY <activity> <reservation-id> <user> <qty> <ts> <remaining> <reservations>`:
/// the effect of a RESERVE, as replicas and the AOF receive it. Never reads the clock and
/// never refuses for business reasons, so a replay after the window closed ends in the same
/// state. Refused unless it comes from the replication link or an AOF being loaded.
pub fn apply(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Err(reply::internal_only("SECKILL.APPLY"));
    }
    if args.len() != 8 {
        return Err(RedisError::WrongArity);
    }
    let activity = activity_arg(&args[1])?;
    let id = StreamId::parse(args[2].as_slice())
        .map(store::raw_id)
        .map_err(|_| reply::bad_id("reservation id", args[2].as_slice()))?;
    let user = UserId::parse(args[3].as_slice()).map_err(reply::arg)?;
    let qty = parse_bounded("quantity", args[4].as_slice(), 1, MAX_LIMIT).map_err(reply::arg)?;
    let qty = buyers::quantity(qty).ok_or_else(|| reply::arg("quantity out of range"))?;
    parse_bounded("ts", args[5].as_slice(), 0, MAX_TIME_MS).map_err(reply::arg)?;
    let remaining =
        parse_bounded("remaining", args[6].as_slice(), 0, MAX_STOCK).map_err(reply::arg)?;
    let reservations =
        parse_bounded("reservations", args[7].as_slice(), 0, MAX_STOCK).map_err(reply::arg)?;

    let keys = ActivityKeys::new(ctx, &activity);
    let mut meta_key = Key::open(ctx, &keys.meta);
    let Some(rec) = store::record(&mut meta_key, true)? else {
        return Err(reply::refusal(
            Refusal::NoActivity,
            format_args!("activity '{activity}' does not exist"),
        ));
    };
    let mut buyers = Key::open(ctx, &keys.buyers);
    buyers.expect_buyers()?;
    let stream = Key::open(ctx, &keys.stream);
    stream.expect(Kind::Stream)?;
    let product_s = RedisString::create_from_slice(ctx.get_raw(), record::product_bytes(rec));
    let price_s = store::num(ctx, record::read_u64(rec, OFF_PRICE));
    let entry = Entry {
        activity: &args[1],
        product: &product_s,
        user: &args[3],
        qty: &args[4],
        price: &price_s,
        ts: &args[5],
    };
    append(&stream, &entry, Some(id))?;
    buyers.set_held(user.as_str(), qty)?;
    record::write_u64(rec, OFF_REMAINING, remaining);
    record::write_u64(rec, OFF_RESERVATIONS, reservations);
    // A replica of this replica gets the same effect.
    ctx.replicate_verbatim();
    store::notify(ctx, NotifyEvent::STREAM.bits() as u32, "xadd", &keys.stream);
    Ok(RedisValue::SimpleStringStatic("OK"))
}
