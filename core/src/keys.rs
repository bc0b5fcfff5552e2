//! The Redis key layout of an activity.
//!
//! Every key carries the activity id as its hash tag (`seckill:{<id>}...`), and the id
//! alphabet has no braces, so all of an activity's keys sit in the slot of the plain id: the
//! module commands declare the id argument itself as their key, and cluster clients route
//! them to the node that owns every key they touch.

use crate::ids::ActivityId;

/// String holding the activity record (settings and counters, see [`crate::record`]).
pub fn meta(id: &ActivityId) -> String {
    format!("seckill:{{{id}}}")
}

/// Hash `user -> quantity held`: the per-user limit and the dedupe of repeated clicks.
pub fn buyers(id: &ActivityId) -> String {
    format!("seckill:{{{id}}}:buyers")
}

/// Stream of reservations; the entry id is the reservation id. Drained by the order worker,
/// trimmed below final reservations by `SECKILL.TRIM`. It outlives a re-created activity, so
/// the record marks where each sale's entries start.
pub fn stream(id: &ActivityId) -> String {
    format!("seckill:{{{id}}}:stream")
}

/// Hash `reservation id -> quantity` of released reservations, so a release happens once.
/// Fields are canonical ids (`<ms>-<seq>`, no leading zeros); `SECKILL.TRIM` removes the
/// fields below its min-id with their stream entries.
pub fn released(id: &ActivityId) -> String {
    format!("seckill:{{{id}}}:released")
}

/// Dead-letter stream of entries the worker could not turn into an order.
pub fn dead_letters(id: &ActivityId) -> String {
    format!("seckill:{{{id}}}:dead")
}

/// A tiny string written right before `WAIT` when a reservation must be on replicas before it
/// is acknowledged (`redis.min_replicas`): a write in the activity's slot, so it lands on the
/// node that holds the activity, after everything that node holds, and `WAIT` covers it.
pub fn fence(id: &ActivityId) -> String {
    format!("seckill:{{{id}}}:fence")
}

/// `SCAN` pattern that finds every activity's reservation stream.
pub const STREAM_SCAN_PATTERN: &str = "seckill:{*}:stream";

/// Extracts the activity id from a stream key produced by [`stream`].
pub fn activity_of_stream(key: &str) -> Option<ActivityId> {
    let inner = key.strip_prefix("seckill:{")?.strip_suffix("}:stream")?;
    ActivityId::parse(inner).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_hash_tag() {
        let id = ActivityId::parse("42").unwrap();
        for key in [
            meta(&id),
            buyers(&id),
            stream(&id),
            released(&id),
            dead_letters(&id),
            fence(&id),
        ] {
            assert!(key.starts_with("seckill:{42}"), "{key}");
        }
    }

    #[test]
    fn stream_key_round_trips() {
        let id = ActivityId::parse("sale-7").unwrap();
        assert_eq!(activity_of_stream(&stream(&id)), Some(id));
        assert_eq!(activity_of_stream("seckill:{x}:buyers"), None);
        assert_eq!(activity_of_stream("other"), None);
    }
}
