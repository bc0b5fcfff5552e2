//! Whether reservations are arriving: the signal that holds the worker's pace
//! (`crate::pace`) and shrinks its reads (`crate::read_size`) while a sale is writing.
//!
//! Two sources. The lag poll compares each stream's `entries-added` with the poll before
//! ([`Arrivals`]): it alone can tell that arrivals stopped. But it notices a sale only at its
//! next poll, up to `worker.lag_interval_ms` (2 s) late, and a flash sale's stock is often
//! gone within that: the worker would drain its first seconds, the whole of such a sale,
//! unpaced and in full batches. So the consumers tell the start too ([`LastIds`]): an entry
//! read above its stream's last id at the last poll was appended after that poll, i.e. a
//! reservation arrived since. Ids are Redis' own, so no clock is compared.

use seckill_core::lag::StreamId;
use std::collections::HashMap;
use std::sync::RwLock;

/// Whether reservations are arriving, from each stream's `entries-added` at successive lag
/// polls (pure). A stream that grew, or a new stream with entries, is an arrival; the first
/// poll after start knows nothing yet and says "arriving" (the cap holds until a second poll
/// shows the streams standing still).
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    last: Option<HashMap<String, u64>>,
}

impl Arrivals {
    /// Whether a poll before this one was observed (so growth can be told).
    pub(crate) fn knows(&self) -> bool {
        self.last.is_some()
    }

    pub(crate) fn observe(&mut self, added: impl IntoIterator<Item = (String, u64)>) -> bool {
        let now: HashMap<String, u64> = added.into_iter().collect();
        let arriving = match &self.last {
            None => true,
            Some(before) => now
                .iter()
                .any(|(k, n)| before.get(k).map_or(*n > 0, |b| n > b)),
        };
        self.last = Some(now);
        arriving
    }
}

/// Each stream's last id as the last lag poll that read every node saw it, shared by the
/// poll (which records them) and the consumers (which compare what they read).
#[derive(Debug, Default)]
pub(crate) struct LastIds {
    /// `None`: no complete poll yet, or the last one failed; nothing read counts as new.
    ids: RwLock<Option<HashMap<String, StreamId>>>,
}

impl LastIds {
    /// What a poll that read every node found: `(activity, last-generated-id)` per stream.
    pub(crate) fn record(&self, ids: impl IntoIterator<Item = (String, StreamId)>) {
        let ids = ids.into_iter().collect();
        if let Ok(mut slot) = self.ids.write() {
            *slot = Some(ids);
        }
    }

    /// A poll that could not see every stream: until the next complete one, no read says
    /// "arrived" (a worker that cannot tell stays as it is).
    pub(crate) fn forget(&self) {
        if let Ok(mut slot) = self.ids.write() {
            *slot = None;
        }
    }

    /// Whether any of `entries` (activity, entry id), as one read returned them, was
    /// appended after the last poll: above its stream's recorded id, or in a stream the poll
    /// did not see. A read lists each stream's entries in id order, so only the last entry of
    /// each run of one activity is compared.
    pub(crate) fn any_after<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        let Ok(slot) = self.ids.read() else {
            return false;
        };
        let Some(ids) = slot.as_ref() else {
            return false;
        };
        let newer = |activity: &str, id: &str| match StreamId::parse(id) {
            Ok(id) => ids.get(activity).is_none_or(|last| id > *last),
            Err(_) => false,
        };
        let mut run: Option<(&str, &str)> = None;
        for (activity, id) in entries {
            if let Some((prev, prev_id)) = run {
                if prev != activity && newer(prev, prev_id) {
                    return true;
                }
            }
            run = Some((activity, id));
        }
        run.is_some_and(|(activity, id)| newer(activity, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn arrivals_are_streams_that_grew() {
        let mut a = Arrivals::default();
        assert!(
            a.observe(added(&[("1", 10)])),
            "the first poll knows nothing yet"
        );
        assert!(!a.observe(added(&[("1", 10)])), "standing still");
        assert!(a.observe(added(&[("1", 11)])), "grew");
        assert!(
            !a.observe(added(&[("1", 11), ("2", 0)])),
            "a new empty stream"
        );
        assert!(
            a.observe(added(&[("1", 11), ("2", 0), ("3", 4)])),
            "a new stream with entries"
        );
        assert!(!a.observe(added(&[("3", 4)])), "streams gone");
    }

    fn recorded(v: &[(&str, u64, u64)]) -> LastIds {
        let ids = LastIds::default();
        ids.record(
            v.iter()
                .map(|(a, ms, seq)| (a.to_string(), StreamId::new(*ms, *seq))),
        );
        ids
    }

    #[test]
    fn entries_above_the_polled_ids_arrived_after_the_poll() {
        let ids = recorded(&[("1", 100, 5), ("2", 90, 0)]);
        assert!(
            !ids.any_after([("1", "99-0"), ("1", "100-5"), ("2", "90-0")]),
            "the backlog"
        );
        assert!(
            ids.any_after([("1", "100-5"), ("1", "100-6"), ("2", "90-0")]),
            "1 grew"
        );
        assert!(
            ids.any_after([("2", "80-0"), ("2", "101-0")]),
            "2 grew (the run's last)"
        );
        assert!(
            ids.any_after([("3", "1-0")]),
            "a stream the poll did not see"
        );
        assert!(!ids.any_after([]), "nothing read");
        assert!(
            !ids.any_after([("1", "not-an-id")]),
            "an id that does not parse"
        );
    }

    #[test]
    fn nothing_counts_before_a_complete_poll() {
        let ids = LastIds::default();
        assert!(!ids.any_after([("1", "1-0")]), "no poll yet");
        ids.record([("1".to_string(), StreamId::new(1, 0))]);
        assert!(ids.any_after([("1", "2-0")]));
        ids.forget();
        assert!(!ids.any_after([("1", "2-0")]), "a failed poll");
    }
}
