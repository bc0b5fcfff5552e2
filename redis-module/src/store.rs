//! Typed access to an activity's keys through Redis' low-level key API.
//!
//! The safe wrappers of `redis-module` allocate a string per field name on every access;
//! `SECKILL.RESERVE` is the hottest command of the system, so field names are interned once at
//! load time and hashes are read and written with one variadic `HashGet`/`HashSet` each. All
//! `unsafe` of the module lives in this file, next to the invariants that make it sound: the
//! Redis GIL is held (every function takes the command's `Context`) and every pointer handed
//! to Redis is either a live `RedisString` or a key opened here and closed on drop.

use crate::buyers;
use crate::reply;
use redis_module::raw::{self, RedisModuleKey, RedisModuleString};
use redis_module::{Context, RedisError, RedisString, RedisValue};
use seckill_core::buyers::BuyerSet;
use seckill_core::keys;
use seckill_core::record;
use seckill_core::{ActivityId, StreamId};
use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::OnceLock;

/// Field names created once and never freed, shared by every command call.
pub struct Names {
    pub product: RedisString,
    pub price: RedisString,
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
                product: s(seckill_core::entry::field::PRODUCT),
                price: s(seckill_core::entry::field::PRICE),
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

/// The key names of one activity (see `seckill_core::keys`).
pub struct ActivityKeys {
    pub meta: RedisString,
    pub buyers: RedisString,
    pub stream: RedisString,
}

impl ActivityKeys {
    pub fn new(ctx: &Context, id: &ActivityId) -> Self {
        Self {
            meta: key_name(ctx, id, ""),
            buyers: key_name(ctx, id, ":buyers"),
            stream: key_name(ctx, id, ":stream"),
        }
    }

    pub fn released(ctx: &Context, id: &ActivityId) -> RedisString {
        key_name(ctx, id, ":released")
    }
}

/// What RESERVE needs of an activity on every call, made once and kept: its key names and
/// the entry's product and price strings. Each is a Redis allocation (and its accounting)
/// per call otherwise, a tenth of a reservation's cost.
///
/// Kept per thread (commands run on Redis' main thread), created without a context so they
/// outlive the call that made them, and bounded: the table is emptied when it holds
/// [`HOT_MAX`] activities. Product and price are checked against the record on every use,
/// so a re-created activity selling something else gets fresh strings.
pub struct Hot {
    pub keys: ActivityKeys,
    entry: std::cell::RefCell<Option<EntryStrings>>,
}

/// The product and price an entry was made for, and their strings.
struct EntryStrings {
    product: Vec<u8>,
    price: u64,
    product_s: RedisString,
    price_s: RedisString,
}

const HOT_MAX: usize = 4096;

thread_local! {
    static HOT: std::cell::RefCell<std::collections::HashMap<ActivityId, std::rc::Rc<Hot>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl Hot {
    pub fn get(id: &ActivityId) -> std::rc::Rc<Hot> {
        HOT.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(hot) = cache.get(id) {
                return hot.clone();
            }
            if cache.len() >= HOT_MAX {
                cache.clear();
            }
            let null = null_mut();
            let hot = std::rc::Rc::new(Hot {
                keys: ActivityKeys {
                    meta: key_name_raw(null, id, ""),
                    buyers: key_name_raw(null, id, ":buyers"),
                    stream: key_name_raw(null, id, ":stream"),
                },
                entry: std::cell::RefCell::new(None),
            });
            cache.insert(id.clone(), hot.clone());
            hot
        })
    }

    /// The entry's product and price strings for `product` and `price` (the record's).
    pub fn entry_strings(
        &self,
        ctx: &Context,
        product: &[u8],
        price: u64,
    ) -> (RedisString, RedisString) {
        let mut entry = self.entry.borrow_mut();
        match &*entry {
            Some(e) if e.product == product && e.price == price => {
                (e.product_s.safe_clone(ctx), e.price_s.safe_clone(ctx))
            }
            _ => {
                let e = EntryStrings {
                    product: product.to_vec(),
                    price,
                    product_s: RedisString::create_from_slice(null_mut(), product),
                    price_s: num_raw(null_mut(), price),
                };
                let out = (e.product_s.safe_clone(ctx), e.price_s.safe_clone(ctx));
                *entry = Some(e);
                out
            }
        }
    }
}

