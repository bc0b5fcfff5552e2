//! One file per command: `parse` turns arguments into a typed request, `apply` runs it.

pub mod buyers;
pub mod create;
pub mod release;
pub mod reserve;
pub mod status;
pub mod trim;

use crate::reply;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use seckill_core::{keys, ActivityId};

pub(crate) fn activity_arg(raw: &RedisString) -> Result<ActivityId, RedisError> {
    ActivityId::parse(raw.as_slice()).map_err(reply::arg)
}

pub(crate) fn now_ms() -> u64 {
    // Safe: RedisModule_Milliseconds is set once the module is loaded and takes no arguments.
    let ms = unsafe { redis_module::raw::RedisModule_Milliseconds.map_or(0, |f| f()) };
    u64::try_from(ms).unwrap_or(0)
}

/// Strips the optional trailing `KEYS <meta> <buyers> <stream> <released>` clause and checks
/// that it names exactly the activity's keys; returns the arguments without it.
///
/// The clause exists for Redis Cluster: every command declares the activity id as its key,
/// and that key never exists, so during a slot migration Redis would ASK the command over to
/// the importing node before the activity's real keys had moved, and a RESERVE there would
/// split the sale over two nodes. Declaring the real keys too (a second key spec: keyword
/// `KEYS`, then four keys) lets Redis answer TRYAGAIN (some keys moved, some not) or ASK until
/// the whole activity has moved. Without the clause the commands are what SPEC.md says.
///
/// The clause is recognised only as the last five arguments, after the activity id (as the
/// key spec's backward keyword search does), so a user or product named `KEYS` elsewhere is
/// still an ordinary argument.
pub(crate) fn without_keys(args: &[RedisString]) -> Result<&[RedisString], RedisError> {
    let n = args.len();
    if !has_keys_clause(args) {
        return Ok(args);
    }
    let activity = activity_arg(&args[1])?;
    // Compared in place (this runs on every clustered RESERVE): `seckill:{<id>}<suffix>`.
    let names = |key: &[u8], suffix: &str| {
        key.strip_prefix(b"seckill:{")
            .and_then(|k| k.strip_prefix(activity.as_str().as_bytes()))
            .and_then(|k| k.strip_prefix(b"}"))
            == Some(suffix.as_bytes())
    };
    let given = &args[n - 4..];
    let suffixes = ["", ":buyers", ":stream", ":released"];
    if !given
        .iter()
        .zip(suffixes)
        .all(|(g, suffix)| names(g.as_slice(), suffix))
    {
        return Err(reply::arg(format_args!(
            "KEYS must name the activity's keys, in this order: {} {} {} {}",
            keys::meta(&activity),
            keys::buyers(&activity),
            keys::stream(&activity),
            keys::released(&activity),
        )));
    }
    Ok(&args[..n - 5])
}

/// Whether the last five arguments are a `KEYS` clause (see [`without_keys`]).
fn has_keys_clause(args: &[RedisString]) -> bool {
    let n = args.len();
    n >= 7 && args[n - 5].as_slice().eq_ignore_ascii_case(b"KEYS")
}

/// Answers Redis' "which arguments are keys?" question (the commands are registered with
/// `getkeys-api`): the activity id, and the `KEYS` clause's four keys when present.
///
/// Redis 7.0 routes cluster commands by the keys `getKeysFromCommand` finds, which for a
/// command without this API is only the legacy first/last/step range (the activity id): the
/// second key spec alone would show in `COMMAND GETKEYS` but not stop a migrating slot from
/// ASKing the command over to the importing node. Newer Redis reads the key specs, which
/// say the same as this.
pub(crate) fn report_keys(ctx: &Context, args: &[RedisString]) -> RedisResult {
    if args.len() >= 2 {
        ctx.key_at_pos(1);
    }
    if has_keys_clause(args) {
        for pos in args.len() - 4..args.len() {
            ctx.key_at_pos(pos as i32);
        }
    }
    Ok(RedisValue::NoReply)
}
