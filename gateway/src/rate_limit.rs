//! Per-user and per-IP rate limits (GCRA, governor). Sized by `rate_limit.*` so a person
//! clicking fast is never refused while a script hammering the endpoint is.

use crate::config::RateLimitSettings;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;

pub struct RateLimits {
    /// `None` when `rate_limit.enabled` is false.
    per_user: Option<DefaultKeyedRateLimiter<String>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    pub fn new(s: &RateLimitSettings) -> Self {
        if !s.enabled {
            return Self {
                per_user: None,
                per_ip: None,
            };
        }
        Self {
            per_user: Some(DefaultKeyedRateLimiter::keyed(quota(
                s.per_user_per_second,
                s.per_user_burst,
            ))),
            per_ip: Some(DefaultKeyedRateLimiter::keyed(quota(
                s.per_ip_per_second,
                s.per_ip_burst,
            ))),
        }
    }

    /// Whether one more request from `user` is allowed now.
    pub fn allow_user(&self, user: &str) -> bool {
        match &self.per_user {
            // check_key wants an owned key; only build it when limiting is on.
            Some(l) => l.check_key(&user.to_owned()).is_ok(),
            None => true,
        }
    }

    /// Whether one more request from `ip` is allowed now.
    pub fn allow_ip(&self, ip: IpAddr) -> bool {
        match &self.per_ip {
            Some(l) => l.check_key(&ip).is_ok(),
            None => true,
        }
    }

    /// Forgets keys whose limit has fully replenished (called periodically).
    pub fn prune(&self) {
        if let Some(l) = &self.per_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(user: (u32, u32), ip: (u32, u32)) -> RateLimitSettings {
        RateLimitSettings {
            enabled: true,
            per_user_per_second: user.0,
            per_user_burst: user.1,
            per_ip_per_second: ip.0,
            per_ip_burst: ip.1,
        }
    }

    #[test]
    fn a_burst_passes_and_hammering_is_refused() {
        let l = RateLimits::new(&settings((1, 5), (1, 3)));
        assert!((0..5).all(|_| l.allow_user("u1")));
        assert!(!l.allow_user("u1"));
        assert!(l.allow_user("u2"), "limits are per user");
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!((0..3).all(|_| l.allow_ip(ip)));
        assert!(!l.allow_ip(ip));
    }

    #[test]
    fn default_sizing_never_refuses_a_fast_human() {
        // A human double- or triple-clicking: 20 clicks as fast as possible.
        let l = RateLimits::new(&RateLimitSettings::default());
        assert!((0..20).all(|_| l.allow_user("human")));
    }

    #[test]
    fn disabled_limits_allow_everything() {
        let mut s = settings((1, 1), (1, 1));
        s.enabled = false;
        let l = RateLimits::new(&s);
        assert!((0..100).all(|_| l.allow_user("u") && l.allow_ip([10, 0, 0, 1].into())));
        l.prune();
    }
}
