//! Bounded Redis memory: the sweeper's leader trims each activity's stream
//! (`SECKILL.TRIM`) up to the highest id below which every entry is final.
//!
//! An entry is final when nothing will ever need it again:
//! - the consumer group acked it: it is below the smallest id pending in the group and at
//!   or below the group's last-delivered id;
//! - and its reservation is settled: its order is `paid` (and its stock was never
//!   released), or `cancelled`/`expired` with `released_at` set; or it has no order and
//!   was dead-lettered, and either its stock was released (the module's release marker) or
//!   it does not decode as a reservation (it never held stock).
//!
//! The decision is pure ([`is_final`], [`min_id`]); [`trim_activity`] gathers the facts.
//! Reservation ids are `<ms>-<seq>` strings in MySQL, whose string order is not the id
//! order, so the walk goes through the stream in id order and asks MySQL about each page of
//! ids, stopping at the first entry that is not final. An entry is read by the trimmer
//! until it is trimmed, so the work per pass is bounded by `trim_scan_limit`.

use crate::metrics::Metrics;
use redis::aio::ConnectionLike;
use seckill_client::{lag, sale, streams, ClientError};
use seckill_core::{keys, ActivityId, ReservationEntry, StreamId};
use seckill_db::orders::{self, OrderState};
use seckill_db::{DbError, MySqlPool};
use std::collections::HashSet;

/// Entries read from the stream per page (and ids asked of MySQL per query).
const PAGE: usize = 1_000;

/// What is known about one stream entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFacts {
    /// Its order row, if any.
    pub order: Option<OrderState>,
    /// It is in the activity's dead-letter stream.
    pub dead: bool,
    /// The module's release marker for it exists (`SECKILL.RELEASE` returned its stock).
    pub released_marker: bool,
    /// It decodes as a reservation of its activity (so RESERVE wrote it and took stock).
    pub decodes: bool,
}

/// Whether nothing will need this (acked) entry again.
pub fn is_final(f: &EntryFacts) -> bool {
    match f.order {
        // Paid holds its stock for good; a paid order whose stock was released is drift
        // the audit must still see, so its entry stays.
        Some(o) if o.paid => !f.released_marker,
        // Pending: it may still be paid, cancelled or expired.
        Some(o) if o.live => false,
        // Cancelled or expired: once its stock is back (`released_at`).
        Some(o) => o.released,
        // No order: settled only as a dead letter that holds no stock.
        None => f.dead && (f.released_marker || !f.decodes),
    }
}

/// The figures of one stream that decide how far it may be trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// The activity's trim point now (`SECKILL.STATUS trimmed-below`).
    pub current: StreamId,
    /// Every entry below this was acked by the group ([`lag::GroupMarks::acked_below`]).
    pub acked_below: StreamId,
    /// Every entry in `[current, final_below)` was checked and is final; the entry at
    /// `final_below`, if any, is not final or was not checked.
    pub final_below: StreamId,
    /// The smallest entry id at or above `current`, if the stream has one.
    pub first_entry: Option<StreamId>,
}

/// The min-id for `SECKILL.TRIM`, or `None` when nothing can be removed.
pub fn min_id(f: &Figures) -> Option<StreamId> {
    let target = f.acked_below.min(f.final_below);
    let first = f.first_entry?;
    (target > f.current && first < target).then_some(target)
}

#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: {0}")]
    Client(#[from] ClientError),
    #[error("mysql: {0}")]
    Db(#[from] DbError),
}

/// Trims `activity`'s stream as far as its entries are final; returns the entries removed.
/// At most `scan_limit` entries are checked.
pub async fn trim_activity<C: ConnectionLike + Send>(
    pool: &MySqlPool,
    redis: &mut C,
    activity: &ActivityId,
    group: &str,
    scan_limit: usize,
) -> Result<u64, TrimError> {
    // No record (deleted activity): TRIM would refuse; the stream stays as it is.
    let Some(status) = sale::status(redis, activity).await? else {
        return Ok(0);
    };
    let key = keys::stream(activity);
    let Some(marks) = lag::group_marks(redis, &key, group).await? else {
        return Ok(0);
    };
    let current = status.trimmed_below;
    let acked_below = marks.acked_below();
    if acked_below <= current {
        return Ok(0);
    }
    let numeric: Option<u64> = activity.as_str().parse().ok();
    let dead: HashSet<String> = streams::dead_letters(redis, activity)
        .await?
        .into_iter()
        .map(|d| d.reservation)
        .collect();
    let mut figures = Figures {
        current,
        acked_below,
        final_below: current,
        first_entry: None,
    };
    let mut from = current;
    let mut checked = 0;
    'walk: loop {
        let page = streams::range(redis, &key, from, acked_below, PAGE).await?;
        let Some(last) = page.last().and_then(|(id, _)| StreamId::parse(id).ok()) else {
            // Nothing more below the acked mark: all of it is final.
            figures.final_below = acked_below;
            break;
        };
        let ids: Vec<&str> = page.iter().map(|(id, _)| id.as_str()).collect();
        let states = match numeric {
            Some(a) => orders::states(pool, a, &ids).await?,
            None => Default::default(),
        };
        let markers: Vec<bool> = redis::cmd("HMGET")
            .arg(keys::released(activity))
            .arg(&ids)
            .query_async::<Vec<Option<String>>>(redis)
            .await?
            .into_iter()
            .map(|m| m.is_some())
            .collect();
        for (n, (rid, fields)) in page.iter().enumerate() {
            let Ok(id) = StreamId::parse(rid) else {
                continue;
            };
            figures.first_entry.get_or_insert(id);
            let facts = EntryFacts {
                order: states.get(rid).copied(),
                dead: dead.contains(rid),
                released_marker: markers.get(n).copied().unwrap_or(false),
                decodes: ReservationEntry::from_fields(fields.iter().map(|(k, v)| (k, v)))
                    .is_ok_and(|r| r.activity == *activity),
            };
            if !is_final(&facts) {
                figures.final_below = id;
                break 'walk;
            }
        }
        let Some(next) = last.next() else {
            break;
        };
        figures.final_below = next;
        from = next;
        checked += page.len();
        if checked >= scan_limit {
            break;
        }
    }
    let Some(target) = min_id(&figures) else {
        return Ok(0);
    };
    let removed = sale::trim(redis, activity, target).await?;
    tracing::info!(%activity, min_id = %target, removed, "stream trimmed up to its final entries");
    Ok(removed)
}

