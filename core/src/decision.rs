//! The reservation decision: given an activity's settings and counters, the quantity the
//! user already holds and the clock, may this reservation go ahead?
//!
//! The Redis module runs this once per `SECKILL.RESERVE` on the primary and then replicates
//! the *effects*, so the clock is read exactly once and replay never re-decides.

use crate::refusal::Refusal;

/// An activity as stored in its meta hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sale {
    pub total: u64,
    pub remaining: u64,
    /// Most a single user may hold at once.
    pub limit: u64,
    /// Unix milliseconds; the window is open from `start` inclusive.
    pub start_ms: u64,
    /// Unix milliseconds; the window is closed from `end` inclusive. `0` means no end.
    pub end_ms: u64,
}

/// What an allowed reservation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Stock left after this reservation.
    pub remaining: u64,
    /// Quantity the user holds after this reservation.
    pub held: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityState {
    Pending,
    Open,
    SoldOut,
    Ended,
}

impl ActivityState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityState::Pending => "pending",
            ActivityState::Open => "open",
            ActivityState::SoldOut => "sold-out",
            ActivityState::Ended => "ended",
        }
    }
}

impl Sale {
    pub fn state(&self, now_ms: u64) -> ActivityState {
        if now_ms < self.start_ms {
            ActivityState::Pending
        } else if self.end_ms != 0 && now_ms >= self.end_ms {
            ActivityState::Ended
        } else if self.remaining == 0 {
            ActivityState::SoldOut
        } else {
            ActivityState::Open
        }
    }

    /// Stock currently held by reservations.
    pub fn reserved(&self) -> u64 {
        self.total.saturating_sub(self.remaining)
    }
}

/// Decides a reservation of `qty` (already validated as ≥ 1) by a user holding `held`.
///
/// A user has at most one live reservation per activity, of up to `limit` units: the order
/// table enforces one live order per user and activity too, so the two can never disagree.
/// Checks run in the order the contract gives: window, per-user limit, stock. The limit comes
/// before stock so a repeated click by a buyer is reported as `LIMIT`, never as `SOLDOUT`.
pub fn decide_reserve(sale: &Sale, held: u64, qty: u64, now_ms: u64) -> Result<Grant, Refusal> {
    match sale.state(now_ms) {
        ActivityState::Pending => return Err(Refusal::NotStarted),
        ActivityState::Ended => return Err(Refusal::Ended),
        ActivityState::Open | ActivityState::SoldOut => {}
    }
    if held > 0 || qty > sale.limit {
        return Err(Refusal::Limit);
    }
    if sale.remaining < qty {
        return Err(Refusal::SoldOut);
    }
    Ok(Grant {
        remaining: sale.remaining - qty,
        held: qty,
    })
}