/// `seckill:{<id>}<suffix>`, built on the stack: this runs several times per reservation.
fn key_name(ctx: &Context, id: &ActivityId, suffix: &str) -> RedisString {
    key_name_raw(ctx.get_raw(), id, suffix)
}

fn key_name_raw(ctx: *mut raw::RedisModuleCtx, id: &ActivityId, suffix: &str) -> RedisString {
    let mut buf = [0u8; 96];
    let parts: [&[u8]; 4] = [
        b"seckill:{",
        id.as_str().as_bytes(),
        b"}",
        suffix.as_bytes(),
    ];
    let mut len = 0;
    for p in parts {
        buf[len..len + p.len()].copy_from_slice(p);
        len += p.len();
    }
    debug_assert_eq!(
        &buf[..len],
        keys::meta(id)
            .into_bytes()
            .into_iter()
            .chain(suffix.bytes())
            .collect::<Vec<_>>()
            .as_slice()
    );
    RedisString::create_from_slice(ctx, &buf[..len])
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Empty,
    Hash,
    Stream,
    String,
    /// The module's buyer set ([`buyers::BUYERS_TYPE`]).
    Buyers,
    Other,
}

/// A hash's fields split by [`Key::hash_split_by_id`].
#[derive(Default)]
pub struct IdSplit {
    /// Names of the fields that are stream ids below the bound.
    pub below: Vec<Vec<u8>>,
    /// Every other field, with its value.
    pub kept: Vec<(Vec<u8>, Vec<u8>)>,
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

