//! Lag of the activities' streams for a consumer group, from `XINFO` (the arithmetic is
//! `seckill_core::lag`), for the worker's gauges and `seckill lag` / `seckill audit`.

use crate::streams::{array, discover, int, text};
use redis::aio::ConnectionLike;
use redis::{RedisError, Value};
use seckill_core::keys;
use seckill_core::lag::{compute_lag, GroupInfo, Lag, StreamId, StreamInfo, StreamLag};
use seckill_core::ActivityId;
use std::collections::HashMap;

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
        .and_then(|s| StreamId::parse(&s).ok())
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
        .and_then(|s| StreamId::parse(&s).ok());
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
        entries_added: stream.entries_added,
        last_generated_id: stream.last_generated_id,
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
            .and_then(|s| StreamId::parse(&s).ok())
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

/// Where a consumer group stands on one stream, for the trimmer and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMarks {
    /// Every entry at or below this id was delivered to the group.
    pub last_delivered: StreamId,
    /// The smallest id still pending (delivered, not acked); `None` when nothing is.
    pub first_pending: Option<StreamId>,
}

impl GroupMarks {
    /// Every entry below this id was delivered and acked: below the first pending id and at
    /// or below the last delivered one.
    pub fn acked_below(&self) -> StreamId {
        let delivered_below = self
            .last_delivered
            .next()
            .unwrap_or(StreamId::new(u64::MAX, u64::MAX));
        match self.first_pending {
            Some(p) => p.min(delivered_below),
            None => delivered_below,
        }
    }
}

/// The group's marks on `key`; `None` when the stream or the group does not exist.
///
/// The last delivered id is read before the pending list: entries delivered in between
/// are above it, and an entry once acked never becomes pending again, so every entry at or
/// below it that is not pending afterwards was acked.
pub async fn group_marks<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
) -> Result<Option<GroupMarks>, RedisError> {
    let groups: Result<Value, RedisError> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(conn)
        .await;
    let groups = match groups {
        Err(e) if e.kind() == redis::ErrorKind::ResponseError && e.code() == Some("ERR") => {
            // "no such key": no stream, no group.
            return Ok(None);
        }
        other => other?,
    };
    let Some(last_delivered) = array(&groups).iter().map(flat_map).find_map(|g| {
        (g.get("name").and_then(|v| text(v)).as_deref() == Some(group))
            .then(|| id_of(g.get("last-delivered-id")))
    }) else {
        return Ok(None);
    };
    let summary: Value = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await?;
    let first_pending = array(&summary)
        .get(1)
        .and_then(text)
        .and_then(|s| StreamId::parse(&s).ok());
    Ok(Some(GroupMarks {
        last_delivered,
        first_pending,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_below_is_the_lower_of_both_marks() {
        let id = StreamId::new;
        let m = |ld, fp| GroupMarks {
            last_delivered: ld,
            first_pending: fp,
        };
        assert_eq!(m(id(10, 3), None).acked_below(), id(10, 4));
        assert_eq!(m(id(10, 3), Some(id(7, 0))).acked_below(), id(7, 0));
        assert_eq!(m(StreamId::ZERO, None).acked_below(), id(0, 1));
        assert_eq!(
            m(id(u64::MAX, u64::MAX), None).acked_below(),
            id(u64::MAX, u64::MAX)
        );
    }
}
