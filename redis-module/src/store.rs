//! Typed access to an activity's keys through Redis' low-level key API.
//!
//! The safe wrappers of `redis-module` allocate a string per field name on every access;
//! `SECKILL.RESERVE` is the hottest command of the system, so field names are interned once at
//! load time and hashes are read and written with one variadic `HashGet`/`HashSet` each. All
//! `unsafe` of the module lives in this file, next to the invariants that make it sound: the
//! Redis GIL is held (every function takes the command's `Context`) and every pointer handed
//! to Redis is either a live `RedisString` or a key opened here and closed on drop.

use crate::reply;
use redis_module::raw::{self, RedisModuleKey, RedisModuleString};
use redis_module::{Context, RedisError, RedisString};
use seckill_core::keys::{self, field};
use seckill_core::{ActivityId, Sale};
use std::os::raw::c_int;
use std::ptr::{null_mut, NonNull};
use std::sync::OnceLock;

/// Field names created once and never freed, shared by every command call.
pub struct Names {
    pub total: RedisString,
    pub remaining: RedisString,
    pub limit: RedisString,
    pub start: RedisString,
    pub end: RedisString,
    pub product: RedisString,
    pub price: RedisString,
    pub reservations: RedisString,
    pub activity: RedisString,
    pub user: RedisString,
    pub qty: RedisString,
    pub ts: RedisString,
}

struct Interned(Names);
// Safety: the strings are created once at load time and only ever read (passed to Redis)
// while the Redis GIL is held; Redis strings are not mutated through these handles.
unsafe impl Sync for Interned {}
unsafe impl Send for Interned {}

static NAMES: OnceLock<Interned> = OnceLock::new();

impl Names {
    pub fn init() {
        NAMES.get_or_init(|| {
            let s = |name: &str| RedisString::create(None, name);
            Interned(Names {
                total: s(field::TOTAL),
                remaining: s(field::REMAINING),
                limit: s(field::LIMIT),
                start: s(field::START),
                end: s(field::END),
                product: s(field::PRODUCT),
                price: s(field::PRICE),
                reservations: s(field::RESERVATIONS),
                activity: s(seckill_core::entry::field::ACTIVITY),
                user: s(seckill_core::entry::field::USER),
                qty: s(seckill_core::entry::field::QTY),
                ts: s(seckill_core::entry::field::TS),
            })
        });
    }

    pub fn get() -> &'static Names {
        Self::init();
        match NAMES.get() {
            Some(i) => &i.0,
            None => unreachable!("initialised just above"),
        }
    }
}

/// The key names of one activity.
pub struct ActivityKeys {
    pub meta: RedisString,
    pub buyers: RedisString,
    pub stream: RedisString,
    pub released: RedisString,
}

impl ActivityKeys {
    pub fn new(ctx: &Context, id: &ActivityId) -> Self {
        Self {
            meta: ctx.create_string(keys::meta(id)),
            buyers: ctx.create_string(keys::buyers(id)),
            stream: ctx.create_string(keys::stream(id)),
            released: ctx.create_string(keys::released(id)),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Empty,
    Hash,
    Stream,
    Other,
}

/// A key opened for reading and writing; closed on drop.
pub struct Key<'a> {
    ctx: &'a Context,
    inner: *mut RedisModuleKey,
    name: &'a RedisString,
}

impl<'a> Key<'a> {
    pub fn open(ctx: &'a Context, name: &'a RedisString) -> Self {
        let inner = raw::open_key(
            ctx.get_raw(),
            name.inner,
            raw::KeyMode::READ | raw::KeyMode::WRITE,
        );
        Self { ctx, inner, name }
    }

    pub fn name(&self) -> &RedisString {
        self.name
    }

    pub fn kind(&self) -> Kind {
        // Safety: `inner` is an open key.
        let t = unsafe { raw::RedisModule_KeyType.map_or(0, |f| f(self.inner)) } as isize;
        match t {
            raw::REDISMODULE_KEYTYPE_EMPTY => Kind::Empty,
            raw::REDISMODULE_KEYTYPE_HASH => Kind::Hash,
            raw::REDISMODULE_KEYTYPE_STREAM => Kind::Stream,
            _ => Kind::Other,
        }
    }

    /// Fails with `WRONGTYPE` unless the key is empty or of kind `want`.
    pub fn expect(&self, want: Kind) -> Result<(), RedisError> {
        match self.kind() {
            Kind::Empty => Ok(()),
            k if k == want => Ok(()),
            _ => Err(reply::wrong_type(&self.name.to_string_lossy())),
        }
    }

    /// Reads several hash fields in one call. Missing fields come back as `None`.
    pub fn hash_get<const N: usize>(
        &self,
        fields: [&RedisString; N],
    ) -> Result<[Option<RedisString>; N], RedisError> {
        let mut out: [*mut RedisModuleString; N] = [null_mut(); N];
        for (i, f) in fields.iter().enumerate() {
            // One field per call keeps the variadic call's shape fixed; the key stays open, so
            // this is a lookup in an already found hash, not a keyspace lookup.
            // Safety: key is open, field is a live string, out slot is a valid pointer, and the
            // argument list is NULL-terminated as the API requires.
            let rc = unsafe {
                raw::RedisModule_HashGet.ok_or_else(|| reply::internal("HashGet missing"))?(
                    self.inner,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    f.inner,
                    &mut out[i] as *mut *mut RedisModuleString,
                    null_mut::<RedisModuleString>(),
                )
            };
            if rc != raw::REDISMODULE_OK as c_int {
                return Err(reply::wrong_type(&self.name.to_string_lossy()));
            }
        }
        let ctx = self.ctx.get_raw();
        Ok(out.map(|p| (!p.is_null()).then(|| RedisString::from_redis_module_string(ctx, p))))
    }

