//! How many entries a consumer reads at once: `worker.batch_size` for a backlog, and no more
//! than `worker.batch_size_while_arriving` while reservations arrive.
//!
//! Every `XREADGROUP` and `XACK` runs on Redis' one thread, and the sale's reservations wait
//! behind it: 1.4-4.6 µs per entry by the machine (`bench/drain-reads.sh`), so a 3,000-entry
//! read holds them 4-14 ms. A backlog drains fastest in large batches (each batch costs
//! fixed round trips and fsyncs); while the sale is writing, a worker that fell behind reads
//! small ones so the reservations' tail latency stays where a 1,000-entry read puts it.
//! [`crate::arrivals`] says which ([`ReadSize::observe`]): a stream that grew since the poll
//! before, or an entry read that was appended after the last poll, is an arrival. Until the
//! poll knows (the first poll after start, a failed poll) the size stays as it was: this is a
//! speed setting, not a safety one, and a worker started on a backlog should drain it at
//! full size.

use std::sync::atomic::{AtomicBool, Ordering};

/// The read size the process's consumers share.
#[derive(Debug)]
pub(crate) struct ReadSize {
    full: usize,
    while_arriving: usize,
    arriving: AtomicBool,
}

impl ReadSize {
    pub(crate) fn new(full: usize, while_arriving: usize) -> Self {
        Self {
            full: full.max(1),
            while_arriving: while_arriving.clamp(1, full.max(1)),
            arriving: AtomicBool::new(false),
        }
    }

    /// What a lag poll that saw every stream found: whether any grew since the poll before.
    pub(crate) fn observe(&self, arriving: bool) {
        if self.arriving.swap(arriving, Ordering::Relaxed) != arriving
            && self.while_arriving < self.full
        {
            tracing::info!(
                entries = self.current(),
                "{}",
                if arriving {
                    "reservations arriving: reading smaller batches"
                } else {
                    "no reservation arriving: reading full batches"
                }
            );
        }
    }

    /// Most entries for the next read.
    pub(crate) fn current(&self) -> usize {
        if self.arriving.load(Ordering::Relaxed) {
            self.while_arriving
        } else {
            self.full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batches_for_a_backlog_small_ones_while_reservations_arrive() {
        let r = ReadSize::new(3_000, 1_000);
        assert_eq!(
            r.current(),
            3_000,
            "a worker starts on whatever backlog there is"
        );
        r.observe(true);
        assert_eq!(r.current(), 1_000);
        r.observe(false);
        assert_eq!(r.current(), 3_000);
    }

    #[test]
    fn the_smaller_size_never_exceeds_the_full_one() {
        let r = ReadSize::new(500, 1_000);
        r.observe(true);
        assert_eq!(r.current(), 500);
        let r = ReadSize::new(500, 0);
        r.observe(true);
        assert_eq!(r.current(), 1);
    }
}
