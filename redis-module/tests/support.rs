//! Helpers shared by the module's integration tests (included with `mod support;`).
#![allow(dead_code)]

use redis::{Connection, RedisResult, Value};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn create(con: &mut Connection, activity: &str, args: &[&str]) -> RedisResult<String> {
    redis::cmd("SECKILL.CREATE")
        .arg(activity)
        .arg(args)
        .query(con)
}

pub(crate) fn reserve(
    con: &mut Connection,
    activity: &str,
    user: &str,
    qty: &str,
) -> RedisResult<(String, i64)> {
    redis::cmd("SECKILL.RESERVE")
        .arg(activity)
        .arg(user)
        .arg(qty)
        .query(con)
}

pub(crate) fn release(con: &mut Connection, activity: &str, rid: &str) -> RedisResult<i64> {
    redis::cmd("SECKILL.RELEASE")
        .arg(activity)
        .arg(rid)
        .query(con)
}

pub(crate) fn trim(con: &mut Connection, activity: &str, min_id: &str) -> RedisResult<i64> {
    redis::cmd("SECKILL.TRIM")
        .arg(activity)
        .arg(min_id)
        .query(con)
}

/// The machine-readable code of an error reply (`SOLDOUT`, `ERR`, ...).
pub(crate) fn code(err: &redis::RedisError) -> String {
    err.code().unwrap_or("").to_owned()
}

/// `<ms>-<seq>` as a comparable pair (the test's own parser, independent of the module's).
pub(crate) fn id_pair(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("stream id has a '-'");
    (
        ms.parse().expect("ms is a number"),
        seq.parse().expect("seq is a number"),
    )
}

pub(crate) fn status(
    con: &mut Connection,
    activity: &str,
) -> RedisResult<BTreeMap<String, String>> {
    let v: Vec<Value> = redis::cmd("SECKILL.STATUS").arg(activity).query(con)?;
    let mut out = BTreeMap::new();
    for pair in v.chunks(2) {
        let k: String = redis::from_redis_value(&pair[0])?;
        let val = match &pair[1] {
            Value::Int(i) => i.to_string(),
            other => redis::from_redis_value::<String>(other)?,
        };
        out.insert(k, val);
    }
    Ok(out)
}

/// Everything the module keeps for an activity, in a comparable form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The activity record's bytes.
    pub meta: Option<Vec<u8>>,
    pub buyers: BTreeMap<String, String>,
    pub released: BTreeMap<String, String>,
    pub stream: Vec<(String, Vec<(String, String)>)>,
    /// The stream's own bookkeeping from `XINFO STREAM` (length, last generated id, entries
    /// added, first recorded id, max deleted id): what a trim changes besides the entries.
    pub stream_info: BTreeMap<String, String>,
}

/// Scalar fields of `XINFO STREAM`, empty when the stream does not exist.
pub(crate) fn stream_info(con: &mut Connection, key: &str) -> BTreeMap<String, String> {
    let Ok(v) = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query::<Vec<Value>>(con)
    else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for pair in v.chunks(2) {
        let Ok(k) = redis::from_redis_value::<String>(&pair[0]) else {
            continue;
        };
        let val = match &pair[1] {
            Value::Int(i) => i.to_string(),
            Value::BulkString(_) | Value::SimpleString(_) => {
                redis::from_redis_value::<String>(&pair[1]).unwrap_or_default()
            }
            // first-entry / last-entry are compared through XRANGE already.
            _ => continue,
        };
        out.insert(k, val);
    }
    out
}

pub(crate) fn snapshot(con: &mut Connection, activity: &str) -> Snapshot {
    let hash = |con: &mut Connection, key: String| -> BTreeMap<String, String> {
        redis::cmd("HGETALL").arg(key).query(con).expect("HGETALL")
    };
    let stream: Vec<(String, Vec<(String, String)>)> = {
        let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(format!("seckill:{{{activity}}}:stream"))
            .arg("-")
            .arg("+")
            .query(con)
            .expect("XRANGE");
        raw.into_iter()
            .map(|(id, kv)| {
                let pairs = kv.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
                (id, pairs)
            })
            .collect()
    };
    Snapshot {
        meta: redis::cmd("GET")
            .arg(format!("seckill:{{{activity}}}"))
            .query(con)
            .expect("GET"),
        buyers: redis::cmd("SECKILL.BUYERS")
            .arg(activity)
            .query(con)
            .expect("SECKILL.BUYERS"),
        released: hash(con, format!("seckill:{{{activity}}}:released")),
        stream,
        stream_info: stream_info(con, &format!("seckill:{{{activity}}}:stream")),
    }
}

impl Snapshot {
    /// Units held by reservations of the current sale that are neither released nor
    /// trimmed: what `remaining + live == total` is checked with.
    pub(crate) fn live_qty(&self, sale_from: &str) -> u64 {
        let from = id_pair(sale_from);
        self.stream
            .iter()
            .filter(|(id, _)| id_pair(id) > from && !self.released.contains_key(id))
            .filter_map(|(_, f)| f.iter().find(|(k, _)| k == "qty"))
            .map(|(_, q)| q.parse::<u64>().expect("qty is a number"))
            .sum()
    }
}

/// Every key in the keyspace with its DUMP, to prove a refused command changed nothing.
pub(crate) fn dump_all(con: &mut Connection) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).expect("KEYS");
    keys.into_iter()
        .map(|k| {
            let d: Vec<u8> = redis::cmd("DUMP").arg(&k).query(con).expect("DUMP");
            (k, d)
        })
        .collect()
}
