//! The `seckbuyrs` data type: an activity's buyers (`seckill:{<id>}:buyers`), a
//! [`BuyerSet`] owned by the module (why not a Redis hash: see `seckill_core::buyers`).
//!
//! Persistence: RDB (and the RDB preamble of a rewritten AOF, full syncs, `DUMP`/`RESTORE`
//! of a slot migration) stores the count, then each user id and quantity. An AOF rewritten
//! without the preamble re-creates the set with the internal `SECKILL.HOLD <key> <user>
//! <qty>`, which is what every change outside RESERVE replicates as, too. A value that does
//! not decode (a user id that is not one, a quantity out of bounds) fails the load: a buyer
//! dropped silently would let a user buy past the limit.

use redis_module::native_types::RedisType;
use redis_module::raw::{self, RedisModuleIO, RedisModuleKey, RedisModuleString};
use seckill_core::buyers::BuyerSet;
use seckill_core::limits::MAX_LIMIT;
use seckill_core::UserId;
use std::ffi::{c_longlong, c_void};

/// Encoding version of the RDB value (bumped when the layout changes; loads check it).
const ENCODING: i32 = 1;

pub static BUYERS_TYPE: RedisType = RedisType::new(
    "seckbuyrs",
    ENCODING,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: None,
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: Some(free_effort),
        unlink: None,
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

/// The registered type, for `ModuleTypeGetType` comparisons and `ModuleTypeSetValue`.
pub fn raw_type() -> *mut raw::RedisModuleType {
    *BUYERS_TYPE.raw_type.borrow()
}

/// A quantity as the set stores it: 1..=MAX_LIMIT (0 means "holds nothing").
pub fn quantity(q: u64) -> Option<u32> {
    (q <= MAX_LIMIT).then(|| u32::try_from(q).ok()).flatten()
}

/// Moves a set into Redis' hands (freed by [`free`]).
pub fn into_raw(set: BuyerSet) -> *mut c_void {
    Box::into_raw(Box::new(set)).cast()
}

unsafe extern "C" fn free(value: *mut c_void) {
    if !value.is_null() {
        // Safety: every value of this type was made by `into_raw`.
        drop(unsafe { Box::from_raw(value.cast::<BuyerSet>()) });
    }
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    // Safety: a live value of this type.
    unsafe { &*value.cast::<BuyerSet>() }.memory_bytes()
}

/// Above Redis' lazy-free threshold (64) a deleted set is freed by a background thread.
unsafe extern "C" fn free_effort(_key: *mut RedisModuleString, value: *const c_void) -> usize {
    // Safety: a live value of this type.
    usize::try_from(unsafe { &*value.cast::<BuyerSet>() }.len()).unwrap_or(usize::MAX)
}

unsafe extern "C" fn copy(
    _from: *mut RedisModuleString,
    _to: *mut RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    // Safety: a live value of this type.
    into_raw(unsafe { &*value.cast::<BuyerSet>() }.clone())
}

unsafe extern "C" fn rdb_save(rdb: *mut RedisModuleIO, value: *mut c_void) {
    // Safety: a live value of this type.
    let set = unsafe { &*value.cast::<BuyerSet>() };
    raw::save_unsigned(rdb, set.len());
    for (user, qty) in set.iter() {
        raw::save_slice(rdb, user.as_bytes());
        raw::save_unsigned(rdb, u64::from(qty));
    }
}

unsafe extern "C" fn rdb_load(rdb: *mut RedisModuleIO, encver: i32) -> *mut c_void {
    match load(rdb, encver) {
        Ok(set) => into_raw(set),
        Err(why) => {
            log_io_warning(rdb, &format!("seckill: buyers value not loaded: {why}"));
            std::ptr::null_mut()
        }
    }
}

fn load(rdb: *mut RedisModuleIO, encver: i32) -> Result<BuyerSet, String> {
    if encver != ENCODING {
        return Err(format!(
            "encoding version {encver}; this module reads {ENCODING} (load it with the module version that saved it)"
        ));
    }
    let n = raw::load_unsigned(rdb).map_err(|e| e.to_string())?;
    let mut set = BuyerSet::new();
    for _ in 0..n {
        let buf = raw::load_string_buffer(rdb).map_err(|e| e.to_string())?;
        let user =
            UserId::parse(buf.as_ref()).map_err(|e| format!("stored user id is not one: {e}"))?;
        let qty = raw::load_unsigned(rdb).map_err(|e| e.to_string())?;
        let qty = quantity(qty)
            .filter(|&q| q > 0)
            .ok_or_else(|| format!("user {user}: stored quantity {qty} out of bounds"))?;
        set.set(user.as_str(), qty);
    }
    Ok(set)
}

unsafe extern "C" fn aof_rewrite(
    aof: *mut RedisModuleIO,
    key: *mut RedisModuleString,
    value: *mut c_void,
) {
    // Safety: a live value of this type.
    let set = unsafe { &*value.cast::<BuyerSet>() };
    // Safety: the API table is filled at load; the format "sbl" takes the key, a buffer
    // (pointer, length) and a long long, all alive during the call.
    let Some(emit) = (unsafe { raw::RedisModule_EmitAOF }) else {
        return;
    };
    for (user, qty) in set.iter() {
        unsafe {
            emit(
                aof,
                c"SECKILL.HOLD".as_ptr(),
                c"sbl".as_ptr(),
                key,
                user.as_ptr(),
                user.len(),
                c_longlong::from(qty),
            );
        }
    }
}

fn log_io_warning(io: *mut RedisModuleIO, msg: &str) {
    let Ok(msg) = std::ffi::CString::new(msg) else {
        return;
    };
    // Safety: the API table is filled at load; "%s" with a NUL-terminated string.
    unsafe {
        if let Some(log) = raw::RedisModule_LogIOError {
            log(io, c"warning".as_ptr(), c"%s".as_ptr(), msg.as_ptr());
        }
    }
}

/// The set a key holds, when the key holds one.
///
/// # Safety
/// `key` must be an open key whose type was checked to be [`BUYERS_TYPE`]; the reference
/// lives while the key stays open and is not written through another path.
pub unsafe fn value_of<'k>(key: *mut RedisModuleKey) -> Option<&'k mut BuyerSet> {
    // Safety: per the contract above.
    unsafe {
        let get = raw::RedisModule_ModuleTypeGetValue?;
        get(key).cast::<BuyerSet>().as_mut()
    }
}
