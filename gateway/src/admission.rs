//! Admission on the gateway: the policy in force (which activities need a token, how much
//! proof of work, the opening window; live through etcd), the key, and the seen-set.
//!
//! Tickets and challenges themselves are `seckill_core::admission` (pure, unit-tested).
//! What this adds is state that never leaves the process:
//!
//! - **The seen-set.** A ticket that bought a reservation here is remembered until it
//!   expires, and refused if it comes back (409 `ADMISSION_USED`). It is not shared with other
//!   gateways and needs not be: a ticket is bound to one user and one activity, and the
//!   module's per-user limit already refuses a second live reservation of that user on any
//!   gateway. What the set adds is the case the limit cannot see: after the winner cancels (or
//!   the payment window expires) the limit is lifted, and the old ticket would otherwise buy
//!   again without a new admission. A ticket is only marked once its reservation succeeded (a
//!   sold-out or failed attempt may retry with it), and while its request is in flight (two
//!   concurrent uses: the second is refused). Bounded by [`SEEN_CAPACITY`]: when full, expired
//!   entries are dropped, and if it is still full new tickets are let through unmarked (the
//!   per-user limit still holds) with a warning.

use crate::config::{ActivityAdmission, AdmissionSettings};
use arc_swap::ArcSwap;
use seckill_core::admission::AdmissionKeys;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The live part of the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    pub required: bool,
    pub difficulty: u8,
    pub window_ms: u64,
    /// Per-activity overrides of `required` and `difficulty`.
    pub activities: BTreeMap<String, ActivityAdmission>,
}

/// What one activity asks of its buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    pub required: bool,
    pub difficulty: u8,
    pub window_ms: u64,
}

impl Policy {
    pub(crate) fn from_settings(a: &AdmissionSettings) -> Self {
        Self {
            required: a.required,
            difficulty: a.difficulty,
            window_ms: a.window_ms,
            activities: a.activities.clone(),
        }
    }

    pub(crate) fn rules(&self, activity: &str) -> Rules {
        let o = if self.activities.is_empty() {
            None
        } else {
            self.activities.get(activity)
        };
        Rules {
            required: o.and_then(|o| o.required).unwrap_or(self.required),
            difficulty: o.and_then(|o| o.difficulty).unwrap_or(self.difficulty),
            window_ms: self.window_ms,
        }
    }
}

pub(crate) struct Admission {
    pub keys: AdmissionKeys,
    policy: ArcSwap<Policy>,
    pub token_ttl_ms: u64,
    pub challenge_ttl_ms: u64,
    pub seen: SeenSet,
}

impl Admission {
    pub(crate) fn new(key: &[u8], settings: &AdmissionSettings) -> Self {
        Self {
            keys: AdmissionKeys::derive(key),
            policy: ArcSwap::from_pointee(Policy::from_settings(settings)),
            token_ttl_ms: settings.token_ttl_secs.saturating_mul(1000),
            challenge_ttl_ms: settings.challenge_ttl_secs.saturating_mul(1000),
            seen: SeenSet::new(SEEN_CAPACITY),
        }
    }

    /// The rules for `activity` now (one atomic load).
    pub(crate) fn rules(&self, activity: &str) -> Rules {
        self.policy.load().rules(activity)
    }

    /// Puts a new policy in force (runtime settings).
    pub(crate) fn set_policy(&self, p: Policy) {
        self.policy.store(Arc::new(p));
    }
}

/// Most tickets remembered by one gateway (~40 bytes each). Only tickets that bought a
/// reservation are kept, so this is the winners of every sale within a ticket's lifetime.
pub(crate) const SEEN_CAPACITY: usize = 1 << 20;
const SHARDS: usize = 16;

/// Hashes a ticket nonce by taking its low bits: nonces are random and come from a ticket
/// whose MAC was checked, so nobody can choose them to collide (no need for SipHash's cost).
#[derive(Default)]
struct NonceHasher(u64);

impl Hasher for NonceHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type Nonces = HashMap<u128, u64, BuildHasherDefault<NonceHasher>>;

/// Tickets that bought a reservation here (or are buying one now), until they expire.
pub(crate) struct SeenSet {
    shards: Vec<Mutex<Nonces>>,
    per_shard: usize,
    warned: AtomicBool,
}

impl SeenSet {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            // Sized for a sale's winners up front, so the hot path rarely grows a table.
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Nonces::with_capacity_and_hasher(
                        1024.min(capacity / SHARDS),
                        Default::default(),
                    ))
                })
                .collect(),
            per_shard: (capacity / SHARDS).max(1),
            warned: AtomicBool::new(false),
        }
    }

    fn shard(&self, nonce: u128) -> std::sync::MutexGuard<'_, Nonces> {
        // The high bits pick the shard, the low bits the slot inside it.
        let m = &self.shards[((nonce >> 64) as usize) % SHARDS];
        match m.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Marks `nonce` (expiring at `expires_ms`); false when it is already marked.
    pub(crate) fn mark(&self, nonce: u128, expires_ms: u64, now_ms: u64) -> bool {
        let mut m = self.shard(nonce);
        if let Some(exp) = m.get(&nonce) {
            if *exp > now_ms {
                return false;
            }
        }
        if m.len() >= self.per_shard {
            m.retain(|_, exp| *exp > now_ms);
            if m.len() >= self.per_shard {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        capacity = self.per_shard * SHARDS,
                        "admission seen-set full: tickets are no longer marked (the per-user limit still holds)"
                    );
                }
                return true;
            }
        }
        m.insert(nonce, expires_ms);
        true
    }

    /// Unmarks `nonce` (its reservation did not happen; the ticket may be used again).
    pub(crate) fn forget(&self, nonce: u128) {
        self.shard(nonce).remove(&nonce);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_activity_overrides_win() {
        let mut s = AdmissionSettings {
            required: false,
            difficulty: 3,
            ..AdmissionSettings::default()
        };
        s.activities.insert(
            "42".into(),
            ActivityAdmission {
                required: Some(true),
                difficulty: None,
            },
        );
        s.activities.insert(
            "43".into(),
            ActivityAdmission {
                required: None,
                difficulty: Some(0),
            },
        );
        let p = Policy::from_settings(&s);
        assert_eq!((p.rules("1").required, p.rules("1").difficulty), (false, 3));
        assert_eq!(
            (p.rules("42").required, p.rules("42").difficulty),
            (true, 3)
        );
        assert_eq!(
            (p.rules("43").required, p.rules("43").difficulty),
            (false, 0)
        );
    }

    #[test]
    fn the_seen_set_refuses_a_second_use_until_expiry_and_stays_bounded() {
        let s = SeenSet::new(64);
        assert!(s.mark(1, 100, 0));
        assert!(!s.mark(1, 100, 50), "second use before expiry");
        assert!(s.mark(1, 200, 100), "an expired mark does not count");
        s.forget(1);
        assert!(s.mark(1, 200, 100), "forgotten: usable again");
        // Full of live marks: new tickets pass unmarked instead of growing the set.
        for n in 0..10_000u128 {
            s.mark(n, 1_000, 0);
        }
        assert!(s.len() <= 64, "{}", s.len());
        // Expired marks make room again.
        assert!(s.mark(5_000_000, 5_000, 2_000));
        assert!(!s.mark(5_000_000, 5_000, 2_000));
    }
}