    /// Opens for reading only (read-only commands, which also run on replicas).
    pub fn open_read(ctx: &'a Context, name: &'a RedisString) -> Self {
        let inner = raw::open_key(ctx.get_raw(), name.inner, raw::KeyMode::READ);
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
            raw::REDISMODULE_KEYTYPE_STRING => Kind::String,
            raw::REDISMODULE_KEYTYPE_MODULE if self.holds_buyer_set() => Kind::Buyers,
            _ => Kind::Other,
        }
    }

    fn holds_buyer_set(&self) -> bool {
        // Safety: `inner` is an open key holding a module value.
        let t = unsafe { raw::RedisModule_ModuleTypeGetType.map(|f| f(self.inner)) };
        t == Some(buyers::raw_type())
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
                None => std::ptr::without_provenance_mut::<RedisModuleString>(1),
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

    /// Whether the key does not exist (Redis removes emptied hashes; the module removes an
    /// emptied buyer set, see [`Key::set_held`]).
    pub fn is_empty(&self) -> bool {
        self.kind() == Kind::Empty
    }

    /// Fails with `WRONGTYPE` unless the key can hold an activity's buyers: empty, the
    /// module's set, or a hash (what versions before the set wrote; converted on first write).
    pub fn expect_buyers(&self) -> Result<(), RedisError> {
        match self.kind() {
            Kind::Empty | Kind::Buyers | Kind::Hash => Ok(()),
            _ => Err(reply::wrong_type(&self.name.to_string_lossy())),
        }
    }

    /// Units `user` holds in a buyers key (0 when none).
    pub fn held(&self, user: &str) -> Result<u64, RedisError> {
        match self.kind() {
            Kind::Empty => Ok(0),
            // Safety: the kind was just checked; the reference does not outlive this call.
            Kind::Buyers => {
                Ok(unsafe { buyers::value_of(self.inner) }
                    .map_or(0, |set| u64::from(set.held(user))))
            }
            Kind::Hash => {
                let field = string(self.ctx, user);
                let [v] = self.hash_get([&field])?;
                Ok(to_u64(&v).unwrap_or(0))
            }
            _ => Err(reply::wrong_type(&self.name.to_string_lossy())),
        }
    }

    /// Number of users holding units in a buyers key.
    pub fn buyer_count(&self) -> Result<u64, RedisError> {
        match self.kind() {
            Kind::Empty => Ok(0),
            // Safety: as in `held`.
            Kind::Buyers => Ok(unsafe { buyers::value_of(self.inner) }.map_or(0, |s| s.len())),
            Kind::Hash => Ok(self.len()),
            _ => Err(reply::wrong_type(&self.name.to_string_lossy())),
        }
    }

    /// Every `(user, units)` of a buyers key.
    pub fn buyer_list(&self) -> Result<Vec<(Vec<u8>, u64)>, RedisError> {
        match self.kind() {
            Kind::Empty => Ok(Vec::new()),
            // Safety: as in `held`.
            Kind::Buyers => Ok(unsafe { buyers::value_of(self.inner) }.map_or_else(
                Vec::new,
                |s| {
                    s.iter()
                        .map(|(u, q)| (u.as_bytes().to_vec(), u64::from(q)))
                        .collect()
                },
            )),
            Kind::Hash => {
                let mut out = Vec::new();
                self.scan_hash(|f, v| {
                    let q = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                    out.push((f.to_vec(), q.unwrap_or(0)));
                })?;
                Ok(out)
            }
            _ => Err(reply::wrong_type(&self.name.to_string_lossy())),
        }
    }

    /// The buyer set of a key open for writing: created when the key is empty, converted
    /// from a hash written by an earlier version (same users and quantities; the conversion
    /// is deterministic, so a replica or an AOF replay converts the same way).
    pub fn buyers_mut(&mut self) -> Result<&mut BuyerSet, RedisError> {
        let fresh = match self.kind() {
            Kind::Buyers => None,
            Kind::Empty => Some(BuyerSet::new()),
            Kind::Hash => {
                let mut set = BuyerSet::new();
                let mut bad = None;
                self.scan_hash(|f, v| {
                    let user = std::str::from_utf8(f).ok();
                    let qty = std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        .and_then(buyers::quantity);
                    match (user, qty) {
                        (Some(u), Some(q)) => set.set(u, q),
                        _ => bad = Some(String::from_utf8_lossy(f).into_owned()),
                    }
                })?;
                if let Some(user) = bad {
                    return Err(reply::internal(format_args!(
                        "{}: buyer '{user}' holds no valid quantity; fix or remove the field before selling",
                        self.name.to_string_lossy()
                    )));
                }
                Some(set)
            }
            _ => return Err(reply::wrong_type(&self.name.to_string_lossy())),
        };
        if let Some(set) = fresh {
            // Safety: the key is open for writing; the value is handed over to Redis, which
            // frees the previous value (the hash) and later this one through the type's `free`.
            let rc = unsafe {
                raw::RedisModule_ModuleTypeSetValue
                    .ok_or_else(|| reply::internal("ModuleTypeSetValue missing"))?(
                    self.inner,
                    buyers::raw_type(),
                    buyers::into_raw(set),
                )
            };
            if rc != raw::REDISMODULE_OK as c_int {
                return Err(reply::internal("could not store the buyer set"));
            }
        }
        // Safety: the key now holds a buyer set; the borrow of `self` keeps the key open and
        // unused elsewhere while the reference lives.
        unsafe { buyers::value_of(self.inner) }
            .ok_or_else(|| reply::internal("buyer set missing after it was stored"))
    }

    /// Sets the units `user` holds (0 removes the user); an emptied set is deleted, as Redis
    /// deletes an emptied hash.
    pub fn set_held(&mut self, user: &str, qty: u32) -> Result<(), RedisError> {
        if qty == 0 && self.kind() == Kind::Empty {
            return Ok(());
        }
        let set = self.buyers_mut()?;
        set.set(user, qty);
        if set.is_empty() {
            self.delete();
        }
        Ok(())
    }

    /// Appends an entry and returns its id: chosen by Redis (time-based, monotonic) when `id`
    /// is `None`, or exactly `id` when replaying an effect.
    pub fn stream_add(
        &self,
        id: Option<raw::RedisModuleStreamID>,
        fields: &[&RedisString; 12],
    ) -> Result<raw::RedisModuleStreamID, RedisError> {
        let mut argv: [*mut RedisModuleString; 12] = fields.map(|s| s.inner);
        let (flags, mut id) = match id {
            Some(id) => (0, id),
            None => (
                raw::REDISMODULE_STREAM_ADD_AUTOID as c_int,
                raw::RedisModuleStreamID { ms: 0, seq: 0 },
            ),
        };
        // Safety: key is open for writing and empty or a stream; argv holds 2 * numfields live
        // strings; Redis copies them into the stream.
        let rc = unsafe {
            raw::RedisModule_StreamAdd.ok_or_else(|| reply::internal("StreamAdd missing"))?(
                self.inner,
                flags,
                &mut id,
                argv.as_mut_ptr(),
                (argv.len() / 2) as i64,
            )
        };
        if rc != raw::REDISMODULE_OK as c_int {
            return Err(reply::internal(
                "could not append to the reservation stream (id not above the last one?)",
            ));
        }
        Ok(id)
    }

    /// Splits a hash's fields by their names read as stream ids: names below `below` (as
    /// stored, so a legacy non-canonical spelling is found too) and every other field with
    /// its value. Both empty for an empty key.
    ///
    /// Walks the whole hash with `RedisModule_ScanKey`: cheaper than walking the trimmed
    /// stream entries, since only released reservations have a field. Nothing is deleted
    /// here: deleting from a small (listpack) hash while it is scanned is not safe.
    pub fn hash_split_by_id(&self, below: StreamId) -> Result<IdSplit, RedisError> {
        let mut split = IdSplit::default();
        self.scan_hash(|name, value| {
            if StreamId::parse(name).is_ok_and(|id| id < below) {
                split.below.push(name.to_vec());
            } else {
                split.kept.push((name.to_vec(), value.to_vec()));
            }
        })?;
        Ok(split)
    }

    /// Calls `f` with every field and value of a hash (nothing for any other kind).
    ///
    /// Walks the hash with `RedisModule_ScanKey`. Nothing may be deleted while it runs:
    /// deleting from a small (listpack) hash while it is scanned is not safe.
    fn scan_hash<F: FnMut(&[u8], &[u8])>(&self, f: F) -> Result<(), RedisError> {
        struct Visit<V> {
            f: V,
        }
        fn bytes<'s>(s: *mut RedisModuleString) -> Option<&'s [u8]> {
            let mut len = 0usize;
            // Safety: `s` is a live string owned by Redis for the duration of the callback;
            // the slice is used only inside it.
            unsafe {
                let p = raw::RedisModule_StringPtrLen?(s, &mut len);
                (!p.is_null()).then(|| std::slice::from_raw_parts(p.cast::<u8>(), len))
            }
        }
        unsafe extern "C" fn visit<F: FnMut(&[u8], &[u8])>(
            _key: *mut RedisModuleKey,
            field: *mut RedisModuleString,
            value: *mut RedisModuleString,
            data: *mut c_void,
        ) {
            // Safety: `data` is the `Visit` passed to ScanKey below, alive for the scan.
            let acc = unsafe { &mut *data.cast::<Visit<F>>() };
            if let (Some(name), Some(value)) = (bytes(field), bytes(value)) {
                (acc.f)(name, value);
            }
        }

        if self.kind() != Kind::Hash {
            return Ok(());
        }
        // Safety: the API table is filled when the module loads.
        let (Some(create), Some(scan), Some(destroy)) = (unsafe {
            (
                raw::RedisModule_ScanCursorCreate,
                raw::RedisModule_ScanKey,
                raw::RedisModule_ScanCursorDestroy,
            )
        }) else {
            return Err(reply::internal("ScanKey API missing"));
        };
        let mut acc = Visit { f };
        // Safety: the key is open and holds a hash, nothing modifies it during the scan, and
        // the cursor is destroyed before returning.
        unsafe {
            let cursor = create();
            while scan(
                self.inner,
                cursor,
                Some(visit::<F>),
                std::ptr::addr_of_mut!(acc).cast::<c_void>(),
            ) != 0
            {}
            destroy(cursor);
        }
        Ok(())
    }

    /// Removes the stream's entries below `min` exactly (`XTRIM MINID` without `~`); returns
    /// how many were removed.
    pub fn stream_trim(&self, min: StreamId) -> Result<u64, RedisError> {
        if self.kind() != Kind::Stream {
            return Ok(0);
        }
        let mut id = raw_id(min);
        // Safety: the key is open for writing and holds a stream; flags 0 = exact trim.
        let removed = unsafe {
            raw::RedisModule_StreamTrimByID
                .ok_or_else(|| reply::internal("StreamTrimByID missing"))?(
                self.inner, 0, &mut id
            )
        };
        u64::try_from(removed).map_err(|_| reply::internal("could not trim the reservation stream"))
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
    num_raw(ctx.get_raw(), n)
}

fn num_raw(ctx: *mut raw::RedisModuleCtx, n: u64) -> RedisString {
    // Safety: CreateStringFromLongLong copies the number into a new string owned by us.
    let p = unsafe {
        raw::RedisModule_CreateStringFromLongLong.map_or(null_mut(), |f| f(ctx, n as i64))
    };
    RedisString::from_redis_module_string(ctx, p)
}

pub fn string(ctx: &Context, s: &str) -> RedisString {
    RedisString::create_from_slice(ctx.get_raw(), s.as_bytes())
}

/// The activity record of an open meta key, in place: `Ok(None)` when the activity does not
/// exist. With `write`, changes to the slice are changes to the stored value.
///
/// The slice borrows the key mutably: Redis keeps the pointer valid until the key is closed
/// or used again, and the borrow forbids both.
pub fn record<'k>(meta: &'k mut Key, write: bool) -> Result<Option<&'k mut [u8]>, RedisError> {
    match meta.kind() {
        Kind::Empty => return Ok(None),
        Kind::String => {}
        _ => return Err(reply::wrong_type(&meta.name().to_string_lossy())),
    }
    let mode = if write {
        raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
    } else {
        raw::REDISMODULE_READ
    };
    let mut len: usize = 0;
    // Safety: the key is open and holds a string; StringDMA returns a pointer to its `len`
    // bytes (unshared first when writing), valid while the key stays open and untouched.
    let buf = unsafe {
        let f = raw::RedisModule_StringDMA.ok_or_else(|| reply::internal("StringDMA missing"))?;
        let p = f(meta.inner, &mut len, mode as c_int);
        if p.is_null() {
            return Err(reply::wrong_type(&meta.name().to_string_lossy()));
        }
        std::slice::from_raw_parts_mut(p.cast::<u8>(), len)
    };
    if !record::is_record(buf) {
        return Err(reply::wrong_type(&meta.name().to_string_lossy()));
    }
    Ok(Some(buf))
}

