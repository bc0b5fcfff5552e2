//! Per-user and per-IP rate limits (GCRA, governor). Sized by `rate_limit.*` so a person
//! clicking fast is never refused while a script hammering the endpoint is. The
//! unauthenticated routes that hash passwords (`/api/v1/auth/*`) have stricter limits of
//! their own, per client and per username. Clients are [`IpKey`]s (an IPv6 client is its
//! /64).
//!
//! The limits can change while the gateway runs (runtime settings from etcd, see
//! [`crate::runtime`]): the limiters sit behind an [`ArcSwap`], so the hot path pays one
//! atomic load, and [`RateLimits::apply`] swaps in a new limiter only for the side whose
//! quota changed (that side starts with full buckets).

use crate::client_ip::IpKey;
use crate::config::RateLimitSettings;
use arc_swap::ArcSwap;
use governor::{DefaultKeyedRateLimiter, Quota};
use seckill_core::UserId;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

pub(crate) struct RateLimits {
    current: ArcSwap<Limiters>,
}

struct Limiters {
    /// What these limiters were built from (to tell which side changed).
    settings: RateLimitSettings,
    /// `None` when `rate_limit.enabled` is false.
    per_user: Option<Arc<DefaultKeyedRateLimiter<UserId>>>,
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpKey>>>,
    auth_per_ip: Option<Arc<DefaultKeyedRateLimiter<IpKey>>>,
    /// Keyed by the lowercased username (MySQL compares names case-insensitively).
    auth_per_name: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

fn quota_per_minute(per_minute: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_minute(rate).allow_burst(burst)
}

/// The old limiter when its quota did not change (so its buckets survive), else a new one.
fn keyed<K: std::hash::Hash + Eq + Clone>(
    kept: Option<&Option<Arc<DefaultKeyedRateLimiter<K>>>>,
    q: Quota,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    kept.and_then(Clone::clone)
        .or_else(|| Some(Arc::new(DefaultKeyedRateLimiter::keyed(q))))
}

impl Limiters {
    fn build(s: &RateLimitSettings, old: Option<&Limiters>) -> Self {
        if !s.enabled {
            return Self {
                settings: s.clone(),
                per_user: None,
                per_ip: None,
                auth_per_ip: None,
                auth_per_name: None,
            };
        }
        // Keep a limiter (and the buckets it holds) when its own quota did not change.
        let keep_user = old.filter(|o| {
            (o.settings.per_user_per_second, o.settings.per_user_burst)
                == (s.per_user_per_second, s.per_user_burst)
        });
        let keep_ip = old.filter(|o| {
            (o.settings.per_ip_per_second, o.settings.per_ip_burst)
                == (s.per_ip_per_second, s.per_ip_burst)
        });
        let keep_auth_ip = old.filter(|o| {
            (
                o.settings.auth_per_ip_per_minute,
                o.settings.auth_per_ip_burst,
            ) == (s.auth_per_ip_per_minute, s.auth_per_ip_burst)
        });
        let keep_auth_name = old.filter(|o| {
            (
                o.settings.auth_per_username_per_minute,
                o.settings.auth_per_username_burst,
            ) == (s.auth_per_username_per_minute, s.auth_per_username_burst)
        });
        Self {
            settings: s.clone(),
            per_user: keyed(
                keep_user.map(|o| &o.per_user),
                quota(s.per_user_per_second, s.per_user_burst),
            ),
            per_ip: keyed(
                keep_ip.map(|o| &o.per_ip),
                quota(s.per_ip_per_second, s.per_ip_burst),
            ),
            auth_per_ip: keyed(
                keep_auth_ip.map(|o| &o.auth_per_ip),
                quota_per_minute(s.auth_per_ip_per_minute, s.auth_per_ip_burst),
            ),
            auth_per_name: keyed(
                keep_auth_name.map(|o| &o.auth_per_name),
                quota_per_minute(s.auth_per_username_per_minute, s.auth_per_username_burst),
            ),
        }
    }
}

impl RateLimits {
    pub(crate) fn new(s: &RateLimitSettings) -> Self {
        Self {
            current: ArcSwap::from_pointee(Limiters::build(s, None)),
        }
    }

    /// The settings in force.
    #[cfg(test)]
    pub(crate) fn settings(&self) -> RateLimitSettings {
        self.current.load().settings.clone()
    }

    /// Puts `s` in force; returns whether anything changed.
    pub(crate) fn apply(&self, s: &RateLimitSettings) -> bool {
        let old = self.current.load_full();
        if old.settings == *s {
            return false;
        }
        self.current
            .store(Arc::new(Limiters::build(s, Some(old.as_ref()))));
        true
    }

    /// Whether one more request from `user` is allowed now.
    pub(crate) fn allow_user(&self, user: &UserId) -> bool {
        match &self.current.load().per_user {
            // Keyed by the caller's own id: no key is built per request.
            Some(l) => l.check_key(user).is_ok(),
            None => true,
        }
    }