/// Whether a reservation naming product `expected` may buy from an activity whose record
/// sells `sold`: an activity created without a product accepts any, and a caller that names
/// none is not checked.
pub fn product_matches(sold: &[u8], expected: Option<&[u8]>) -> bool {
    match expected {
        None => true,
        Some(p) => sold.is_empty() || sold == p,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn product_check() {
        use super::product_matches;
        assert!(product_matches(b"p1", None));
        assert!(product_matches(b"p1", Some(b"p1")));
        assert!(!product_matches(b"p1", Some(b"p2")));
        assert!(!product_matches(b"p1", Some(b"p1x")));
        assert!(product_matches(b"", Some(b"anything")));
    }

    use super::*;
    use proptest::prelude::*;

    const SALE: Sale = Sale {
        total: 10,
        remaining: 3,
        limit: 2,
        start_ms: 1_000,
        end_ms: 2_000,
    };

    #[test]
    fn decision_table() {
        // (name, sale, held, qty, now, expected)
        type Case = (&'static str, Sale, u64, u64, u64, Result<Grant, Refusal>);
        let cases: &[Case] = &[
            ("before start", SALE, 0, 1, 999, Err(Refusal::NotStarted)),
            (
                "at start",
                SALE,
                0,
                1,
                1_000,
                Ok(Grant {
                    remaining: 2,
                    held: 1,
                }),
            ),
            ("at end", SALE, 0, 1, 2_000, Err(Refusal::Ended)),
            (
                "repeat click at limit",
                SALE,
                2,
                1,
                1_500,
                Err(Refusal::Limit),
            ),
            (
                "over limit in one go",
                SALE,
                0,
                3,
                1_500,
                Err(Refusal::Limit),
            ),
            (
                "second reservation under the limit",
                SALE,
                1,
                1,
                1_500,
                Err(Refusal::Limit),
            ),
            (
                "the limit in one go",
                SALE,
                0,
                2,
                1_500,
                Ok(Grant {
                    remaining: 1,
                    held: 2,
                }),
            ),
            (
                "not enough stock",
                Sale {
                    remaining: 1,
                    ..SALE
                },
                0,
                2,
                1_500,
                Err(Refusal::SoldOut),
            ),
            (
                "sold out",
                Sale {
                    remaining: 0,
                    ..SALE
                },
                0,
                1,
                1_500,
                Err(Refusal::SoldOut),
            ),
            (
                "buyer after sold out",
                Sale {
                    remaining: 0,
                    ..SALE
                },
                2,
                1,
                1_500,
                Err(Refusal::Limit),
            ),
            (
                "no end",
                Sale { end_ms: 0, ..SALE },
                0,
                1,
                u64::MAX,
                Ok(Grant {
                    remaining: 2,
                    held: 1,
                }),
            ),
            (
                "held overflow",
                SALE,
                u64::MAX,
                1,
                1_500,
                Err(Refusal::Limit),
            ),
        ];
        for (name, sale, held, qty, now, want) in cases {
            assert_eq!(decide_reserve(sale, *held, *qty, *now), *want, "{name}");
        }
    }

    #[test]
    fn states() {
        assert_eq!(SALE.state(0), ActivityState::Pending);
        assert_eq!(SALE.state(1_500), ActivityState::Open);
        assert_eq!(
            Sale {
                remaining: 0,
                ..SALE
            }
            .state(1_500),
            ActivityState::SoldOut
        );
        assert_eq!(SALE.state(2_000), ActivityState::Ended);
        assert_eq!(SALE.reserved(), 7);
    }

    proptest! {
        /// Any sequence of reservations by any users never sells more than the stock and never
        /// lets a user hold more than the limit.
        #[test]
        fn never_oversells_nor_exceeds_limit(
            total in 0u64..50,
            limit in 1u64..5,
            clicks in proptest::collection::vec((0usize..20, 1u64..6), 0..200),
        ) {
            let mut sale = Sale { total, remaining: total, limit, start_ms: 0, end_ms: 0 };
            let mut held = [0u64; 20];
            for (user, qty) in clicks {
                if let Ok(g) = decide_reserve(&sale, held[user], qty, 1) {
                    prop_assert!(g.remaining <= sale.remaining);
                    prop_assert_eq!(sale.remaining - g.remaining, qty);
                    sale.remaining = g.remaining;
                    held[user] = g.held;
                }
                prop_assert!(held[user] <= limit);
                prop_assert_eq!(held.iter().sum::<u64>() + sale.remaining, total);
            }
        }

        /// A refusal is always explained by the inputs.
        #[test]
        fn refusals_have_a_reason(
            remaining in 0u64..10, limit in 1u64..5, held in 0u64..6, qty in 1u64..6,
            start in 0u64..100, end in 0u64..200, now in 0u64..200,
        ) {
            let sale = Sale { total: 10, remaining, limit, start_ms: start, end_ms: end };
            match decide_reserve(&sale, held, qty, now) {
                Ok(g) => {
                    prop_assert!(now >= start && (end == 0 || now < end));
                    prop_assert!(held == 0 && qty <= limit && qty <= remaining);
                    prop_assert_eq!(g.remaining, remaining - qty);
                }
                Err(Refusal::NotStarted) => prop_assert!(now < start),
                Err(Refusal::Ended) => prop_assert!(end != 0 && now >= end),
                Err(Refusal::Limit) => prop_assert!(held > 0 || qty > limit),
                Err(Refusal::SoldOut) => prop_assert!(qty > remaining),
                Err(Refusal::NoActivity) => prop_assert!(false, "decision never says NOACTIVITY"),
            }
        }
    }
}