/// Trims every activity stream; one activity failing does not stop the others. Returns the
/// entries removed.
pub async fn trim_all<C: ConnectionLike + Send>(
    pool: &MySqlPool,
    redis: &mut C,
    group: &str,
    scan_limit: usize,
    metrics: Option<&Metrics>,
) -> Result<u64, TrimError> {
    let activities: Vec<ActivityId> = streams::discover(redis)
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    Ok(trim_activities(pool, redis, &activities, group, scan_limit, metrics).await)
}

/// Trims the streams of `activities` (found per node in a cluster); one activity failing does
/// not stop the others. Returns the entries removed.
pub async fn trim_activities<C: ConnectionLike + Send>(
    pool: &MySqlPool,
    redis: &mut C,
    activities: &[ActivityId],
    group: &str,
    scan_limit: usize,
    metrics: Option<&Metrics>,
) -> u64 {
    let mut removed = 0;
    for activity in activities {
        match trim_activity(pool, redis, activity, group, scan_limit).await {
            Ok(n) => removed += n,
            Err(e) => {
                if let Some(m) = metrics {
                    m.trim_errors_total.inc();
                }
                tracing::warn!(%activity, error = %e, "trim pass failed");
            }
        }
    }
    if let Some(m) = metrics {
        m.stream_trimmed_total.inc_by(removed);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAID: OrderState = OrderState {
        live: true,
        paid: true,
        released: false,
    };
    const PENDING: OrderState = OrderState {
        live: true,
        paid: false,
        released: false,
    };
    const ENDED: OrderState = OrderState {
        live: false,
        paid: false,
        released: false,
    };
    const ENDED_RELEASED: OrderState = OrderState {
        live: false,
        paid: false,
        released: true,
    };

    fn facts(order: Option<OrderState>, dead: bool, marker: bool, decodes: bool) -> EntryFacts {
        EntryFacts {
            order,
            dead,
            released_marker: marker,
            decodes,
        }
    }

    #[test]
    fn finality_table() {
        let cases = [
            ("paid", facts(Some(PAID), false, false, true), true),
            (
                "paid but released (drift)",
                facts(Some(PAID), false, true, true),
                false,
            ),
            ("pending", facts(Some(PENDING), false, false, true), false),
            (
                "expired, not released yet",
                facts(Some(ENDED), false, true, true),
                false,
            ),
            (
                "cancelled/expired and released",
                facts(Some(ENDED_RELEASED), false, true, true),
                true,
            ),
            (
                "released in an earlier sale (no marker)",
                facts(Some(ENDED_RELEASED), false, false, true),
                true,
            ),
            (
                "dead letter, stock released",
                facts(None, true, true, true),
                true,
            ),
            (
                "dead letter, stock still held",
                facts(None, true, false, true),
                false,
            ),
            (
                "malformed dead letter (held nothing)",
                facts(None, true, false, false),
                true,
            ),
            (
                "no order, no dead letter",
                facts(None, false, false, true),
                false,
            ),
            (
                "no order, released, not dead-lettered",
                facts(None, false, true, true),
                false,
            ),
            (
                "dead letter with a paid order (the order decides)",
                facts(Some(PAID), true, false, true),
                true,
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(is_final(&f), want, "{name}");
        }
    }

    #[test]
    fn min_id_table() {
        let id = StreamId::new;
        let f = |current, acked_below, final_below, first_entry| Figures {
            current,
            acked_below,
            final_below,
            first_entry,
        };
        let cases = [
            // Everything acked below 10-0 is final: trim to the acked mark.
            (
                "all final up to the acked mark",
                f(id(0, 0), id(10, 0), id(10, 0), Some(id(1, 0))),
                Some(id(10, 0)),
            ),
            (
                "a pending order stops it",
                f(id(0, 0), id(10, 0), id(4, 2), Some(id(1, 0))),
                Some(id(4, 2)),
            ),
            (
                "the first entry is not final",
                f(id(0, 0), id(10, 0), id(1, 0), Some(id(1, 0))),
                None,
            ),
            (
                "an unacked entry stops it (pending in the group)",
                f(id(0, 0), id(3, 0), id(9, 0), Some(id(1, 0))),
                Some(id(3, 0)),
            ),
            (
                "nothing acked above the trim point",
                f(id(5, 0), id(5, 0), id(9, 0), Some(id(6, 0))),
                None,
            ),
            (
                "no entry below the target",
                f(id(5, 0), id(9, 0), id(9, 0), Some(id(9, 0))),
                None,
            ),
            ("empty stream", f(id(5, 0), id(9, 0), id(9, 0), None), None),
            (
                "never below the current point",
                f(id(8, 0), id(9, 0), id(7, 0), Some(id(8, 1))),
                None,
            ),
        ];
        for (name, figures, want) in cases {
            assert_eq!(min_id(&figures), want, "{name}");
        }
    }
}
