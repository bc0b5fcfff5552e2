//! `COMMAND DOCS` / `COMMAND INFO` metadata, registered with `RedisModule_SetCommandInfo`
//! (Redis 7.0+).
//!
//! The crate's `#[command]` macro would register the same, but it also sets ACL categories
//! through a 7.2-only API, which Debian's 7.0 refuses; so the info structs are filled here.
//! Every command but the internal HOLD (which names the buyers key itself) declares its
//! activity id argument as its key: the keys it really touches
//! (`seckill:{<id>}...`) carry the id as their hash tag and so sit in the same slot. All but
//! the internal APPLY and HOLD also take an optional trailing `KEYS <meta> <buyers> <stream>
//! <released>` clause, declared by a second key spec (keyword `KEYS` searched backwards from
//! the fifth argument from the end, then four keys), so that Redis Cluster sees the real keys
//! during a slot migration (see `commands::without_keys`).

use redis_module::raw;
use redis_module::Context;
use std::ffi::{c_char, c_int, CString};

struct Arg {
    name: &'static str,
    kind: raw::RedisModuleCommandArgType,
    token: Option<&'static str>,
    optional: bool,
    summary: &'static str,
}

struct Doc {
    name: &'static str,
    summary: &'static str,
    complexity: &'static str,
    arity: c_int,
    key_flags: u64,
    key_notes: &'static str,
    args: Vec<Arg>,
    /// Takes the optional `KEYS <meta> <buyers> <stream> <released>` clause (second key spec).
    keys_clause: bool,
}

const KEY: raw::RedisModuleCommandArgType = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY;
const STRING: raw::RedisModuleCommandArgType =
    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING;
const INTEGER: raw::RedisModuleCommandArgType =
    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER;
const UNIX_TIME: raw::RedisModuleCommandArgType =
    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_UNIX_TIME;

const NOTES: &str = "the activity id; the command touches seckill:{<activity>}, \
                     seckill:{<activity>}:buyers, :stream and :released, all in its slot";
const KEYS_NOTES: &str = "optional: the keys the command touches, named so that Redis Cluster \
                          answers TRYAGAIN or ASK while the activity's slot migrates";
/// The `KEYS` clause's four keys, in order.
const CLAUSE_KEYS: [(&str, &str); 4] = [
    ("meta", "seckill:{<activity>}"),
    ("buyers", "seckill:{<activity>}:buyers"),
    ("stream", "seckill:{<activity>}:stream"),
    ("released", "seckill:{<activity>}:released"),
];

fn activity() -> Arg {
    Arg {
        name: "activity",
        kind: KEY,
        token: None,
        optional: false,
        summary: "activity id",
    }
}

fn option(
    name: &'static str,
    kind: raw::RedisModuleCommandArgType,
    token: &'static str,
    summary: &'static str,
) -> Arg {
    Arg {
        name,
        kind,
        token: Some(token),
        optional: true,
        summary,
    }
}