    /// Sets (or, with `None`, deletes) hash fields.
    pub fn hash_set(
        &self,
        pairs: &[(&RedisString, Option<&RedisString>)],
    ) -> Result<(), RedisError> {
        for (f, v) in pairs {
            let value = match v {
                Some(v) => v.inner,
                // REDISMODULE_HASH_DELETE is the sentinel pointer 1.
                None => 1usize as *mut RedisModuleString,
            };
            // Safety: as in `hash_get`; the value is a live string or the delete sentinel.
            let rc = unsafe {
                raw::RedisModule_HashSet.ok_or_else(|| reply::internal("HashSet missing"))?(
                    self.inner,
                    raw::REDISMODULE_HASH_NONE as c_int,
                    f.inner,
                    value,
                    null_mut::<RedisModuleString>(),
                )
            };
            // HashSet returns the number of fields updated, 0 included; it cannot fail on an
            // open hash or empty key, which `expect` checked.
            let _ = rc;
        }
        Ok(())
    }

    /// Number of fields of a hash (0 when the key is empty).
    pub fn len(&self) -> u64 {
        // Safety: `inner` is an open key.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(self.inner)) as u64 }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends an entry with an id chosen by Redis (time-based, monotonic) and returns the id.
    pub fn stream_add(
        &self,
        fields: &[&RedisString],
    ) -> Result<raw::RedisModuleStreamID, RedisError> {
        let mut argv: Vec<*mut RedisModuleString> = fields.iter().map(|s| s.inner).collect();
        let mut id = raw::RedisModuleStreamID { ms: 0, seq: 0 };
        // Safety: key is open for writing and empty or a stream; argv holds 2 * numfields live
        // strings; Redis copies them into the stream.
        let rc = unsafe {
            raw::RedisModule_StreamAdd.ok_or_else(|| reply::internal("StreamAdd missing"))?(
                self.inner,
                raw::REDISMODULE_STREAM_ADD_AUTOID as c_int,
                &mut id,
                argv.as_mut_ptr(),
                (argv.len() / 2) as i64,
            )
        };
        if rc != raw::REDISMODULE_OK as c_int {
            return Err(reply::internal(
                "could not append to the reservation stream",
            ));
        }
        Ok(id)
    }

    pub fn delete(&self) {
        // Safety: `inner` is an open key.
        unsafe {
            if let Some(f) = raw::RedisModule_DeleteKey {
                f(self.inner);
            }
        }
    }
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        if !self.inner.is_null() {
            raw::close_key(self.inner);
        }
    }
}

/// Parses an unsigned integer stored by this module.
pub fn to_u64(s: &Option<RedisString>) -> Option<u64> {
    let s = s.as_ref()?;
    let mut v: i64 = 0;
    if raw::string_to_longlong(s.inner, &mut v) == raw::Status::Ok {
        u64::try_from(v).ok()
    } else {
        None
    }
}

pub fn num(ctx: &Context, n: u64) -> RedisString {
    let ctx = ctx.get_raw();
    // Safety: CreateStringFromLongLong copies the number into a new string owned by us.
    let p = unsafe {
        raw::RedisModule_CreateStringFromLongLong.map_or(null_mut(), |f| f(ctx, n as i64))
    };
    RedisString::from_redis_module_string(ctx, p)
}

pub fn string(ctx: &Context, s: &str) -> RedisString {
    RedisString::create(NonNull::new(ctx.get_raw()), s)
}

/// An activity as read from its meta hash.
pub struct Meta {
    pub sale: Sale,
    pub reservations: u64,
    pub product: Option<RedisString>,
    pub price: Option<RedisString>,
}

/// Reads the activity; `Ok(None)` when it does not exist.
pub fn read_meta(meta: &Key) -> Result<Option<Meta>, RedisError> {
    match meta.kind() {
        Kind::Empty => return Ok(None),
        Kind::Hash => {}
        _ => return Err(reply::wrong_type(&meta.name().to_string_lossy())),
    }
    let n = Names::get();
    let [total, remaining, limit, start, end, reservations, product, price] = meta.hash_get([
        &n.total,
        &n.remaining,
        &n.limit,
        &n.start,
        &n.end,
        &n.reservations,
        &n.product,
        &n.price,
    ])?;
    let corrupt = || reply::wrong_type(&meta.name().to_string_lossy());
    Ok(Some(Meta {
        sale: Sale {
            total: to_u64(&total).ok_or_else(corrupt)?,
            remaining: to_u64(&remaining).ok_or_else(corrupt)?,
            limit: to_u64(&limit).ok_or_else(corrupt)?,
            start_ms: to_u64(&start).unwrap_or(0),
            end_ms: to_u64(&end).unwrap_or(0),
        },
        reservations: to_u64(&reservations).unwrap_or(0),
        product,
        price,
    }))
}

/// Propagates a write to replicas and the AOF as the given command.
pub fn replicate(ctx: &Context, command: &str, args: &[&RedisString]) {
    ctx.replicate(command, args);
}

/// Formats a stream id as Redis prints it.
pub fn format_id(id: &raw::RedisModuleStreamID) -> String {
    format!("{}-{}", id.ms, id.seq)
}

/// Parses `<ms>-<seq>` (both parts required: a reservation id is always complete).
pub fn parse_id(raw: &[u8]) -> Option<raw::RedisModuleStreamID> {
    let text = std::str::from_utf8(raw).ok()?;
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some(raw::RedisModuleStreamID {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// Notifies keyspace listeners, as the equivalent core command would.
pub fn notify(ctx: &Context, class: u32, event: &str, key: &RedisString) {
    ctx.notify_keyspace_event(
        redis_module::NotifyEvent::from_bits_truncate(class as i32),
        event,
        key,
    );
}