    /// Whether one more request from `ip` is allowed now.
    pub(crate) fn allow_ip(&self, ip: IpAddr) -> bool {
        match &self.current.load().per_ip {
            Some(l) => l.check_key(&IpKey::from(ip)).is_ok(),
            None => true,
        }
    }

    /// Whether one more login or registration from `ip` is allowed now.
    pub(crate) fn allow_auth_ip(&self, ip: IpAddr) -> bool {
        match &self.current.load().auth_per_ip {
            Some(l) => l.check_key(&IpKey::from(ip)).is_ok(),
            None => true,
        }
    }

    /// Whether one more login or registration naming `username` is allowed now.
    pub(crate) fn allow_auth_name(&self, username: &str) -> bool {
        match &self.current.load().auth_per_name {
            Some(l) => l.check_key(&username.to_lowercase()).is_ok(),
            None => true,
        }
    }

    /// Forgets keys whose limit has fully replenished (called periodically).
    pub(crate) fn prune(&self) {
        let current = self.current.load();
        if let Some(l) = &current.per_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &current.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &current.auth_per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &current.auth_per_name {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: &str) -> UserId {
        UserId::parse(id).expect("valid user id")
    }

    fn settings(user: (u32, u32), ip: (u32, u32)) -> RateLimitSettings {
        RateLimitSettings {
            enabled: true,
            per_user_per_second: user.0,
            per_user_burst: user.1,
            per_ip_per_second: ip.0,
            per_ip_burst: ip.1,
            ..RateLimitSettings::default()
        }
    }

    #[test]
    fn one_ipv6_64_is_one_client_and_auth_limits_are_their_own() {
        let l = RateLimits::new(&settings((1, 5), (1, 3)));
        let in_64 = |i: u128| IpAddr::V6(((0x2001_0db8_0000_0001_u128 << 64) | i).into());
        // Three requests from three addresses of one /64 use up its burst.
        assert!((1..=3).all(|i| l.allow_ip(in_64(i * 1_000_003))));
        assert!(
            !l.allow_ip(in_64(999)),
            "the fourth address of the /64 is refused"
        );
        let next_64 = IpAddr::V6(((0x2001_0db8_0000_0002_u128 << 64) | 1).into());
        assert!(l.allow_ip(next_64), "another /64 has its own bucket");
        // Logins: their own per-client bucket (burst 20 by default), and per name.
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert!((0..20).all(|_| l.allow_auth_ip(ip)));
        assert!(!l.allow_auth_ip(ip));
        assert!((0..5).all(|_| l.allow_auth_name("Alice")));
        assert!(
            !l.allow_auth_name("alice"),
            "names compare case-insensitively"
        );
        assert!(l.allow_auth_name("bob"));
    }

    #[test]
    fn a_burst_passes_and_hammering_is_refused() {
        let l = RateLimits::new(&settings((1, 5), (1, 3)));
        assert!((0..5).all(|_| l.allow_user(&u("u1"))));
        assert!(!l.allow_user(&u("u1")));
        assert!(l.allow_user(&u("u2")), "limits are per user");
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!((0..3).all(|_| l.allow_ip(ip)));
        assert!(!l.allow_ip(ip));
    }

    #[test]
    fn default_sizing_never_refuses_a_fast_human() {
        // A human double- or triple-clicking: 20 clicks as fast as possible.
        let l = RateLimits::new(&RateLimitSettings::default());
        assert!((0..20).all(|_| l.allow_user(&u("human"))));
    }

    #[test]
    fn disabled_limits_allow_everything() {
        let mut s = settings((1, 1), (1, 1));
        s.enabled = false;
        let l = RateLimits::new(&s);
        assert!((0..100).all(|_| l.allow_user(&u("u")) && l.allow_ip([10, 0, 0, 1].into())));
        l.prune();
    }

    #[test]
    fn apply_changes_only_the_side_that_changed() {
        let l = RateLimits::new(&settings((1, 5), (1, 3)));
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!((0..3).all(|_| l.allow_ip(ip)));
        assert!(
            !l.apply(&settings((1, 5), (1, 3))),
            "same settings: no change"
        );
        // The per-user burst drops to 1: the next request of a fresh user passes, the second
        // is refused; the per-IP bucket (unchanged quota) keeps its state.
        assert!(l.apply(&settings((1, 1), (1, 3))));
        assert!(l.allow_user(&u("u1")));
        assert!(!l.allow_user(&u("u1")));
        assert!(
            !l.allow_ip(ip),
            "the per-IP limiter was kept, bucket and all"
        );
        // Disabling and re-enabling.
        let mut off = settings((1, 1), (1, 3));
        off.enabled = false;
        assert!(l.apply(&off));
        assert!((0..10).all(|_| l.allow_user(&u("u1"))));
        assert_eq!(l.settings(), off);
    }
}