/// Stores a whole record (creating or replacing the key's value).
pub fn set_record(ctx: &Context, meta: &Key, bytes: &[u8]) -> Result<RedisString, RedisError> {
    let value = RedisString::create_from_slice(ctx.get_raw(), bytes);
    // Safety: the key is open for writing; StringSet copies the value.
    let rc = unsafe {
        raw::RedisModule_StringSet.ok_or_else(|| reply::internal("StringSet missing"))?(
            meta.inner,
            value.inner,
        )
    };
    if rc != raw::REDISMODULE_OK as c_int {
        return Err(reply::internal("could not store the activity record"));
    }
    Ok(value)
}

/// Propagates a write to replicas and the AOF as the given command.
///
/// Calls `RedisModule_Replicate` with the `v` format (a vector of strings, retained, not
/// copied) rather than the crate's helper, which allocates a C string and an argument vector
/// on every call of the hot path.
pub fn replicate(ctx: &Context, command: &CStr, args: &[&RedisString]) {
    let mut argv: [*mut RedisModuleString; 16] = [null_mut(); 16];
    let n = args.len().min(argv.len());
    debug_assert!(
        args.len() <= argv.len(),
        "replicate supports up to 16 arguments"
    );
    for (slot, a) in argv.iter_mut().zip(args) {
        *slot = a.inner;
    }
    // Safety: `command` and the format are NUL-terminated; argv holds `n` live strings.
    unsafe {
        if let Some(f) = raw::RedisModule_Replicate {
            f(
                ctx.get_raw(),
                command.as_ptr(),
                c"v".as_ptr(),
                argv.as_mut_ptr(),
                n,
            );
        }
    }
}

