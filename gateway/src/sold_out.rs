//! A local, per-activity "sold out" flag.
//!
//! After Redis answers SOLDOUT, later requests for the same activity are refused here without
//! a Redis round trip, but only for `ttl` (about a second): a cancel or an expiry may return
//! stock at any moment, and that stock must be sold again (no undersell). A cancel through
//! this gateway also clears the flag at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub(crate) struct SoldOutFlags {
    /// Milliseconds; atomic because runtime settings (etcd) may change it while serving.
    ttl_ms: AtomicU64,
    /// Activity id -> when Redis last said SOLDOUT.
    marks: RwLock<HashMap<String, Instant>>,
}

impl SoldOutFlags {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl_ms: AtomicU64::new(ttl.as_millis() as u64),
            marks: RwLock::new(HashMap::new()),
        }
    }

    /// The flag's lifetime now in force.
    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// Changes the lifetime (0 disables the flag); marks already set follow the new value.
    pub(crate) fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether `activity` was seen sold out less than `ttl` before `now`.
    pub(crate) fn is_sold_out(&self, activity: &str, now: Instant) -> bool {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return false;
        }
        let marks = match self.marks.read() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        marks
            .get(activity)
            .is_some_and(|seen| now.saturating_duration_since(*seen) < ttl)
    }

    /// Records a SOLDOUT reply seen at `now`.
    pub(crate) fn mark(&self, activity: &str, now: Instant) {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return;
        }
        let mut marks = match self.marks.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Drop stale marks so the map stays as small as the set of hot activities.
        if marks.len() > 1024 {
            marks.retain(|_, seen| now.saturating_duration_since(*seen) < ttl);
        }
        marks.insert(activity.to_owned(), now);
    }

    /// Forgets the flag (stock was just returned through this gateway).
    pub(crate) fn clear(&self, activity: &str) {
        let mut marks = match self.marks.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        marks.remove(activity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_short_circuits_then_expires() {
        let flags = SoldOutFlags::new(Duration::from_millis(1000));
        let t0 = Instant::now();
        assert!(!flags.is_sold_out("1", t0));
        flags.mark("1", t0);
        assert!(flags.is_sold_out("1", t0));
        assert!(flags.is_sold_out("1", t0 + Duration::from_millis(999)));
        assert!(!flags.is_sold_out("1", t0 + Duration::from_millis(1000)));
        assert!(!flags.is_sold_out("2", t0), "flags are per activity");
    }

    #[test]
    fn a_release_clears_the_flag_at_once() {
        let flags = SoldOutFlags::new(Duration::from_secs(1));
        let t0 = Instant::now();
        flags.mark("1", t0);
        flags.clear("1");
        assert!(!flags.is_sold_out("1", t0));
    }

    #[test]
    fn zero_ttl_disables_the_flag() {
        let flags = SoldOutFlags::new(Duration::ZERO);
        let t0 = Instant::now();
        flags.mark("1", t0);
        assert!(!flags.is_sold_out("1", t0));
    }

    #[test]
    fn the_ttl_can_change_while_running() {
        let flags = SoldOutFlags::new(Duration::from_millis(100));
        let t0 = Instant::now();
        flags.mark("1", t0);
        assert!(!flags.is_sold_out("1", t0 + Duration::from_millis(200)));
        flags.set_ttl(Duration::from_millis(500));
        assert!(flags.is_sold_out("1", t0 + Duration::from_millis(200)));
        flags.set_ttl(Duration::ZERO);
        assert!(!flags.is_sold_out("1", t0));
    }

    #[test]
    fn stale_marks_are_pruned() {
        let flags = SoldOutFlags::new(Duration::from_millis(10));
        let t0 = Instant::now();
        for i in 0..2000 {
            flags.mark(&i.to_string(), t0);
        }
        flags.mark("late", t0 + Duration::from_secs(1));
        let len = flags.marks.read().map(|m| m.len()).unwrap_or(0);
        assert!(len < 1100, "{len}");
    }
}
