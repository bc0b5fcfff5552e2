//! Redis side of the worker: stream discovery, the consumer group, reads, claims, acks,
//! dead letters and the lag figures. Replies are parsed by hand so a malformed entry is
//! data to dead-letter, never a parse failure of the whole read.

use crate::lag::{compute_lag, GroupInfo, Lag, StreamId, StreamInfo, StreamLag};
use crate::plan::{DeadReason, RawEntry};
use redis::aio::ConnectionLike;
use redis::{RedisError, Value};
use seckill_core::{keys, ActivityId};
use std::collections::HashMap;

/// Keys of every activity stream, found with `SCAN ... TYPE stream`.
pub async fn discover<C: ConnectionLike + Send>(
    conn: &mut C,
) -> Result<Vec<(String, ActivityId)>, RedisError> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(keys::STREAM_SCAN_PATTERN)
            .arg("COUNT")
            .arg(1_000)
            .arg("TYPE")
            .arg("stream")
            .query_async(conn)
            .await?;
        out.extend(
            batch
                .into_iter()
                .filter_map(|k| keys::activity_of_stream(&k).map(|a| (k, a))),
        );
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Creates the group at the start of the stream (so no entry written before the first worker
/// came up is skipped); an existing group is left alone.
pub async fn ensure_group<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
) -> Result<(), RedisError> {
    let r: Result<(), RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

/// Parses `[[id, [f, v, ...]], ...]`; an entry whose body is nil (deleted) has no fields.
fn parse_entries(v: &Value, activity: &ActivityId, out: &mut Vec<RawEntry>) {
    for item in array(v) {
        let parts = array(item);
        let Some(id) = parts.first().and_then(text) else {
            continue;
        };
        let flat = parts.get(1).map(array).unwrap_or(&[]);
        let fields = flat
            .chunks(2)
            .filter_map(|kv| Some((bytes(kv.first()?)?, bytes(kv.get(1)?)?)))
            .collect();
        out.push(RawEntry {
            activity: activity.clone(),
            id,
            fields,
            deliveries: 1,
        });
    }
}

/// `XREADGROUP ... COUNT n BLOCK ms STREAMS k1 k2 ... > > ...` over every known stream.
pub async fn read_new<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    consumer: &str,
    streams: &[(String, ActivityId)],
    count: usize,
    block_ms: u64,
) -> Result<Vec<RawEntry>, RedisError> {
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS");
    for (k, _) in streams {
        cmd.arg(k);
    }
    for _ in streams {
        cmd.arg(">");
    }
    let reply: Value = cmd.query_async(conn).await?;
    let by_key: HashMap<&str, &ActivityId> = streams.iter().map(|(k, a)| (k.as_str(), a)).collect();
    let mut out = Vec::new();
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop()?;
                    let k = kv.pop()?;
                    Some((k, v))
                }
                _ => None,
            })
            .collect(),
        Value::Map(m) => m,
        _ => Vec::new(),
    };
    for (k, v) in pairs {
        if let Some(activity) = text(&k).and_then(|k| by_key.get(k.as_str()).copied()) {
            parse_entries(&v, activity, &mut out);
        }
    }
    Ok(out)
}

/// Takes over entries idle longer than `min_idle_ms` in any consumer of the group
/// (`XAUTOCLAIM`), with their delivery counts (which the claim increased).
pub async fn claim_idle<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    activity: &ActivityId,
    group: &str,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> Result<Vec<RawEntry>, RedisError> {
    let reply: Value = redis::cmd("XAUTOCLAIM")
        .arg(key)
        .arg(group)
        .arg(consumer)
        .arg(min_idle_ms)
        .arg("0-0")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    let mut out = Vec::new();
    if let Some(entries) = array(&reply).get(1) {
        parse_entries(entries, activity, &mut out);
    }
    if out.is_empty() {
        return Ok(out);
    }
    // Delivery counts of what this consumer now holds, from the extended XPENDING form.
    let (first, last) = (out[0].id.clone(), out[out.len() - 1].id.clone());
    let pending: Value = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .arg(&first)
        .arg(&last)
        .arg(out.len() * 2 + 10)
        .arg(consumer)
        .query_async(conn)
        .await?;
    let counts: HashMap<String, u64> = array(&pending)
        .iter()
        .filter_map(|p| {
            let p = array(p);
            Some((text(p.first()?)?, int(p.get(3)?)?))
        })
        .collect();
    for e in &mut out {
        e.deliveries = counts.get(&e.id).copied().unwrap_or(1);
    }
    Ok(out)
}

