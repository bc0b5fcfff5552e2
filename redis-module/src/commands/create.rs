//! `SECKILL.CREATE <activity> STOCK <n> [LIMIT <per-user>] [START <unix-ms>] [END <unix-ms>]
//! [PRODUCT <id>] [PRICE <cents>]`
//!
//! Creates (preheats) an activity. An activity that exists and has not ended is never
//! overwritten; an ended one is replaced (its buyers and releases are cleared, its stream is
//! kept so undrained reservations still become orders).

use super::{activity_arg, now_ms};
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind, Names};
use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::limits::{parse_bounded, MAX_LIMIT, MAX_PRICE_CENTS, MAX_STOCK, MAX_TIME_MS};
use seckill_core::{ActivityId, ActivityState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub activity: ActivityId,
    pub stock: u64,
    pub limit: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub product: String,
    pub price_cents: u64,
}

impl Create {
    pub fn parse(args: &[RedisString]) -> Result<Self, RedisError> {
        if args.len() < 4 || args.len() % 2 != 0 {
            return Err(RedisError::WrongArity);
        }
        let activity = activity_arg(&args[1])?;
        let (mut stock, mut limit, mut start, mut end, mut product, mut price) =
            (None, None, None, None, None, None);
        for pair in args[2..].chunks(2) {
            let (opt, value) = (pair[0].as_slice(), pair[1].as_slice());
            let name = String::from_utf8_lossy(opt).to_ascii_uppercase();
            let slot = match name.as_str() {
                "STOCK" => &mut stock,
                "LIMIT" => &mut limit,
                "START" => &mut start,
                "END" => &mut end,
                "PRICE" => &mut price,
                "PRODUCT" => {
                    if product.is_some() {
                        return Err(reply::arg("option PRODUCT given twice"));
                    }
                    let id = seckill_core::UserId::parse(value)
                        .map_err(|_| reply::arg("PRODUCT may only contain letters, digits, '-', '_', '.' and ':' (at most 64)"))?;
                    product = Some(id.as_str().to_owned());
                    continue;
                }
                _ => {
                    return Err(reply::arg(format_args!(
                    "unknown option '{name}'; expected STOCK, LIMIT, START, END, PRODUCT or PRICE"
                )))
                }
            };
            if slot.is_some() {
                return Err(reply::arg(format_args!("option {name} given twice")));
            }
            let (what, min, max) = match name.as_str() {
                "STOCK" => ("STOCK", 0, MAX_STOCK),
                "LIMIT" => ("LIMIT", 1, MAX_LIMIT),
                "PRICE" => ("PRICE", 0, MAX_PRICE_CENTS),
                "START" => ("START", 0, MAX_TIME_MS),
                _ => ("END", 0, MAX_TIME_MS),
            };
            *slot = Some(parse_bounded(what, value, min, max).map_err(reply::arg)?);
        }
        let stock = stock.ok_or_else(|| reply::arg("STOCK <n> is required"))?;
        let start_ms = start.unwrap_or(0);
        let end_ms = end.unwrap_or(0);
        if end_ms != 0 && end_ms <= start_ms {
            return Err(reply::arg(format_args!(
                "END ({end_ms}) must be after START ({start_ms})"
            )));
        }
        Ok(Self {
            activity,
            stock,
            limit: limit.unwrap_or(1),
            start_ms,
            end_ms,
            product: product.unwrap_or_default(),
            price_cents: price.unwrap_or(0),
        })
    }
}

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let req = Create::parse(&args)?;
    let names = Names::get();
    let keys = ActivityKeys::new(ctx, &req.activity);
    let meta_key = Key::open(ctx, &keys.meta);
    let buyers = Key::open(ctx, &keys.buyers);
    let released = Key::open(ctx, &keys.released);
    buyers.expect(Kind::Hash)?;
    released.expect(Kind::Hash)?;
    if let Some(existing) = store::read_meta(&meta_key)? {
        if existing.sale.state(now_ms()) != ActivityState::Ended {
            return Err(reply::exists(&req.activity));
        }
        for key in [&meta_key, &buyers, &released] {
            if !key.is_empty() {
                key.delete();
                store::replicate(ctx, "DEL", &[key.name()]);
                store::notify(ctx, NotifyEvent::GENERIC.bits() as u32, "del", key.name());
            }
        }
    }
    let total = store::num(ctx, req.stock);
    let limit = store::num(ctx, req.limit);
    let start = store::num(ctx, req.start_ms);
    let end = store::num(ctx, req.end_ms);
    let product = store::string(ctx, &req.product);
    let price = store::num(ctx, req.price_cents);
    let zero = store::num(ctx, 0);
    let pairs = [
        (&names.total, &total),
        (&names.remaining, &total),
        (&names.limit, &limit),
        (&names.start, &start),
        (&names.end, &end),
        (&names.product, &product),
        (&names.price, &price),
        (&names.reservations, &zero),
    ];
    let set: Vec<_> = pairs.iter().map(|(f, v)| (*f, Some(*v))).collect();
    meta_key.hash_set(&set)?;
    let mut hset: Vec<&RedisString> = vec![&keys.meta];
    for (f, v) in pairs {
        hset.push(f);
        hset.push(v);
    }
    store::replicate(ctx, "HSET", &hset);
    store::notify(ctx, NotifyEvent::HASH.bits() as u32, "hset", &keys.meta);
    Ok(RedisValue::SimpleStringStatic("OK"))
}
