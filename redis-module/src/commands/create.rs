//! `SECKILL.CREATE <activity> STOCK <n> [LIMIT <per-user>] [START <unix-ms>] [END <unix-ms>]
//! [PRODUCT <id>] [PRICE <cents>]`
//!
//! Creates (preheats) an activity. An activity that exists and has not ended is never
//! overwritten; an ended one is replaced (its buyers and releases are cleared, its stream is
//! kept so undrained reservations still become orders).
//!
//! The new record's sale boundary is the stream's last generated id: every entry at or below
//! it was reserved in an earlier sale, and `SECKILL.RELEASE` returns none of them into this
//! one. The trim point is carried over, as the trimmed entries stay trimmed.

use super::{activity_arg, now_ms};
use crate::reply;
use crate::store::{self, ActivityKeys, Key, Kind};
use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::limits::{parse_bounded, MAX_LIMIT, MAX_PRICE_CENTS, MAX_STOCK, MAX_TIME_MS};
use seckill_core::record::{self, ActivityRecord};
use seckill_core::{ActivityId, ActivityState, Sale, StreamId};

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
        if args.len() < 4 || !args.len().is_multiple_of(2) {
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
                    let id = seckill_core::ProductId::parse(value)
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
    if ctx.is_keys_position_request() {
        return super::report_keys(ctx, &args);
    }
    let req = Create::parse(super::without_keys(&args)?)?;
    let keys = ActivityKeys::new(ctx, &req.activity);
    let released_name = ActivityKeys::released(ctx, &req.activity);
    // Asked before any key is opened for writing: it runs a command (XINFO) of its own.
    let sale_from = store::stream_last_generated(ctx, &keys.stream)?.unwrap_or(StreamId::ZERO);
    let mut meta_key = Key::open(ctx, &keys.meta);
    let buyers = Key::open(ctx, &keys.buyers);
    let released = Key::open(ctx, &released_name);
    buyers.expect_buyers()?;
    released.expect(Kind::Hash)?;
    let mut trimmed_below = StreamId::ZERO;
    if let Some(existing) = store::record(&mut meta_key, false)? {
        let sale = record::read_sale(existing).map_err(reply::internal)?;
        if sale.state(now_ms()) != ActivityState::Ended {
            return Err(reply::exists(&req.activity));
        }
        trimmed_below = record::trimmed_below(existing);
        for key in [&buyers, &released] {
            if !key.is_empty() {
                key.delete();
                store::replicate(ctx, c"DEL", &[key.name()]);
                store::notify(ctx, NotifyEvent::GENERIC.bits() as u32, "del", key.name());
            }
        }
    }
    let rec = ActivityRecord {
        sale: Sale {
            total: req.stock,
            remaining: req.stock,
            limit: req.limit,
            start_ms: req.start_ms,
            end_ms: req.end_ms,
        },
        price_cents: req.price_cents,
        reservations: 0,
        product: req.product,
        sale_from,
        trimmed_below,
    };
    let bytes = rec.encode().map_err(reply::arg)?;
    let value = store::set_record(ctx, &meta_key, &bytes)?;
    store::replicate(ctx, c"SET", &[&keys.meta, &value]);
    store::notify(ctx, NotifyEvent::STRING.bits() as u32, "set", &keys.meta);
    Ok(RedisValue::SimpleStringStatic("OK"))
}
