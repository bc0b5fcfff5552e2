//! An optional cap on the orders one worker process writes to MySQL per second
//! (`worker.max_orders_per_sec`, 0 = none, the default).
//!
//! The stream is the buffer between the sale and the database: a sale's burst is reserved at
//! Redis speed and the orders reach MySQL at the pace the database can take. Without a cap
//! the worker drains as fast as MySQL accepts, which is what a dedicated database wants; a
//! database shared with other services, or a machine that hosts the sale and the database
//! side by side, can be given a pace instead, and the backlog waits in the stream (every
//! entry stays pending or undelivered, nothing is lost; `seckill lag` shows it). The cap is
//! per process: N workers write up to N times it.
//!
//! With `worker.lift_pace_when_idle` the cap holds only while the sale is writing: once no
//! stream grew between two lag polls the backlog is written at full speed, until a consumer
//! reads an entry appended after the last poll ([`crate::arrivals`]). The pace exists to
//! keep the drain off the sale's CPU; once no reservation arrives there is no sale to keep
//! it off.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The process's pace, shared by its consumers.
pub(crate) struct Pace {
    limiter: DefaultDirectRateLimiter,
    /// Most rows admitted at once (the bucket's size).
    burst: NonZeroU32,
    /// Whether the cap may be lifted while no reservation arrives.
    lift_when_idle: bool,
    /// Lifted now: rows are admitted at once.
    lifted: AtomicBool,
}

impl Pace {
    /// `None` when `per_sec` is 0 (no cap). The bucket holds one batch, or one second's
    /// worth when that is less, so a cap below the batch size still admits whole batches in
    /// steps instead of refusing them.
    pub(crate) fn new(per_sec: u32, batch_size: usize, lift_when_idle: bool) -> Option<Self> {
        let rate = NonZeroU32::new(per_sec)?;
        let batch = u32::try_from(batch_size.max(1)).unwrap_or(u32::MAX);
        let burst = NonZeroU32::new(batch.min(per_sec)).unwrap_or(NonZeroU32::MIN);
        Some(Self {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            burst,
            lift_when_idle,
            lifted: AtomicBool::new(false),
        })
    }

    /// What the last lag poll found: reservations arriving (the cap holds) or not (lifted,
    /// when allowed). Returns whether the cap is lifted now.
    pub(crate) fn observe(&self, arriving: bool) -> bool {
        let lift = self.lift_when_idle && !arriving;
        if self.lifted.swap(lift, Ordering::Relaxed) != lift {
            tracing::info!(
                lifted = lift,
                "{}",
                if lift {
                    "no reservation arrived since the last lag poll: writing the backlog at full speed"
                } else {
                    "reservations arriving: the worker's pace holds"
                }
            );
        }
        lift
    }

    fn is_lifted(&self) -> bool {
        self.lifted.load(Ordering::Relaxed)
    }

    /// Most rows admitted at once: consumers read batches of at most this many, so a batch in
    /// hand waits about a second at most for its turn (and a shutdown no longer than that).
    pub(crate) fn burst(&self) -> usize {
        self.burst.get() as usize
    }

    /// Waits until `rows` more rows may be written; returns how long it waited.
    pub(crate) async fn admit(&self, rows: usize) -> Duration {
        let started = Instant::now();
        let mut left = rows;
        while left > 0 && !self.is_lifted() {
            let n = left.min(self.burst.get() as usize);
            let Some(cells) = NonZeroU32::new(n as u32) else {
                break;
            };
            // `n` never exceeds the bucket, so this cannot fail.
            let _ = self.limiter.until_n_ready(cells).await;
            left -= n;
        }
        started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lifted_pace_admits_at_once_and_holds_again_when_reservations_arrive() {
        let pace = Pace::new(10, 10, true).expect("a cap");
        assert!(pace.admit(10).await < Duration::from_millis(200));
        assert!(pace.observe(false), "idle: lifted");
        assert!(pace.admit(1_000).await < Duration::from_millis(50));
        assert!(!pace.observe(true), "arriving: held");
        assert!(pace.admit(20).await >= Duration::from_millis(900));
    }

    #[tokio::test]
    async fn without_lift_when_idle_the_cap_always_holds() {
        let pace = Pace::new(10, 10, false).expect("a cap");
        assert!(!pace.observe(false));
        assert!(pace.admit(10).await < Duration::from_millis(200));
        assert!(pace.admit(10).await >= Duration::from_millis(900));
    }

    #[test]
    fn zero_is_no_cap() {
        assert!(Pace::new(0, 1000, false).is_none());
    }

    #[test]
    fn the_bucket_is_one_batch_or_one_second() {
        assert_eq!(
            Pace::new(5000, 1000, false).map(|p| p.burst.get()),
            Some(1000)
        );
        assert_eq!(
            Pace::new(300, 1000, false).map(|p| p.burst.get()),
            Some(300)
        );
        assert_eq!(Pace::new(300, 0, false).map(|p| p.burst.get()), Some(1));
    }

    #[tokio::test]
    async fn rows_beyond_the_bucket_wait_for_the_rate() {
        // 100 rows/s, bucket 50: the first 50 go at once, the next 150 take ~1.5 s.
        let pace = Pace::new(100, 50, false).expect("a cap");
        assert!(pace.admit(50).await < Duration::from_millis(200));
        let waited = pace.admit(150).await;
        assert!(
            waited >= Duration::from_millis(1_300),
            "waited only {waited:?}"
        );
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_bucket_is_admitted_in_steps() {
        // Bucket 10 (one second of a 10/s cap); 25 rows: 10 at once, then 15 more at 10/s.
        let pace = Pace::new(10, 1000, false).expect("a cap");
        let waited = pace.admit(25).await;
        assert!(
            waited >= Duration::from_millis(1_300),
            "waited only {waited:?}"
        );
    }
}
