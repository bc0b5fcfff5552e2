//! The activities' reservation streams: discovery, the consumer group, reads, claims, acks,
//! dead letters and whole-stream reads. Replies are parsed by hand so a malformed entry is
//! data to dead-letter, never a parse failure of the whole read.

use redis::aio::ConnectionLike;
use redis::{RedisError, Value};
use seckill_core::{keys, ActivityId, StreamId};
use std::collections::HashMap;

/// One entry as read from an activity's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The activity of the stream key the entry was read from.
    pub activity: ActivityId,
    /// Stream entry id, which is the reservation id.
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Times the entry has been delivered to a consumer (1 for a first read).
    pub deliveries: u64,
}

/// A stream entry: id and field/value pairs.
pub type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Every entry of a stream, in pages.
pub async fn read_stream<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
) -> Result<Vec<Entry>, RedisError> {
    let mut out = Vec::new();
    let mut from = "-".to_string();
    loop {
        let page: Vec<Entry> = redis::cmd("XRANGE")
            .arg(key)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        from = format!("({last}");
        out.extend(page);
    }
}

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

pub(crate) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(crate) fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

pub(crate) fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => &[],
    }
}

/// [`bytes`] of a reply the caller owns, moved rather than copied.
fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn into_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

/// Parses `[[id, [f, v, ...]], ...]`; an entry whose body is nil (deleted) has no fields.
/// Takes the reply by value: a batch is thousands of fields, and moving each buffer out
/// instead of copying it is a large share of the worker's CPU per entry.
fn parse_entries(v: Value, activity: &ActivityId, out: &mut Vec<RawEntry>) {
    for item in into_array(v) {
        let mut parts = into_array(item).into_iter();
        let Some(id) = parts.next().and_then(into_bytes) else {
            continue;
        };
        let id = String::from_utf8(id)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let flat = parts.next().map(into_array).unwrap_or_default();
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
            if let (Some(k), Some(v)) = (into_bytes(k), into_bytes(v)) {
                fields.push((k, v));
            }
        }
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
    let reply: Value = read_new_cmd(group, consumer, streams, count, block_ms)
        .query_async(conn)
        .await?;
    let mut out = Vec::new();
    parse_read_reply(reply, streams, &mut out);
    Ok(out)
}

/// The command [`read_new`] sends (also sent by [`crate::reader::StreamReader`]).
pub(crate) fn read_new_cmd(
    group: &str,
    consumer: &str,
    streams: &[(String, ActivityId)],
    count: usize,
    block_ms: u64,
) -> redis::Cmd {
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
    cmd
}

/// Parses an `XREADGROUP` reply (RESP2 array or RESP3 map of stream → entries).
pub(crate) fn parse_read_reply(
    reply: Value,
    streams: &[(String, ActivityId)],
    out: &mut Vec<RawEntry>,
) {
    let by_key: HashMap<&str, &ActivityId> = streams.iter().map(|(k, a)| (k.as_str(), a)).collect();
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
            parse_entries(v, activity, out);
        }
    }
}

/// Streams grouped by cluster slot (XREADGROUP cannot name keys of two slots in a cluster),
/// in a stable order.
pub fn by_slot(streams: &[(String, ActivityId)]) -> Vec<Vec<(String, ActivityId)>> {
    let mut groups: std::collections::BTreeMap<u16, Vec<(String, ActivityId)>> =
        std::collections::BTreeMap::new();
    for (k, a) in streams {
        groups
            .entry(crate::topology::slot_of(a))
            .or_default()
            .push((k.clone(), a.clone()));
    }
    groups.into_values().collect()
}

