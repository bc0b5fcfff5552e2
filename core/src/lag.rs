//! Consumer-group lag, pure: from `XINFO STREAM` and `XINFO GROUPS` values to a number.
//!
//! Redis 7.0 reports `lag` as nil when it cannot tell (entries deleted in the middle of the
//! stream, or a group created at an arbitrary id without `ENTRIESREAD`). This computes it
//! from the other fields when that is exact, and otherwise asks the caller to count the
//! entries after the group's last delivered id.

use std::cmp::Ordering;

pub use crate::stream_id::StreamId;

/// The parts of `XINFO STREAM` that matter for lag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamInfo {
    pub length: u64,
    pub last_generated_id: StreamId,
    pub max_deleted_entry_id: StreamId,
    pub entries_added: u64,
    pub first_entry_id: Option<StreamId>,
}

/// The parts of one `XINFO GROUPS` element that matter for lag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub consumers: u64,
    pub pending: u64,
    pub last_delivered_id: StreamId,
    pub entries_read: Option<u64>,
    pub lag: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    Known(u64),
    /// Count the entries after this id (`XRANGE key (id +`).
    CountAfter(StreamId),
}

pub fn compute_lag(stream: &StreamInfo, group: &GroupInfo) -> Lag {
    if let Some(lag) = group.lag {
        return Lag::Known(lag);
    }
    if group.last_delivered_id.cmp(&stream.last_generated_id) != Ordering::Less
        || stream.length == 0
    {
        return Lag::Known(0);
    }
    let nothing_deleted = stream.max_deleted_entry_id == StreamId::default();
    if nothing_deleted {
        if let Some(read) = group.entries_read {
            return Lag::Known(stream.entries_added.saturating_sub(read));
        }
        match stream.first_entry_id {
            Some(first) if group.last_delivered_id < first => return Lag::Known(stream.length),
            _ => {}
        }
    }
    Lag::CountAfter(group.last_delivered_id)
}

/// Everything `seckill lag` and the gauges show for one activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLag {
    pub activity: String,
    pub length: u64,
    /// Entries not yet delivered to the group; `None` when the group does not exist yet.
    pub lag: Option<u64>,
    /// Entries delivered but not acked.
    pub pending: u64,
    pub consumers: u64,
    pub dead_letters: u64,
    /// Entries ever appended (`XINFO STREAM` `entries-added`): grows with every reservation,
    /// whatever was trimmed since.
    pub entries_added: u64,
    /// The id of the stream's newest entry ever (`last-generated-id`): an entry read above
    /// it was appended after this was taken.
    pub last_generated_id: StreamId,
}

impl StreamLag {
    /// Entries the group has not received yet (all of them before the group exists).
    pub fn undelivered(&self) -> u64 {
        self.lag.unwrap_or(self.length)
    }

    /// Entries not yet persisted and acknowledged: undelivered plus pending.
    pub fn in_flight(&self) -> u64 {
        self.undelivered() + self.pending
    }
}

/// Renders rows as a fixed-width table for the terminal.
pub fn render_table(rows: &[StreamLag]) -> String {
    let mut out = format!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
        "ACTIVITY", "LENGTH", "LAG", "PENDING", "DEAD", "CONSUMERS"
    );
    for r in rows {
        let lag = r.lag.map_or_else(|| "-".to_string(), |l| l.to_string());
        out.push_str(&format!(
            "{:<20} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
            r.activity, r.length, lag, r.pending, r.dead_letters, r.consumers
        ));
    }
    let sum = |f: fn(&StreamLag) -> u64| rows.iter().map(f).sum::<u64>();
    out.push_str(&format!(
        "{:<20} {:>10} {:>10} {:>10} {:>10}\n",
        "TOTAL",
        sum(|r| r.length),
        sum(|r| r.lag.unwrap_or(0)),
        sum(|r| r.pending),
        sum(|r| r.dead_letters)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        StreamId::parse(s).unwrap()
    }

    #[test]
    fn lag_table() {
        let stream = StreamInfo {
            length: 10,
            last_generated_id: id("100-9"),
            max_deleted_entry_id: id("0-0"),
            entries_added: 10,
            first_entry_id: Some(id("100-0")),
        };
        let group = |last: &str, read: Option<u64>, lag: Option<u64>| GroupInfo {
            last_delivered_id: id(last),
            entries_read: read,
            lag,
            ..GroupInfo::default()
        };
        let deleted = StreamInfo {
            max_deleted_entry_id: id("100-3"),
            ..stream.clone()
        };
        let cases = [
            (
                "reported",
                &stream,
                group("100-2", Some(3), Some(7)),
                Lag::Known(7),
            ),
            (
                "caught up",
                &stream,
                group("100-9", None, None),
                Lag::Known(0),
            ),
            (
                "from entries read",
                &stream,
                group("100-2", Some(3), None),
                Lag::Known(7),
            ),
            (
                "before first entry",
                &stream,
                group("0-0", None, None),
                Lag::Known(10),
            ),
            (
                "unknown",
                &stream,
                group("100-4", None, None),
                Lag::CountAfter(id("100-4")),
            ),
            (
                "deletions",
                &deleted,
                group("100-2", Some(3), None),
                Lag::CountAfter(id("100-2")),
            ),
        ];
        for (name, s, g, want) in cases {
            assert_eq!(compute_lag(s, &g), want, "{name}");
        }
    }

    #[test]
    fn ids_order_numerically() {
        assert!(id("9-0") < id("10-0"));
        assert!(id("10-2") < id("10-10"));
        assert!(StreamId::parse("x").is_err());
    }

    #[test]
    fn table_has_a_total() {
        let rows = [StreamLag {
            activity: "1".into(),
            length: 5,
            lag: Some(2),
            pending: 1,
            consumers: 2,
            dead_letters: 0,
            entries_added: 5,
            last_generated_id: id("1-4"),
        }];
        let t = render_table(&rows);
        assert!(t.lines().last().unwrap().starts_with("TOTAL"));
    }
}
