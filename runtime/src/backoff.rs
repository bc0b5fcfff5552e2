//! Exponential backoff with jitter, as a pure state machine (the caller sleeps): the worker's
//! retries while MySQL or Redis are down and the background etcd loops, so a fleet of
//! processes does not retry in lockstep after an outage.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Failures in a row since the last success.
    attempts: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempts: 0,
        }
    }

    /// The ceiling of the next pause: `initial * 2^attempts`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.attempts.min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Records a failure and returns how long to wait: the ceiling scaled by a factor in
    /// [0.5, 1.0] drawn from `jitter` (0..1).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let ceiling = self.ceiling();
        self.attempts = self.attempts.saturating_add(1);
        ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Failures in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let d: Vec<u128> = (0..5).map(|_| b.next_delay(1.0).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 500, 500]);
        assert_eq!(b.attempts(), 5);
        assert_eq!(b.next_delay(0.0).as_millis(), 250, "jitter halves at most");
        b.reset();
        assert_eq!(b.next_delay(1.0).as_millis(), 100);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..1_000 {
            assert!(b.next_delay(0.7) <= Duration::from_secs(30));
        }
    }
}