/// The new entries of streams in several slots of one node: one non-blocking `XREADGROUP` per
/// slot group, pipelined. Each group's failure is its own (returned with the group's index):
/// a stream whose slot moved away (`MOVED`/`ASK`) or whose group vanished (`NOGROUP`) does not
/// fail the others' reads.
pub async fn read_new_by_slot<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    consumer: &str,
    groups: &[Vec<(String, ActivityId)>],
    count: usize,
) -> Result<(Vec<RawEntry>, Vec<(usize, RedisError)>), RedisError> {
    let mut pipe = redis::pipe();
    for streams in groups {
        let cmd = pipe
            .cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS");
        for (k, _) in streams {
            cmd.arg(k);
        }
        for _ in streams {
            cmd.arg(">");
        }
    }
    let mut out = Vec::new();
    let mut failed = Vec::new();
    if groups.is_empty() {
        return Ok((out, failed));
    }
    let replies = conn.req_packed_commands(&pipe, 0, groups.len()).await?;
    for (i, (reply, streams)) in replies.into_iter().zip(groups).enumerate() {
        match reply.extract_error() {
            Ok(v) => parse_read_reply(v, streams, &mut out),
            Err(e) => failed.push((i, e)),
        }
    }
    Ok((out, failed))
}

/// Takes over entries idle longer than `min_idle_ms` in any consumer of the group
/// (`XAUTOCLAIM`), with their delivery counts (which the claim increased).
///
/// Redis 7.0's `XAUTOCLAIM` looks every pending entry it scans up in the stream before it
/// checks the entry's idle time: ~2.3 µs each on Redis' one thread, 7 ms for a pending list
/// of 3,000 with nothing idle, while the sale's reservations wait behind it. The extended
/// `XPENDING` filters on idle time alone (~70 ns per entry), so it is asked first: nothing
/// idle, no `XAUTOCLAIM`; otherwise the claim starts at the first idle entry.
pub async fn claim_idle<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    activity: &ActivityId,
    group: &str,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> Result<Vec<RawEntry>, RedisError> {
    let idle: Value = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .arg("IDLE")
        .arg(min_idle_ms)
        .arg("-")
        .arg("+")
        .arg(1)
        .query_async(conn)
        .await?;
    let Some(start) = array(&idle)
        .first()
        .and_then(|p| array(p).first().and_then(text))
    else {
        return Ok(Vec::new());
    };
    let reply: Value = redis::cmd("XAUTOCLAIM")
        .arg(key)
        .arg(group)
        .arg(consumer)
        .arg(min_idle_ms)
        .arg(&start)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    let mut out = Vec::new();
    if let Some(entries) = into_array(reply).into_iter().nth(1) {
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

/// The ids of `entries`, grouped by their activity's stream.
fn ids_by_stream<E>(entries: &[E]) -> HashMap<&ActivityId, Vec<&str>>
where
    E: std::borrow::Borrow<RawEntry>,
{
    let mut by_stream: HashMap<&ActivityId, Vec<&str>> = HashMap::new();
    for e in entries {
        let e = e.borrow();
        by_stream.entry(&e.activity).or_default().push(&e.id);
    }
    by_stream
}

/// Acks entries, one XACK per stream, all in one pipeline.
pub async fn ack<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    entries: &[&RawEntry],
) -> Result<(), RedisError> {
    let by_stream = ids_by_stream(entries);
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

/// Resets the idle time of entries this consumer holds, without counting a delivery
/// (`XCLAIM <key> <group> <consumer> 0 <ids...> JUSTID`, one per stream, in one pipeline).
///
/// A consumer that keeps retrying a batch (the database is down) calls this more often than
/// `claim_idle_ms`, so no other consumer's `XAUTOCLAIM` takes the entries over and raises
/// their delivery count towards the dead-letter limit while the holder is alive. Entries
/// already acked are not in the pending list and are left alone by Redis.
pub async fn keep_pending<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    consumer: &str,
    entries: &[RawEntry],
) -> Result<(), RedisError> {
    let by_stream = ids_by_stream(entries);
    if by_stream.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (activity, ids) in by_stream {
        pipe.cmd("XCLAIM")
            .arg(keys::stream(activity))
            .arg(group)
            .arg(consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID")
            .ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// Entries of `key` from `from` (inclusive) to `before` (exclusive), at most `count`.
pub async fn range<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    from: StreamId,
    before: StreamId,
    count: usize,
) -> Result<Vec<Entry>, RedisError> {
    let Some(last) = before.prev() else {
        return Ok(Vec::new());
    };
    if last < from {
        return Ok(Vec::new());
    }
    redis::cmd("XRANGE")
        .arg(key)
        .arg(from.to_string())
        .arg(last.to_string())
        .arg("COUNT")
        .arg(count.max(1))
        .query_async(conn)
        .await
}

/// Ids of every entry pending in `group` (delivered, not acked), in pages.
pub async fn pending_ids<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
) -> Result<Vec<String>, RedisError> {
    let mut out = Vec::new();
    let mut from = "-".to_string();
    loop {
        let page: Value = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg(&from)
            .arg("+")
            .arg(10_000)
            .query_async(conn)
            .await?;
        let ids: Vec<String> = array(&page)
            .iter()
            .filter_map(|p| array(p).first().and_then(text))
            .collect();
        let Some(last) = ids.last() else {
            return Ok(out);
        };
        from = format!("({last}");
        out.extend(ids);
    }
}

/// One entry of an activity's dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The reservation (stream entry) id that was dead-lettered.
    pub reservation: String,
    /// `malformed`, `deliveries`, `rejected`.
    pub kind: String,
    /// `released` when the worker returned the reservation's stock (`SECKILL.RELEASE`) before
    /// acking it; `none` when the entry does not decode as a reservation (never written by
    /// RESERVE, so it holds no stock); absent in dead letters of older workers.
    pub stock: Option<String>,
    /// The original entry's fields (`entry.<name>` without the prefix).
    pub entry: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Every dead letter of `activity`.
pub async fn dead_letters<C: ConnectionLike + Send>(
    conn: &mut C,
    activity: &ActivityId,
) -> Result<Vec<DeadLetter>, RedisError> {
    let raw = read_stream(conn, &keys::dead_letters(activity)).await?;
    Ok(raw
        .into_iter()
        .filter_map(|(_, fields)| {
            let mut d = DeadLetter {
                reservation: String::new(),
                kind: String::new(),
                stock: None,
                entry: Vec::new(),
            };
            for (k, v) in fields {
                match k.as_slice() {
                    b"reservation" => d.reservation = String::from_utf8_lossy(&v).into_owned(),
                    b"kind" => d.kind = String::from_utf8_lossy(&v).into_owned(),
                    b"stock" => d.stock = Some(String::from_utf8_lossy(&v).into_owned()),
                    other => {
                        if let Some(name) = other.strip_prefix(b"entry.") {
                            d.entry.push((name.to_vec(), v));
                        }
                    }
                }
            }
            (!d.reservation.is_empty()).then_some(d)
        })
        .collect())
}

/// Appends the entry and the reason to the activity's dead-letter stream. The caller acks the
/// entry afterwards with the rest of its batch: acking in the same MULTI would ack it even
/// when the XADD fails at run time (MULTI does not roll back), losing it. A crash between
/// the two writes dead-letters the redelivered entry again (at least once, never lost).
///
/// `kind` is a low-cardinality label (`malformed`, `rejected`, ...), `reason` the sentence,
/// `stock` what happens to the reservation's stock (`released` before the ack, or `none`).
pub async fn dead_letter<C: ConnectionLike + Send>(
    conn: &mut C,
    consumer: &str,
    entry: &RawEntry,
    kind: &str,
    reason: &str,
    stock: &str,
) -> Result<(), RedisError> {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys::dead_letters(&entry.activity))
        .arg("*")
        .arg("reservation")
        .arg(&entry.id)
        .arg("kind")
        .arg(kind)
        .arg("reason")
        .arg(reason)
        .arg("stock")
        .arg(stock)
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
