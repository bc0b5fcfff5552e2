//! Batch planning, pure: raw stream entries in, order rows and dead letters out.
//!
//! Every decision about a single entry is made here so it can be tested with tables: an
//! entry becomes an order row, or goes to the dead-letter stream with a reason. The I/O
//! around it (read, insert, ack) lives in [`crate::consumer`].

pub use seckill_client::streams::RawEntry;
use seckill_core::ReservationEntry;
/// The row the worker inserts into `orders`.
pub use seckill_db::orders::NewOrder as OrderRow;
use std::collections::HashMap;

/// Why an entry went to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadReason {
    /// The fields do not decode as a reservation.
    Malformed(String),
    /// Delivered more than the allowed number of times without being acked.
    TooManyDeliveries(u64),
    /// The database refused the row for its relation to other rows: the user already holds
    /// another live order in the activity (`uk_orders_live_user`). The only refusal that is
    /// provably a planned row's own; every other database failure is retried.
    Rejected(String),
}

impl DeadReason {
    /// Low-cardinality label for the dead-letter counter.
    pub fn kind(&self) -> &'static str {
        match self {
            DeadReason::Malformed(_) => "malformed",
            DeadReason::TooManyDeliveries(_) => "deliveries",
            DeadReason::Rejected(_) => "rejected",
        }
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadReason::Malformed(e) => write!(f, "malformed entry: {e}"),
            DeadReason::TooManyDeliveries(n) => write!(f, "delivered {n} times without an ack"),
            DeadReason::Rejected(e) => write!(f, "refused by the database: {e}"),
        }
    }
}

/// What to do with each entry of a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Rows for the one multi-row insert, with the index of their entry in the batch.
    pub rows: Vec<(usize, OrderRow)>,
    /// Entries to dead-letter (index in the batch, reason).
    pub dead: Vec<(usize, DeadReason)>,
}

/// Payment windows (seconds) of the activities known to MySQL, and the default for others.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    pub by_activity: HashMap<u64, u64>,
    pub default_secs: u64,
}

impl Windows {
    pub fn get(&self, activity: u64) -> u64 {
        self.by_activity
            .get(&activity)
            .copied()
            .unwrap_or(self.default_secs)
    }
}

/// Decides the fate of one entry.
pub fn plan_entry(
    entry: &RawEntry,
    max_deliveries: u64,
    windows: &Windows,
) -> Result<OrderRow, DeadReason> {
    if entry.deliveries > max_deliveries {
        return Err(DeadReason::TooManyDeliveries(entry.deliveries));
    }
    let r = ReservationEntry::from_fields(entry.fields.iter().map(|(k, v)| (k, v)))
        .map_err(|e| DeadReason::Malformed(e.to_string()))?;
    if r.activity != entry.activity {
        return Err(DeadReason::Malformed(format!(
            "field 'activity' is '{}' in the stream of activity '{}'",
            r.activity, entry.activity
        )));
    }
    let activity_id: u64 = r.activity.as_str().parse().map_err(|_| {
        DeadReason::Malformed(format!(
            "activity id '{}' is not a MySQL activity id (unsigned integer)",
            r.activity
        ))
    })?;
    if entry.id.len() > 41 {
        return Err(DeadReason::Malformed("reservation id too long".into()));
    }
    let quantity = u32::try_from(r.qty)
        .map_err(|_| DeadReason::Malformed(format!("quantity {} too large", r.qty)))?;
    let amount_cents = r
        .qty
        .checked_mul(r.price_cents)
        .filter(|a| *a <= i64::MAX as u64)
        .ok_or_else(|| DeadReason::Malformed("amount overflows".into()))?;
    let reserved_at_ms = i64::try_from(r.ts_ms)
        .map_err(|_| DeadReason::Malformed("timestamp out of range".into()))?;
    let window_ms = i64::try_from(windows.get(activity_id).saturating_mul(1_000))
        .map_err(|_| DeadReason::Malformed("payment window out of range".into()))?;
    Ok(OrderRow {
        activity_id,
        reservation_id: entry.id.clone(),
        product_id: r.product,
        user_id: r.user.to_string(),
        quantity,
        amount_cents,
        reserved_at_ms,
        expires_at_ms: reserved_at_ms.saturating_add(window_ms),
    })
}

