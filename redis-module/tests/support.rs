//! Helpers shared by the module's integration tests (included with `mod support;`).
#![allow(dead_code)]

use redis::{Connection, RedisResult, Value};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn create(con: &mut Connection, activity: &str, args: &[&str]) -> RedisResult<String> {
    redis::cmd("SECKILL.CREATE")
        .arg(activity)
        .arg(args)
        .query(con)
}

pub fn reserve(
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

pub fn release(con: &mut Connection, activity: &str, rid: &str) -> RedisResult<i64> {
    redis::cmd("SECKILL.RELEASE")
        .arg(activity)
        .arg(rid)
        .query(con)
}

pub fn status(con: &mut Connection, activity: &str) -> RedisResult<BTreeMap<String, String>> {
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
pub struct Snapshot {
    /// The activity record's bytes.
    pub meta: Option<Vec<u8>>,
    pub buyers: BTreeMap<String, String>,
    pub released: BTreeMap<String, String>,
    pub stream: Vec<(String, Vec<(String, String)>)>,
}

pub fn snapshot(con: &mut Connection, activity: &str) -> Snapshot {
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
        buyers: hash(con, format!("seckill:{{{activity}}}:buyers")),
        released: hash(con, format!("seckill:{{{activity}}}:released")),
        stream,
    }
}

/// Every key in the keyspace with its DUMP, to prove a refused command changed nothing.
pub fn dump_all(con: &mut Connection) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).expect("KEYS");
    keys.into_iter()
        .map(|k| {
            let d: Vec<u8> = redis::cmd("DUMP").arg(&k).query(con).expect("DUMP");
            (k, d)
        })
        .collect()
}
