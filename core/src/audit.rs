//! The audit comparison, pure: Redis's view of an activity against MySQL's orders.
//!
//! `seckill audit` gathers both sides and prints [`Report`]; any [`Drift`] makes it exit 1.
//!
//! Every check runs every time and compares identities, not counts:
//! - each stream entry that the consumer group has drained (not in its pending list, at or
//!   below its last-delivered id) has an order row or a dead letter; entries still in
//!   flight are named by the group, not inferred from a number;
//! - each order row has its stream entry, unless the entry was trimmed as final (below the
//!   activity's trim point): then the order must be final (paid, or released);
//! - a live order's stock was never released (release marker or `released_at`), a
//!   cancelled/expired order's was, in both Redis and MySQL;
//! - a dead-lettered reservation that held stock had it released;
//! - stock: `remaining + held == total`, where held is the quantity of the live orders and
//!   of the reservations still in flight without an order row; buyers: the buyers hash
//!   equals the same holdings per user. Both count only the current sale: entries and
//!   orders at or below the sale boundary belong to an earlier sale of a re-created
//!   activity, whose stock and buyers were reset;
//! - an order whose release keeps failing is reported with its last error.

use crate::stream_id::StreamId;
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
    /// Reservation ids released by SECKILL.RELEASE (the release markers).
    pub released: HashSet<String>,
    /// Reservation ids in the dead-letter stream -> whether the entry held stock (it decodes
    /// as a reservation of this activity; a malformed one never did).
    pub dead: HashMap<String, bool>,
    /// The consumer group's last-delivered id; `None` when there is no group yet (then
    /// every entry is in flight).
    pub last_delivered: Option<StreamId>,
    /// Ids pending in the group (delivered, not acked).
    pub pending: HashSet<String>,
    /// Entries below this id were trimmed as final (`0-0`: none).
    pub trimmed_below: StreamId,
    /// Entries at or below this id belong to an earlier sale of the activity id (`0-0`: none).
    pub sale_from: StreamId,
}