/// Whether a dead-lettered entry holds stock that must go back with `SECKILL.RELEASE`: it
/// decodes as a reservation of its own stream's activity, so RESERVE wrote it and took its
/// quantity, whatever kept it from becoming an order (delivered too often, refused, or an
/// activity id MySQL cannot store). An entry that does not decode was never written by
/// RESERVE (the module writes well-formed entries only): it holds nothing.
pub fn holds_stock(entry: &RawEntry) -> bool {
    ReservationEntry::from_fields(entry.fields.iter().map(|(k, v)| (k, v)))
        .is_ok_and(|r| r.activity == entry.activity)
}

/// The `(activity, reservation)` key its order row would have, when the entry has one.
pub fn order_key(entry: &RawEntry) -> Option<(u64, String)> {
    let activity = entry.activity.as_str().parse().ok()?;
    Some((activity, entry.id.clone()))
}

/// Plans a whole batch.
pub fn plan_batch(entries: &[RawEntry], max_deliveries: u64, windows: &Windows) -> Plan {
    let mut plan = Plan::default();
    for (i, e) in entries.iter().enumerate() {
        match plan_entry(e, max_deliveries, windows) {
            Ok(row) => plan.rows.push((i, row)),
            Err(reason) => plan.dead.push((i, reason)),
        }
    }
    plan
}

