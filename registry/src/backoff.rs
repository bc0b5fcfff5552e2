//! Doubling pauses with jitter between attempts of the background etcd loops, so a fleet of
//! processes does not reconnect in lockstep after an etcd outage.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
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

    /// The pause before the next attempt: `initial * 2^n` capped at `max`, scaled by a
    /// factor in [0.5, 1.0) drawn from `jitter` (0..1).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let exp = self.attempts.min(20);
        self.attempts = self.attempts.saturating_add(1);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
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
        assert_eq!(b.next_delay(0.0).as_millis(), 250, "jitter halves at most");
        b.reset();
        assert_eq!(b.next_delay(1.0).as_millis(), 100);
    }
}
