//! The audit comparison, pure: Redis's view of an activity against MySQL's orders.
//!
//! `seckill audit` gathers both sides and prints [`Report`]; any [`Drift`] makes it exit 1.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What Redis holds for the activity.
#[derive(Debug, Clone, Default)]
pub struct RedisSide {
    pub total: u64,
    pub remaining: u64,
    /// `user -> quantity held` (the buyers hash).
    pub buyers: HashMap<String, u64>,
    /// Stream entries: reservation id -> (user, qty), `None` when the entry is malformed.
    pub reservations: BTreeMap<String, Option<(String, u64)>>,
    /// Reservation ids released by SECKILL.RELEASE.
    pub released: HashSet<String>,
    /// Reservation ids in the dead-letter stream.
    pub dead: HashSet<String>,
    /// Entries not yet drained by the workers (group lag + pending).
    pub in_flight: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Paid,
    Cancelled,
    Expired,
}

impl Status {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Status::Pending,
            "paid" => Status::Paid,
            "cancelled" => Status::Cancelled,
            "expired" => Status::Expired,
            _ => return None,
        })
    }
    pub fn is_live(self) -> bool {
        matches!(self, Status::Pending | Status::Paid)
    }
}

#[derive(Debug, Clone)]
pub struct DbOrder {
    pub reservation_id: String,
    pub user_id: String,
    pub quantity: u64,
    pub status: Status,
    pub released_at_set: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// `remaining + live quantity != total`.
    Stock {
        total: u64,
        remaining: u64,
        live_quantity: u64,
    },
    /// A drained reservation has no order row (and was not dead-lettered).
    MissingOrder(String),
    /// An order row whose reservation is not in the stream.
    OrderWithoutReservation(String),
    /// A live (pending or paid) order whose stock was released.
    LiveOrderReleased(String),
    /// A cancelled or expired order whose stock was not returned.
    NotReleased(String),
    /// The buyers hash and the live orders disagree about a user.
    Buyer {
        user: String,
        redis: u64,
        mysql: u64,
    },
    /// Reservations that went to the dead-letter stream: their stock is held with no order.
    DeadLettered(usize),
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Stock {
                total,
                remaining,
                live_quantity,
            } => write!(
                f,
                "stock: remaining {remaining} + live orders {live_quantity} != total {total}"
            ),
            Drift::MissingOrder(r) => write!(f, "reservation {r} has no order row"),
            Drift::OrderWithoutReservation(r) => {
                write!(f, "order of reservation {r} has no stream entry")
            }
            Drift::LiveOrderReleased(r) => {
                write!(f, "live order of reservation {r} had its stock released")
            }
            Drift::NotReleased(r) => write!(
                f,
                "cancelled/expired order of reservation {r} still holds its stock"
            ),
            Drift::Buyer { user, redis, mysql } => write!(
                f,
                "user {user}: Redis buyers hash holds {redis}, live orders hold {mysql}"
            ),
            Drift::DeadLettered(n) => write!(f, "{n} reservation(s) in the dead-letter stream"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub reservations: usize,
    pub orders: usize,
    pub live_orders: usize,
    pub live_quantity: u64,
    pub in_flight: u64,
    pub drift: Vec<Drift>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.drift.is_empty()
    }
}