/// Rows the database skipped (index in the batch, why; see
/// `seckill_db::orders::insert_batch`) as dead letters: they must not be lost quietly.
pub fn refused(skipped: Vec<(usize, String)>) -> Vec<(usize, DeadReason)> {
    skipped
        .into_iter()
        .map(|(i, why)| (i, DeadReason::Rejected(why)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_core::ActivityId;

    /// The database's report of skipped rows (`seckill_db::orders::skipped_rows`), as the
    /// consumer dead-letters them, and the rows whose skip nothing explains.
    fn skipped_rows<'a>(
        missing: impl IntoIterator<Item = &'a (usize, OrderRow)>,
        holders: &HashMap<(u64, String), String>,
    ) -> (Vec<(usize, DeadReason)>, Vec<String>) {
        let (refused_rows, unexplained) = seckill_db::orders::skipped_rows(missing, holders);
        (
            refused(refused_rows),
            unexplained
                .into_iter()
                .map(|r| r.reservation_id.clone())
                .collect(),
        )
    }

    fn raw(fields: &[(&str, &str)], deliveries: u64) -> RawEntry {
        RawEntry {
            activity: ActivityId::parse("7").unwrap(),
            id: "1700000000000-0".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            deliveries,
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("activity", "7"),
        ("product", "p1"),
        ("user", "u1"),
        ("qty", "2"),
        ("price", "150"),
        ("ts", "1700000000000"),
    ];

    fn windows() -> Windows {
        Windows {
            by_activity: [(7, 60)].into(),
            default_secs: 900,
        }
    }

    #[test]
    fn a_good_entry_becomes_a_row() {
        let row = plan_entry(&raw(GOOD, 1), 3, &windows()).unwrap();
        assert_eq!(
            row,
            OrderRow {
                activity_id: 7,
                reservation_id: "1700000000000-0".into(),
                product_id: "p1".into(),
                user_id: "u1".into(),
                quantity: 2,
                amount_cents: 300,
                reserved_at_ms: 1_700_000_000_000,
                expires_at_ms: 1_700_000_060_000,
            }
        );
    }

    #[test]
    fn dead_letter_table() {
        let with = |k: &str, v: &str| -> Vec<(&str, String)> {
            GOOD.iter()
                .map(|(gk, gv)| {
                    (
                        *gk,
                        if *gk == k {
                            v.to_string()
                        } else {
                            gv.to_string()
                        },
                    )
                })
                .collect()
        };
        type Case<'a> = (&'a str, Vec<(&'a str, String)>, u64, &'a str);
        let cases: Vec<Case> = vec![
            ("too many deliveries", with("", ""), 4, "deliveries"),
            ("bad qty", with("qty", "zero"), 1, "malformed"),
            ("zero qty", with("qty", "0"), 1, "malformed"),
            ("bad user", with("user", "a b"), 1, "malformed"),
            ("other activity", with("activity", "8"), 1, "malformed"),
            (
                "non numeric activity",
                with("activity", "x"),
                1,
                "malformed",
            ),
            ("missing ts", with("ts", ""), 1, "malformed"),
        ];
        for (name, fields, deliveries, kind) in cases {
            let mut e = raw(&[], deliveries);
            e.fields = fields
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            if name == "non numeric activity" {
                e.activity = ActivityId::parse("x").unwrap();
            }
            let got = plan_entry(&e, 3, &windows());
            assert_eq!(got.map_err(|r| r.kind()), Err(kind), "{name}");
        }
        // Delivered exactly max times is still processed.
        assert!(plan_entry(&raw(GOOD, 3), 3, &windows()).is_ok());
    }

    #[test]
    fn unknown_activity_uses_the_default_window() {
        let w = Windows {
            by_activity: HashMap::new(),
            default_secs: 900,
        };
        let row = plan_entry(&raw(GOOD, 1), 3, &w).unwrap();
        assert_eq!(row.expires_at_ms - row.reserved_at_ms, 900_000);
    }

    #[test]
    fn batch_keeps_indexes() {
        let entries = vec![raw(GOOD, 1), raw(&[("junk", "1")], 1), raw(GOOD, 9)];
        let plan = plan_batch(&entries, 3, &windows());
        assert_eq!(plan.rows.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0]);
        assert_eq!(
            plan.dead
                .iter()
                .map(|(i, r)| (*i, r.kind()))
                .collect::<Vec<_>>(),
            [(1, "malformed"), (2, "deliveries")]
        );
    }

    #[test]
    fn only_rows_skipped_for_another_live_order_are_dead_lettered() {
        let row = |rid: &str, user: &str| OrderRow {
            activity_id: 7,
            reservation_id: rid.into(),
            product_id: String::new(),
            user_id: user.into(),
            quantity: 1,
            amount_cents: 0,
            reserved_at_ms: 0,
            expires_at_ms: 0,
        };
        // Rows 1-0 and 3-0 made it; 2-0 (user b) and 4-0 (user d) are missing.
        let rows = [
            (0, row("1-0", "a")),
            (1, row("2-0", "b")),
            (2, row("3-0", "c")),
            (3, row("4-0", "d")),
            (4, row("5-0", "e")),
        ];
        let missing = [&rows[1], &rows[3], &rows[4]];
        // b holds another live order; d's live slot is held by this very reservation (so
        // the skip is not explained by it); nobody holds e's.
        let holders: HashMap<(u64, String), String> = [
            ((7, "b".to_string()), "0-9".to_string()),
            ((7, "d".to_string()), "4-0".to_string()),
        ]
        .into();
        let (dead, unexplained) = skipped_rows(missing, &holders);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].0, 1);
        assert_eq!(dead[0].1.kind(), "rejected");
        assert!(dead[0].1.to_string().contains("0-9"), "{}", dead[0].1);
        assert_eq!(unexplained, ["4-0", "5-0"]);
    }

    #[test]
    fn only_entries_that_decode_hold_stock() {
        assert!(holds_stock(&raw(GOOD, 9)));
        assert!(!holds_stock(&raw(&[("junk", "1")], 1)));
        let mut other = raw(GOOD, 1);
        other.activity = ActivityId::parse("8").unwrap();
        assert!(
            !holds_stock(&other),
            "an entry of another activity's stream"
        );
        // An activity MySQL cannot store still took stock in Redis.
        let mut named = raw(GOOD, 1);
        named.activity = ActivityId::parse("flash").unwrap();
        named.fields[0].1 = b"flash".to_vec();
        assert!(holds_stock(&named));
        assert_eq!(order_key(&named), None);
        assert_eq!(
            order_key(&raw(GOOD, 1)),
            Some((7, "1700000000000-0".into()))
        );
    }
}