impl RedisSide {
    /// Whether the entry `id` is not drained yet: the group has not delivered it, or has
    /// and it is still pending.
    pub fn is_in_flight(&self, rid: &str, id: StreamId) -> bool {
        self.pending.contains(rid) || self.last_delivered.is_none_or(|last| id > last)
    }
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
    /// Failed release attempts since the last success (0: none).
    pub release_attempts: u32,
    /// The last release error, while it keeps failing.
    pub release_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// `remaining + held != total` (held: live orders and in-flight reservations).
    Stock {
        total: u64,
        remaining: u64,
        held: u64,
    },
    /// A drained reservation has no order row and was not dead-lettered.
    MissingOrder(String),
    /// An order row whose reservation is not in the stream (and was not trimmed).
    OrderWithoutReservation(String),
    /// A live (pending or paid) order whose stock was released.
    LiveOrderReleased(String),
    /// A cancelled or expired order whose stock was not returned.
    NotReleased(String),
    /// A cancelled or expired order stamped `released_at` although Redis never released it.
    ReleasedAtWithoutRelease(String),
    /// Redis released a cancelled or expired order but `released_at` is not set yet (the
    /// sweeper stamps it on its next pass).
    ReleaseNotRecorded(String),
    /// An order below the trim point (its entry is gone) that is not final.
    TrimmedNotFinal(String),
    /// The buyers hash and the holdings disagree about a user.
    Buyer {
        user: String,
        redis: u64,
        mysql: u64,
    },
    /// A dead-lettered reservation whose stock was never released.
    DeadLettered(String),
    /// A cancelled or expired order whose release keeps failing.
    ReleaseFailing {
        reservation: String,
        attempts: u32,
        error: String,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Stock {
                total,
                remaining,
                held,
            } => write!(
                f,
                "stock: remaining {remaining} + held {held} (live orders and reservations in \
                 flight) != total {total}"
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
            Drift::ReleasedAtWithoutRelease(r) => write!(
                f,
                "order of reservation {r} has released_at set but Redis never released it"
            ),
            Drift::ReleaseNotRecorded(r) => write!(
                f,
                "reservation {r} was released in Redis but its order has no released_at yet"
            ),
            Drift::TrimmedNotFinal(r) => write!(
                f,
                "order of reservation {r} is not final although its entry was trimmed"
            ),
            Drift::Buyer { user, redis, mysql } => write!(
                f,
                "user {user}: Redis buyers hash holds {redis}, orders and reservations in \
                 flight hold {mysql}"
            ),
            Drift::DeadLettered(r) => write!(
                f,
                "dead-lettered reservation {r} still holds its stock (never released)"
            ),
            Drift::ReleaseFailing {
                reservation,
                attempts,
                error,
            } => write!(
                f,
                "release of reservation {reservation} failed {attempts} time(s): {error}"
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub reservations: usize,
    pub orders: usize,
    pub live_orders: usize,
    pub live_quantity: u64,
    /// Stream entries not drained yet.
    pub in_flight: u64,
    /// Entries below this id were trimmed as final (`0-0`: none).
    pub trimmed_below: StreamId,
    pub drift: Vec<Drift>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.drift.is_empty()
    }
}

/// Compares both sides (see the module documentation for every check).
pub fn audit(redis: &RedisSide, orders: &[DbOrder]) -> Report {
    let mut drift = Vec::new();
    let by_rid: HashMap<&str, &DbOrder> = orders
        .iter()
        .map(|o| (o.reservation_id.as_str(), o))
        .collect();
    let current_sale = |id: StreamId| id > redis.sale_from;
    // What the current sale's stock and buyer marks are held by.
    let mut held_by_user: HashMap<&str, u64> = HashMap::new();
    let mut held = 0;
    let mut in_flight = 0;

    for (rid, parsed) in &redis.reservations {
        let Ok(id) = StreamId::parse(rid) else {
            continue;
        };
        let flying = redis.is_in_flight(rid, id);
        in_flight += u64::from(flying);
        if by_rid.contains_key(rid.as_str()) {
            continue;
        }
        if flying {
            // Reserved, not yet an order: it holds its stock and its buyer mark.
            if let Some((user, qty)) = parsed {
                if current_sale(id) && !redis.released.contains(rid) {
                    held += *qty;
                    *held_by_user.entry(user.as_str()).or_default() += *qty;
                }
            }
        } else if !redis.dead.contains_key(rid) {
            drift.push(Drift::MissingOrder(rid.clone()));
        }
    }

    let mut live_quantity = 0;
    let mut live_orders = 0;
    for o in orders {
        let rid = o.reservation_id.as_str();
        let Ok(id) = StreamId::parse(rid) else {
            drift.push(Drift::OrderWithoutReservation(o.reservation_id.clone()));
            continue;
        };
        if o.release_attempts > 0 && !o.released_at_set {
            drift.push(Drift::ReleaseFailing {
                reservation: o.reservation_id.clone(),
                attempts: o.release_attempts,
                error: o.release_error.clone().unwrap_or_default(),
            });
        }
        if o.status.is_live() {
            live_orders += 1;
            live_quantity += o.quantity;
        }
        if id < redis.trimmed_below {
            // The entry and its release marker were trimmed as final, by design; the order
            // must be final too.
            if o.status == Status::Pending || (!o.status.is_live() && !o.released_at_set) {
                drift.push(Drift::TrimmedNotFinal(o.reservation_id.clone()));
            }
            if o.status.is_live() && current_sale(id) {
                held += o.quantity;
                *held_by_user.entry(o.user_id.as_str()).or_default() += o.quantity;
            }
            continue;
        }
        if !redis.reservations.contains_key(rid) {
            drift.push(Drift::OrderWithoutReservation(o.reservation_id.clone()));
            continue;
        }
        if !current_sale(id) {
            // An earlier sale: RELEASE of it changes nothing (no marker) and its stock and
            // buyers were reset by the re-create; only `released_at` tells.
            if !o.status.is_live() && !o.released_at_set {
                drift.push(Drift::NotReleased(o.reservation_id.clone()));
            }
            continue;
        }
        let marker = redis.released.contains(rid);
        if o.status.is_live() {
            held += o.quantity;
            *held_by_user.entry(o.user_id.as_str()).or_default() += o.quantity;
            if marker || o.released_at_set {
                drift.push(Drift::LiveOrderReleased(o.reservation_id.clone()));
            }
        } else {
            match (marker, o.released_at_set) {
                (true, true) => {}
                (false, false) => drift.push(Drift::NotReleased(o.reservation_id.clone())),
                (false, true) => {
                    drift.push(Drift::ReleasedAtWithoutRelease(o.reservation_id.clone()))
                }
                (true, false) => drift.push(Drift::ReleaseNotRecorded(o.reservation_id.clone())),
            }
        }
    }

    let mut dead: Vec<&String> = redis
        .dead
        .iter()
        .filter(|(rid, holds)| {
            **holds
                && !redis.released.contains(*rid)
                && !by_rid.contains_key(rid.as_str())
                && StreamId::parse(rid)
                    .is_ok_and(|id| id >= redis.trimmed_below && current_sale(id))
        })
        .map(|(rid, _)| rid)
        .collect();
    dead.sort();
    drift.extend(dead.into_iter().map(|r| Drift::DeadLettered(r.clone())));

    let mut users: Vec<&str> = held_by_user
        .keys()
        .copied()
        .chain(redis.buyers.keys().map(String::as_str))
        .collect();
    users.sort_unstable();
    users.dedup();
    for user in users {
        let r = redis.buyers.get(user).copied().unwrap_or(0);
        let m = held_by_user.get(user).copied().unwrap_or(0);
        if r != m {
            drift.push(Drift::Buyer {
                user: user.to_owned(),
                redis: r,
                mysql: m,
            });
        }
    }
    if redis.remaining + held != redis.total {
        drift.push(Drift::Stock {
            total: redis.total,
            remaining: redis.remaining,
            held,
        });
    }
    Report {
        reservations: redis.reservations.len(),
        orders: orders.len(),
        live_orders,
        live_quantity,
        in_flight,
        trimmed_below: redis.trimmed_below,
        drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Activity of total 10: a paid 1 (a), a pending 2 (b), an expired and released 1 (c);
    /// all drained.
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
            dead: HashMap::new(),
            last_delivered: Some(StreamId::new(3, 0)),
            pending: HashSet::new(),
            trimmed_below: StreamId::ZERO,
            sale_from: StreamId::ZERO,
        }
    }

    fn order(rid: &str, user: &str, qty: u64, status: Status) -> DbOrder {
        DbOrder {
            reservation_id: rid.into(),
            user_id: user.into(),
            quantity: qty,
            status,
            released_at_set: !status.is_live(),
            release_attempts: 0,
            release_error: None,
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
        assert_eq!((r.live_orders, r.live_quantity, r.in_flight), (2, 3, 0));
    }

    type Mutation = Box<dyn Fn(&mut RedisSide, &mut Vec<DbOrder>)>;

    /// One unit that neither Redis's remaining stock nor a live order holds: undersold.
    const STOCK_SHORT_BY_ONE: Drift = Drift::Stock {
        total: 10,
        remaining: 6,
        held: 3,
    };

    /// Each drift kind, caused on purpose: the audit must name exactly that finding (and,
    /// where the fault also moves stock, the stock finding), nothing it cannot explain.
    #[test]
    fn drift_table() {
        let cases: Vec<(&str, Mutation, Vec<Drift>)> = vec![
            (
                "missing order (drained, no row, no dead letter)",
                Box::new(|_, o| {
                    o.remove(1);
                }),
                vec![
                    Drift::MissingOrder("2-0".into()),
                    // Nothing holds b's 2 units now, yet Redis still counts them sold.
                    Drift::Buyer {
                        user: "b".into(),
                        redis: 2,
                        mysql: 0,
                    },
                    Drift::Stock {
                        total: 10,
                        remaining: 7,
                        held: 1,
                    },
                ],
            ),
            (
                "extra order (no reservation)",
                Box::new(|_, o| o.push(order("9-0", "z", 1, Status::Cancelled))),
                vec![Drift::OrderWithoutReservation("9-0".into())],
            ),
            (
                "stock off by one (a unit lost by the counter)",
                Box::new(|r, _| r.remaining = 6),
                vec![STOCK_SHORT_BY_ONE],
            ),
            (
                "released twice (the expired order's unit came back twice)",
                Box::new(|r, _| r.remaining = 8),
                vec![Drift::Stock {
                    total: 10,
                    remaining: 8,
                    held: 3,
                }],
            ),
            (
                "released but still live (Redis)",
                Box::new(|r, _| {
                    r.released.insert("1-0".into());
                }),
                vec![Drift::LiveOrderReleased("1-0".into())],
            ),
            (
                "released but still live (MySQL released_at)",
                Box::new(|_, o| o[1].released_at_set = true),
                vec![Drift::LiveOrderReleased("2-0".into())],
            ),
            (
                "expired, never released",
                Box::new(|r, o| {
                    r.released.clear();
                    r.remaining = 6;
                    o[2].released_at_set = false;
                }),
                vec![Drift::NotReleased("3-0".into()), STOCK_SHORT_BY_ONE],
            ),
            (
                "released_at stamped, Redis never released",
                Box::new(|r, _| {
                    r.released.clear();
                    r.remaining = 6;
                }),
                vec![
                    Drift::ReleasedAtWithoutRelease("3-0".into()),
                    STOCK_SHORT_BY_ONE,
                ],
            ),
            (
                "released in Redis, released_at not stamped yet",
                Box::new(|_, o| o[2].released_at_set = false),
                vec![Drift::ReleaseNotRecorded("3-0".into())],
            ),
            (
                "buyer mark lost",
                Box::new(|r, _| {
                    r.buyers.remove("a");
                }),
                vec![Drift::Buyer {
                    user: "a".into(),
                    redis: 0,
                    mysql: 1,
                }],
            ),
            (
                "dead letter still holding stock",
                Box::new(|r, o| {
                    o.remove(1);
                    r.dead.insert("2-0".into(), true);
                }),
                vec![
                    Drift::DeadLettered("2-0".into()),
                    Drift::Buyer {
                        user: "b".into(),
                        redis: 2,
                        mysql: 0,
                    },
                    Drift::Stock {
                        total: 10,
                        remaining: 7,
                        held: 1,
                    },
                ],
            ),
            (
                "trimmed order not final",
                Box::new(|r, o| {
                    r.reservations.remove("1-0");
                    r.trimmed_below = StreamId::new(1, 1);
                    o[0].status = Status::Expired;
                    o[0].released_at_set = false;
                    r.buyers.remove("a");
                    r.remaining = 8;
                }),
                vec![Drift::TrimmedNotFinal("1-0".into())],
            ),
            (
                "release keeps failing",
                Box::new(|r, o| {
                    r.released.clear();
                    r.remaining = 6;
                    o[2].released_at_set = false;
                    o[2].release_attempts = 3;
                    o[2].release_error = Some("NOACTIVITY".into());
                }),
                vec![
                    Drift::ReleaseFailing {
                        reservation: "3-0".into(),
                        attempts: 3,
                        error: "NOACTIVITY".into(),
                    },
                    Drift::NotReleased("3-0".into()),
                    STOCK_SHORT_BY_ONE,
                ],
            ),
        ];
        for (name, mutate, want) in cases {
            let (mut r, mut o) = (side(), clean_orders());
            mutate(&mut r, &mut o);
            let mut got = audit(&r, &o).drift;
            let mut want = want;
            let key = |d: &Drift| format!("{d:?}");
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn reservations_in_flight_are_named_not_counted() {
        let mut r = side();
        let mut o = clean_orders();
        // d reserved (4-0) and the group has not delivered it; e's (5-0) is pending in a
        // consumer; b's 2-0 is drained but has no row. One in-flight count must not hide
        // the missing row, as a count comparison would.
        r.reservations.insert("4-0".into(), Some(("d".into(), 1)));
        r.reservations.insert("5-0".into(), Some(("e".into(), 1)));
        r.pending.insert("5-0".into());
        r.last_delivered = Some(StreamId::new(5, 0));
        r.buyers.insert("d".into(), 1);
        r.buyers.insert("e".into(), 1);
        r.remaining = 5;
        let rep = audit(&r, &o);
        assert_eq!(
            rep.in_flight,
            2 - 1,
            "4-0 was delivered (last 5-0), only 5-0 flies"
        );
        assert!(rep.drift.contains(&Drift::MissingOrder("4-0".into())));

        r.last_delivered = Some(StreamId::new(3, 0));
        let rep = audit(&r, &o);
        assert!(rep.is_clean(), "{:?}", rep.drift);
        assert_eq!(rep.in_flight, 2);

        o.remove(1);
        let rep = audit(&r, &o);
        assert!(
            rep.drift.contains(&Drift::MissingOrder("2-0".into())),
            "{:?}",
            rep.drift
        );
        // Every check still ran: the stock and the buyer are reported too.
        assert!(rep.drift.iter().any(|d| matches!(d, Drift::Stock { .. })));
        assert!(rep.drift.iter().any(|d| matches!(d, Drift::Buyer { .. })));
    }

    #[test]
    fn trimmed_and_earlier_sales_are_accounted_for() {
        // Sale boundary 2-0: 1-0 and 2-0 belong to an earlier sale (stock and buyers were
        // reset); everything below 3-1 was trimmed. The current sale sold 3-0 (paid, trimmed)
        // and 4-0 (pending), and dead-lettered 5-0, whose stock went back.
        let r = RedisSide {
            total: 5,
            remaining: 3,
            buyers: [("c".into(), 1), ("d".into(), 1)].into(),
            reservations: [
                ("4-0".into(), Some(("d".into(), 1))),
                ("5-0".into(), Some(("e".into(), 1))),
            ]
            .into(),
            released: ["5-0".into()].into(),
            dead: [("5-0".into(), true), ("0-9".into(), false)].into(),
            last_delivered: Some(StreamId::new(5, 0)),
            pending: HashSet::new(),
            trimmed_below: StreamId::new(3, 1),
            sale_from: StreamId::new(2, 0),
        };
        let orders = vec![
            order("1-0", "a", 1, Status::Paid),
            order("2-0", "b", 1, Status::Expired),
            order("3-0", "c", 1, Status::Paid),
            order("4-0", "d", 1, Status::Pending),
        ];
        let rep = audit(&r, &orders);
        assert!(rep.is_clean(), "{:?}", rep.drift);
        // The earlier sale's paid order is not stock of this one.
        let mut more = orders.clone();
        more[0].status = Status::Pending;
        let rep = audit(&r, &more);
        assert_eq!(rep.drift, vec![Drift::TrimmedNotFinal("1-0".into())]);
    }
}