/// Compares both sides. Reservations not yet drained are not drift while the stream still
/// has that many entries in flight; the stock check is skipped then too, since in-flight
/// reservations hold stock that has no row yet.
pub fn audit(redis: &RedisSide, orders: &[DbOrder]) -> Report {
    let mut drift = Vec::new();
    let by_rid: HashMap<&str, &DbOrder> = orders
        .iter()
        .map(|o| (o.reservation_id.as_str(), o))
        .collect();

    let missing: Vec<&String> = redis
        .reservations
        .keys()
        .filter(|rid| !by_rid.contains_key(rid.as_str()) && !redis.dead.contains(*rid))
        .collect();
    if missing.len() as u64 > redis.in_flight {
        drift.extend(missing.iter().map(|r| Drift::MissingOrder((*r).clone())));
    }

    let mut live_by_user: HashMap<&str, u64> = HashMap::new();
    let mut live_quantity = 0;
    let mut live_orders = 0;
    for o in orders {
        if !redis.reservations.contains_key(&o.reservation_id) {
            drift.push(Drift::OrderWithoutReservation(o.reservation_id.clone()));
        }
        let released = redis.released.contains(&o.reservation_id);
        if o.status.is_live() {
            live_orders += 1;
            live_quantity += o.quantity;
            *live_by_user.entry(o.user_id.as_str()).or_default() += o.quantity;
            if released {
                drift.push(Drift::LiveOrderReleased(o.reservation_id.clone()));
            }
        } else if !released {
            drift.push(Drift::NotReleased(o.reservation_id.clone()));
        }
    }

    if missing.is_empty() {
        let mut users: Vec<&str> = live_by_user
            .keys()
            .copied()
            .chain(redis.buyers.keys().map(String::as_str))
            .collect();
        users.sort_unstable();
        users.dedup();
        for user in users {
            let r = redis.buyers.get(user).copied().unwrap_or(0);
            let m = live_by_user.get(user).copied().unwrap_or(0);
            if r != m {
                drift.push(Drift::Buyer {
                    user: user.to_owned(),
                    redis: r,
                    mysql: m,
                });
            }
        }
        if redis.remaining + live_quantity != redis.total {
            drift.push(Drift::Stock {
                total: redis.total,
                remaining: redis.remaining,
                live_quantity,
            });
        }
    }
    let dead_unreleased = redis
        .dead
        .iter()
        .filter(|r| !redis.released.contains(*r) && !by_rid.contains_key(r.as_str()))
        .count();
    if dead_unreleased > 0 {
        drift.push(Drift::DeadLettered(dead_unreleased));
    }
    Report {
        reservations: redis.reservations.len(),
        orders: orders.len(),
        live_orders,
        live_quantity,
        in_flight: redis.in_flight,
        drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> RedisSide {
        RedisSide {
            total: 10,
            remaining: 7,
            buyers: [("a".into(), 1), ("b".into(), 2)].into(),
            reservations: [
                ("1-0".into(), Some(("a".into(), 1))),
                ("2-0".into(), Some(("b".into(), 2))),
                ("3-0".into(), Some(("c".into(), 1))),
            ]
            .into(),
            released: ["3-0".into()].into(),
            dead: HashSet::new(),
            in_flight: 0,
        }
    }

    fn order(rid: &str, user: &str, qty: u64, status: Status) -> DbOrder {
        DbOrder {
            reservation_id: rid.into(),
            user_id: user.into(),
            quantity: qty,
            status,
            released_at_set: !status.is_live(),
        }
    }

    fn clean_orders() -> Vec<DbOrder> {
        vec![
            order("1-0", "a", 1, Status::Paid),
            order("2-0", "b", 2, Status::Pending),
            order("3-0", "c", 1, Status::Expired),
        ]
    }

    #[test]
    fn consistent_sides_are_clean() {
        let r = audit(&side(), &clean_orders());
        assert!(r.is_clean(), "{:?}", r.drift);
        assert_eq!((r.live_orders, r.live_quantity), (2, 3));
    }

    #[test]
    fn drift_table() {
        type Case = (
            &'static str,
            Box<dyn Fn(&mut RedisSide, &mut Vec<DbOrder>)>,
            Drift,
        );
        let cases: Vec<Case> = vec![
            (
                "lost order",
                Box::new(|_, o| {
                    o.remove(1);
                }),
                Drift::MissingOrder("2-0".into()),
            ),
            (
                "phantom order",
                Box::new(|_, o| o.push(order("9-0", "z", 1, Status::Cancelled))),
                Drift::OrderWithoutReservation("9-0".into()),
            ),
            (
                "paid but released",
                Box::new(|r, _| {
                    r.released.insert("1-0".into());
                }),
                Drift::LiveOrderReleased("1-0".into()),
            ),
            (
                "expired not released",
                Box::new(|r, _| {
                    r.released.clear();
                }),
                Drift::NotReleased("3-0".into()),
            ),
            (
                "oversold",
                Box::new(|r, _| r.remaining = 8),
                Drift::Stock {
                    total: 10,
                    remaining: 8,
                    live_quantity: 3,
                },
            ),
            (
                "buyer mark lost",
                Box::new(|r, _| {
                    r.buyers.remove("a");
                }),
                Drift::Buyer {
                    user: "a".into(),
                    redis: 0,
                    mysql: 1,
                },
            ),
        ];
        for (name, mutate, want) in cases {
            let (mut r, mut o) = (side(), clean_orders());
            mutate(&mut r, &mut o);
            let rep = audit(&r, &o);
            assert!(rep.drift.contains(&want), "{name}: {:?}", rep.drift);
        }
    }

    #[test]
    fn in_flight_reservations_are_not_drift() {
        let mut orders = clean_orders();
        orders.remove(1);
        let mut r = side();
        r.in_flight = 1;
        assert!(audit(&r, &orders).is_clean());
    }
}