fn docs() -> Vec<Doc> {
    let rw = (raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE) as u64;
    let ro = (raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS) as u64;
    vec![
        Doc {
            name: "seckill.create",
            summary: "Creates (preheats) a flash-sale activity; refuses to overwrite one that has not ended",
            complexity: "O(1)",
            arity: -4,
            key_flags: rw,
            key_notes: NOTES,
            args: vec![
                activity(),
                Arg { name: "stock", kind: INTEGER, token: Some("STOCK"), optional: false, summary: "units for sale" },
                option("limit", INTEGER, "LIMIT", "most units one user may hold (default 1)"),
                option("start", UNIX_TIME, "START", "window start, unix milliseconds (default: open now)"),
                option("end", UNIX_TIME, "END", "window end, unix milliseconds (default: no end)"),
                option("product", STRING, "PRODUCT", "product id copied into each reservation"),
                option("price", INTEGER, "PRICE", "unit price in cents copied into each reservation"),
            ],
            keys_clause: true,
        },
        Doc {
            name: "seckill.reserve",
            summary: "Atomically checks window, per-user limit and stock, decrements the stock, records the buyer and appends the reservation to the activity's stream. Replies [reservation-id, remaining] or SOLDOUT/LIMIT/NOTSTARTED/ENDED/NOACTIVITY",
            complexity: "O(1)",
            arity: -4,
            key_flags: rw,
            key_notes: NOTES,
            args: vec![
                activity(),
                Arg { name: "user", kind: STRING, token: None, optional: false, summary: "buyer id" },
                Arg { name: "quantity", kind: INTEGER, token: None, optional: false, summary: "units, 1..=LIMIT" },
                option("product", STRING, "PRODUCT", "refuse (ERR, nothing changed) unless the activity sells this product"),
            ],
            keys_clause: true,
        },
        Doc {
            name: "seckill.release",
            summary: "Returns a reservation's stock exactly once, into the sale it was made in; replies the quantity returned (0 when already released, trimmed as final, or made in an earlier sale of a re-created activity)",
            complexity: "O(log N) with N the stream's length",
            arity: -3,
            key_flags: rw,
            key_notes: NOTES,
            args: vec![
                activity(),
                Arg { name: "reservation-id", kind: STRING, token: None, optional: false, summary: "id replied by SECKILL.RESERVE" },
            ],
            keys_clause: true,
        },
        Doc {
            name: "seckill.apply",
            summary: "Internal: the replicated effect of a SECKILL.RESERVE (stream entry with its id, buyer, counters), applied without time checks; accepted only from the replication link or while loading the AOF, refused to clients",
            complexity: "O(1)",
            arity: 8,
            key_flags: rw,
            key_notes: NOTES,
            args: vec![
                activity(),
                Arg { name: "reservation-id", kind: STRING, token: None, optional: false, summary: "stream entry id" },
                Arg { name: "user", kind: STRING, token: None, optional: false, summary: "buyer id" },
                Arg { name: "quantity", kind: INTEGER, token: None, optional: false, summary: "units" },
                Arg { name: "ts", kind: UNIX_TIME, token: None, optional: false, summary: "reservation time, unix ms" },
                Arg { name: "remaining", kind: INTEGER, token: None, optional: false, summary: "stock left after it" },
                Arg { name: "reservations", kind: INTEGER, token: None, optional: false, summary: "live reservations after it" },
            ],
            keys_clause: false,
        },
        Doc {
            name: "seckill.status",
            summary: "Total, remaining, reserved, buyers, window, state (pending/open/sold-out/ended), sale boundary (sale-from) and trim point (trimmed-below) of an activity",
            complexity: "O(1)",
            arity: -2,
            key_flags: ro,
            key_notes: NOTES,
            args: vec![activity()],
            keys_clause: true,
        },
        Doc {
            name: "seckill.held",
            summary: "Units a user holds in an activity (0 when none): the buyer's mark that RESERVE sets and RELEASE clears",
            complexity: "O(1)",
            arity: -3,
            key_flags: ro,
            key_notes: NOTES,
            args: vec![
                activity(),
                Arg { name: "user", kind: STRING, token: None, optional: false, summary: "buyer id" },
            ],
            keys_clause: true,
        },
        Doc {
            name: "seckill.buyers",
            summary: "Every buyer of an activity with the units held, as a flat array user, units, ...",
            complexity: "O(N) with N the number of buyers",
            arity: -2,
            key_flags: ro,
            key_notes: NOTES,
            args: vec![activity()],
            keys_clause: true,
        },
        Doc {
            name: "seckill.hold",
            summary: "Internal: sets the units users hold in a buyers key (0 removes the user), the replicated effect of a SECKILL.RELEASE and how an AOF rewritten without the RDB preamble restores buyers; accepted only from the replication link or while loading the AOF, refused to clients",
            complexity: "O(N) with N the number of pairs",
            arity: -4,
            key_flags: rw,
            key_notes: "the activity's buyers key, seckill:{<activity>}:buyers",
            args: vec![
                Arg { name: "buyers-key", kind: KEY, token: None, optional: false, summary: "seckill:{<activity>}:buyers" },
                Arg { name: "user", kind: STRING, token: None, optional: false, summary: "buyer id" },
                Arg { name: "units", kind: INTEGER, token: None, optional: false, summary: "units held, 0 removes the user" },
            ],
            keys_clause: false,
        },
        Doc {
            name: "seckill.trim",
            summary: "Removes the activity's stream entries below min-id (reservations that are final: paid, or cancelled/expired and released) and their release markers, and records min-id as the trim point (it only moves up); replies the number of entries removed",
            complexity: "O(M) with M the number of entries removed",
            arity: -3,
            // As XTRIM's: Redis refuses a key spec that both updates and deletes.
            key_flags: (raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_DELETE) as u64,
            key_notes: NOTES,
            args: vec![
                activity(),
                Arg { name: "min-id", kind: STRING, token: None, optional: false, summary: "<ms>-<seq>: every reservation below it is final" },
            ],
            keys_clause: true,
        },
    ]
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|e| e.to_string())
}