/// Acks entries, one XACK per stream, all in one pipeline.
pub async fn ack<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    entries: &[&RawEntry],
) -> Result<(), RedisError> {
    let mut by_stream: HashMap<&ActivityId, Vec<&str>> = HashMap::new();
    for e in entries {
        by_stream.entry(&e.activity).or_default().push(&e.id);
    }
    if by_stream.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (activity, ids) in by_stream {
        pipe.cmd("XACK")
            .arg(keys::stream(activity))
            .arg(group)
            .arg(ids)
            .ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// Appends the entry and the reason to the activity's dead-letter stream. The caller acks the
/// entry afterwards with the rest of its batch: acking in the same MULTI would ack it even
/// when the XADD fails at run time (MULTI does not roll back), losing it. A crash between
/// the two writes dead-letters the redelivered entry again (at least once, never lost).
pub async fn dead_letter<C: ConnectionLike + Send>(
    conn: &mut C,
    consumer: &str,
    entry: &RawEntry,
    reason: &DeadReason,
) -> Result<(), RedisError> {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys::dead_letters(&entry.activity))
        .arg("*")
        .arg("reservation")
        .arg(&entry.id)
        .arg("kind")
        .arg(reason.kind())
        .arg("reason")
        .arg(reason.to_string())
        .arg("deliveries")
        .arg(entry.deliveries)
        .arg("consumer")
        .arg(consumer);
    for (k, v) in &entry.fields {
        let mut name = b"entry.".to_vec();
        name.extend_from_slice(k);
        xadd.arg(name).arg(v);
    }
    xadd.query_async::<()>(conn).await
}

fn flat_map(v: &Value) -> HashMap<String, &Value> {
    match v {
        Value::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        other => array(other)
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?)))
            .collect(),
    }
}

fn id_of(v: Option<&&Value>) -> StreamId {
    v.and_then(|v| text(v))
        .and_then(|s| StreamId::parse(&s))
        .unwrap_or_default()
}

/// Length, lag, pending and dead letters of one activity's stream for `group`.
pub async fn stream_lag<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    activity: &ActivityId,
    group: &str,
) -> Result<StreamLag, RedisError> {
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await?;
    let info = flat_map(&info);
    let first_entry_id = info
        .get("first-entry")
        .and_then(|e| array(e).first())
        .and_then(text)
        .and_then(|s| StreamId::parse(&s));
    let stream = StreamInfo {
        length: info.get("length").and_then(|v| int(v)).unwrap_or(0),
        last_generated_id: id_of(info.get("last-generated-id")),
        max_deleted_entry_id: id_of(info.get("max-deleted-entry-id")),
        entries_added: info.get("entries-added").and_then(|v| int(v)).unwrap_or(0),
        first_entry_id,
    };
    let groups: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(conn)
        .await?;
    let group_info = array(&groups).iter().map(flat_map).find_map(|g| {
        (g.get("name").and_then(|v| text(v)).as_deref() == Some(group)).then(|| GroupInfo {
            name: group.to_owned(),
            consumers: g.get("consumers").and_then(|v| int(v)).unwrap_or(0),
            pending: g.get("pending").and_then(|v| int(v)).unwrap_or(0),
            last_delivered_id: id_of(g.get("last-delivered-id")),
            entries_read: g.get("entries-read").and_then(|v| int(v)),
            lag: g.get("lag").and_then(|v| int(v)),
        })
    });
    let dead: u64 = redis::cmd("XLEN")
        .arg(keys::dead_letters(activity))
        .query_async(conn)
        .await?;
    let (lag, pending, consumers) = match group_info {
        None => (None, 0, 0),
        Some(g) => {
            let lag = match compute_lag(&stream, &g) {
                Lag::Known(n) => n,
                Lag::CountAfter(after) => count_after(conn, key, after).await?,
            };
            (Some(lag), g.pending, g.consumers)
        }
    };
    Ok(StreamLag {
        activity: activity.to_string(),
        length: stream.length,
        lag,
        pending,
        consumers,
        dead_letters: dead,
    })
}

/// Counts entries after `after` in pages (only when Redis cannot tell the lag itself).
async fn count_after<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    after: StreamId,
) -> Result<u64, RedisError> {
    let mut from = after;
    let mut n = 0;
    loop {
        let page: Value = redis::cmd("XRANGE")
            .arg(key)
            .arg(format!("({from}"))
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await?;
        let items = array(&page);
        let Some(last) = items
            .last()
            .and_then(|e| array(e).first())
            .and_then(text)
            .and_then(|s| StreamId::parse(&s))
        else {
            return Ok(n);
        };
        n += items.len() as u64;
        from = last;
    }
}

/// Lag rows of every activity stream, sorted by activity.
pub async fn all_lags<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
) -> Result<Vec<StreamLag>, RedisError> {
    let mut out = Vec::new();
    for (key, activity) in discover(conn).await? {
        out.push(stream_lag(conn, &key, &activity, group).await?);
    }
    Ok(out)
}

/// Units left of an activity (`remaining` of `SECKILL.STATUS`); `None` when the activity
/// does not exist (e.g. a stream left from a deleted activity).
pub async fn stock_remaining<C: ConnectionLike + Send>(
    redis: &mut C,
    activity: &str,
) -> Result<Option<i64>, RedisError> {
    let reply: Result<Vec<Value>, RedisError> = redis::cmd("SECKILL.STATUS")
        .arg(activity)
        .query_async(redis)
        .await;
    let pairs = match reply {
        Ok(v) => v,
        Err(e) if e.code() == Some("NOACTIVITY") => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(pairs.chunks(2).find_map(|kv| match kv {
        [Value::SimpleString(k), Value::Int(v)] if k == "remaining" => Some(*v),
        [Value::BulkString(k), Value::Int(v)] if k.as_slice() == b"remaining" => Some(*v),
        _ => None,
    }))
}