/// A stream id as a Redis string, `<ms>-<seq>`, formatted on the stack.
pub fn stream_id_string(ctx: &Context, id: &raw::RedisModuleStreamID) -> RedisString {
    use std::io::Write;
    let mut buf = [0u8; 48];
    let mut w = std::io::Cursor::new(&mut buf[..]);
    // Two u64 and a dash fit in 41 bytes: the write cannot fail.
    let _ = write!(w, "{}-{}", id.ms, id.seq);
    let len = usize::try_from(w.position()).unwrap_or(0);
    RedisString::create_from_slice(ctx.get_raw(), &buf[..len])
}

pub fn raw_id(id: StreamId) -> raw::RedisModuleStreamID {
    raw::RedisModuleStreamID {
        ms: id.ms,
        seq: id.seq,
    }
}

/// The last id the stream generated (`XINFO STREAM`'s `last-generated-id`), `None` when the
/// stream does not exist. Not the last entry's id: entries may have been trimmed or deleted,
/// and the next entry's id is above this one whatever happened to them.
///
/// The module API has no call for it, so this asks `XINFO`; only CREATE and TRIM need it.
pub fn stream_last_generated(
    ctx: &Context,
    name: &RedisString,
) -> Result<Option<StreamId>, RedisError> {
    {
        let key = Key::open_read(ctx, name);
        match key.kind() {
            Kind::Empty => return Ok(None),
            Kind::Stream => {}
            _ => return Err(reply::wrong_type(&name.to_string_lossy())),
        }
    }
    let sub = string(ctx, "STREAM");
    let info = ctx.call("XINFO", &[&sub, name][..])?;
    let RedisValue::Array(items) = info else {
        return Err(reply::internal("XINFO STREAM did not reply with an array"));
    };
    let text = |v: &RedisValue| match v {
        RedisValue::SimpleString(s) => Some(s.as_bytes().to_vec()),
        RedisValue::BulkString(s) => Some(s.as_bytes().to_vec()),
        RedisValue::StringBuffer(b) => Some(b.clone()),
        RedisValue::BulkRedisString(s) => Some(s.as_slice().to_vec()),
        _ => None,
    };
    items
        .chunks(2)
        .find(|pair| text(&pair[0]).as_deref() == Some(b"last-generated-id"))
        .and_then(|pair| pair.get(1).and_then(text))
        .and_then(|raw| StreamId::parse(raw).ok())
        .map(Some)
        .ok_or_else(|| reply::internal("XINFO STREAM has no last-generated-id"))
}

/// Notifies keyspace listeners, as the equivalent core command would.
pub fn notify(ctx: &Context, class: u32, event: &str, key: &RedisString) {
    ctx.notify_keyspace_event(
        redis_module::NotifyEvent::from_bits_truncate(class as i32),
        event,
        key,
    );
}