pub fn register(ctx: &Context) -> Result<(), String> {
    // Safety: the API table is filled once when the module loads, before `init` runs.
    let (Some(get_command), Some(set_info)) =
        (unsafe { (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo) })
    else {
        return Err("this Redis has no SetCommandInfo (needs 7.0+)".into());
    };
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let since = cstr("0.1.0")?;
    let keys_token = cstr("KEYS")?;
    let keys_name = cstr("keys")?;
    let keys_notes = cstr(KEYS_NOTES)?;
    let clause_strings: Vec<(CString, CString)> = CLAUSE_KEYS
        .iter()
        .map(|(n, s)| Ok((cstr(n)?, cstr(s)?)))
        .collect::<Result<_, String>>()?;
    for doc in docs() {
        // Every CString below outlives the SetCommandInfo call, which copies what it keeps.
        let name = cstr(doc.name)?;
        let summary = cstr(doc.summary)?;
        let complexity = cstr(doc.complexity)?;
        let notes = cstr(doc.key_notes)?;
        let strings: Vec<(CString, Option<CString>, CString)> = doc
            .args
            .iter()
            .map(|a| {
                Ok((
                    cstr(a.name)?,
                    a.token.map(cstr).transpose()?,
                    cstr(a.summary)?,
                ))
            })
            .collect::<Result<_, String>>()?;
        // Safety: all-zero is a valid value of these plain C structs (null pointers, zero
        // enums); a zeroed trailing element terminates each array as the API requires.
        let mut key_specs: Vec<raw::RedisModuleCommandKeySpec> =
            vec![unsafe { std::mem::zeroed() }; 3];
        key_specs[0].notes = notes.as_ptr();
        key_specs[0].flags = doc.key_flags;
        key_specs[0].begin_search_type =
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
        key_specs[0].bs.index.pos = 1;
        key_specs[0].find_keys_type =
            raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
        key_specs[0].fk.range.lastkey = 0;
        key_specs[0].fk.range.keystep = 1;
        key_specs[0].fk.range.limit = 0;
        if doc.keys_clause {
            key_specs[1].notes = keys_notes.as_ptr();
            key_specs[1].flags = doc.key_flags;
            key_specs[1].begin_search_type =
                raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
            key_specs[1].bs.keyword.keyword = keys_token.as_ptr();
            // Backwards from the fifth argument from the end: the clause is always last.
            key_specs[1].bs.keyword.startfrom = -5;
            key_specs[1].find_keys_type =
                raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
            key_specs[1].fk.range.lastkey = 3;
            key_specs[1].fk.range.keystep = 1;
            key_specs[1].fk.range.limit = 0;
        } else {
            key_specs.truncate(2);
        }
        let mut args: Vec<raw::RedisModuleCommandArg> =
            vec![unsafe { std::mem::zeroed() }; doc.args.len() + 2];
        for (i, (a, (n, t, s))) in doc.args.iter().zip(&strings).enumerate() {
            args[i].name = n.as_ptr();
            args[i].type_ = a.kind;
            args[i].key_spec_index = if a.kind == KEY { 0 } else { -1 };
            args[i].token = t.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
            args[i].summary = s.as_ptr();
            args[i].since = since.as_ptr();
            args[i].flags = if a.optional {
                raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int
            } else {
                0
            };
        }
        // The KEYS clause: an optional block of the token and four keys of the second spec.
        let mut clause: Vec<raw::RedisModuleCommandArg> =
            vec![unsafe { std::mem::zeroed() }; CLAUSE_KEYS.len() + 1];
        for (arg, (n, s)) in clause.iter_mut().zip(&clause_strings) {
            arg.name = n.as_ptr();
            arg.type_ = KEY;
            arg.key_spec_index = 1;
            arg.summary = s.as_ptr();
            arg.since = since.as_ptr();
        }
        let block = doc.args.len();
        if doc.keys_clause {
            args[block].name = keys_name.as_ptr();
            args[block].type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK;
            args[block].key_spec_index = -1;
            args[block].token = keys_token.as_ptr();
            args[block].summary = keys_notes.as_ptr();
            args[block].since = since.as_ptr();
            args[block].flags = raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int;
            args[block].subargs = clause.as_mut_ptr();
        } else {
            args.truncate(block + 1);
        }
        let mut info = raw::RedisModuleCommandInfo {
            version: &version,
            summary: summary.as_ptr(),
            complexity: complexity.as_ptr(),
            since: since.as_ptr(),
            history: std::ptr::null_mut(),
            tips: std::ptr::null(),
            arity: doc.arity,
            key_specs: key_specs.as_mut_ptr(),
            args: args.as_mut_ptr(),
        };
        // Safety: the command was registered by `redis_module!` before `init` runs; every
        // pointer in `info` is live for the duration of the call.
        unsafe {
            let command = get_command(ctx.get_raw(), name.as_ptr() as *const c_char);
            if command.is_null() {
                return Err(format!("command {} is not registered", doc.name));
            }
            if set_info(command, std::ptr::addr_of_mut!(info)) != raw::REDISMODULE_OK as c_int {
                return Err(format!("Redis refused the info of {}", doc.name));
            }
        }
    }
    Ok(())
}
