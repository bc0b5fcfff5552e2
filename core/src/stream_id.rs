//! Stream entry ids (`<ms>-<seq>`), which are also reservation ids, and the two marks an
//! activity keeps on its stream: where the current sale starts and below which everything
//! was trimmed as final.

use std::fmt;

/// A complete stream id, ordered as Redis orders them (by `ms`, then `seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("id must look like <ms>-<seq> (two unsigned 64-bit numbers)")]
pub struct StreamIdError;

impl StreamId {
    /// `0-0`: below every id Redis can generate.
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Parses `<ms>-<seq>`. Both parts are required (a reservation id is always complete);
    /// `-`, `+`, `*` and a bare `<ms>` are refused.
    pub fn parse(raw: impl AsRef<[u8]>) -> Result<Self, StreamIdError> {
        let text = std::str::from_utf8(raw.as_ref()).map_err(|_| StreamIdError)?;
        let (ms, seq) = text.split_once('-').ok_or(StreamIdError)?;
        let number = |s: &str| -> Result<u64, StreamIdError> {
            // `u64::from_str` alone would accept a leading '+'.
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(StreamIdError);
            }
            s.parse().map_err(|_| StreamIdError)
        };
        Ok(Self {
            ms: number(ms)?,
            seq: number(seq)?,
        })
    }

    /// The smallest id above this one (`None` for the largest id).
    pub fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => Some(Self {
                ms: self.ms.checked_add(1)?,
                seq: 0,
            }),
        }
    }

    /// The largest id below this one (`None` for `0-0`).
    pub fn prev(self) -> Option<Self> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => Some(Self {
                ms: self.ms.checked_sub(1)?,
                seq: u64::MAX,
            }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Which sale, if any, a reservation id can still be released in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseScope {
    /// Below the trim point: the reservation is final (its entry is gone) and releases
    /// nothing.
    Trimmed,
    /// At or below the sale boundary: the reservation belongs to an earlier sale of the same
    /// activity id and must not return stock into the current one.
    EarlierSale,
    /// Made in the current sale.
    CurrentSale,
}

/// Classifies `id` against the activity's trim point and sale boundary.
pub fn release_scope(id: StreamId, sale_from: StreamId, trimmed_below: StreamId) -> ReleaseScope {
    if id < trimmed_below {
        ReleaseScope::Trimmed
    } else if id <= sale_from {
        ReleaseScope::EarlierSale
    } else {
        ReleaseScope::CurrentSale
    }
}

/// The trim point a `SECKILL.TRIM <min-id>` moves to, or `None` when it changes nothing.
///
/// The point only moves up. It never passes the id right after the stream's last generated
/// id: reservations made later get higher ids, and must not count as final just because a
/// caller asked for a min-id in the future. With no stream (`last_generated` is `None`) there
/// is nothing to trim and no safe place to move to.
pub fn trim_target(
    requested: StreamId,
    current: StreamId,
    last_generated: Option<StreamId>,
) -> Option<StreamId> {
    let cap = last_generated?
        .next()
        .unwrap_or(StreamId::new(u64::MAX, u64::MAX));
    let target = requested.min(cap);
    (target > current).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    #[test]
    fn parses_complete_ids_only() {
        let max = format!("{}-{}", u64::MAX, u64::MAX);
        let ok: &[(&str, StreamId)] = &[
            ("0-0", id(0, 0)),
            ("1700000000000-3", id(1_700_000_000_000, 3)),
            ("007-01", id(7, 1)),
            (&max, id(u64::MAX, u64::MAX)),
        ];
        for (text, want) in ok {
            assert_eq!(StreamId::parse(text), Ok(*want), "{text}");
        }
        for bad in [
            "",
            "-",
            "+",
            "*",
            "5",
            "5-",
            "-5",
            "5-*",
            "+5-0",
            "5-+1",
            "-1-0",
            "1-2-3",
            "a-b",
            "1 -2",
            "18446744073709551616-0",
            "0-18446744073709551616",
        ] {
            assert_eq!(StreamId::parse(bad), Err(StreamIdError), "{bad}");
        }
        assert_eq!(StreamId::parse(b"\xff-1"), Err(StreamIdError));
    }

    #[test]
    fn neighbours_cross_the_millisecond() {
        assert_eq!(id(5, 7).next(), Some(id(5, 8)));
        assert_eq!(id(5, u64::MAX).next(), Some(id(6, 0)));
        assert_eq!(id(u64::MAX, u64::MAX).next(), None);
        assert_eq!(id(5, 0).prev(), Some(id(4, u64::MAX)));
        assert_eq!(StreamId::ZERO.prev(), None);
    }

    #[test]
    fn release_scope_table() {
        let (from, trim) = (id(100, 5), id(50, 0));
        let cases = [
            (id(49, 9), ReleaseScope::Trimmed),
            (id(50, 0), ReleaseScope::EarlierSale),
            (id(100, 5), ReleaseScope::EarlierSale),
            (id(100, 6), ReleaseScope::CurrentSale),
            (id(101, 0), ReleaseScope::CurrentSale),
        ];
        for (rid, want) in cases {
            assert_eq!(release_scope(rid, from, trim), want, "{rid}");
        }
        // A trim point above the boundary wins over it; a fresh activity has neither.
        assert_eq!(
            release_scope(id(150, 0), from, id(200, 0)),
            ReleaseScope::Trimmed
        );
        assert_eq!(
            release_scope(id(1, 0), StreamId::ZERO, StreamId::ZERO),
            ReleaseScope::CurrentSale
        );
    }

    #[test]
    fn trim_target_table() {
        let last = Some(id(100, 3));
        let cases = [
            // (requested, current, last generated) -> target
            ((id(50, 0), id(0, 0), last), Some(id(50, 0))),
            ((id(50, 0), id(50, 0), last), None),
            ((id(40, 0), id(50, 0), last), None),
            ((id(100, 3), id(0, 0), last), Some(id(100, 3))),
            ((id(100, 4), id(0, 0), last), Some(id(100, 4))),
            ((id(999, 0), id(0, 0), last), Some(id(100, 4))),
            ((id(999, 0), id(100, 4), last), None),
            ((id(999, 0), id(0, 0), None), None),
            (
                (id(u64::MAX, 9), id(0, 0), Some(id(u64::MAX, u64::MAX))),
                Some(id(u64::MAX, 9)),
            ),
        ];
        for ((requested, current, last), want) in cases {
            assert_eq!(
                trim_target(requested, current, last),
                want,
                "{requested} {current} {last:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(ms: u64, seq: u64) {
            let i = id(ms, seq);
            prop_assert_eq!(StreamId::parse(i.to_string()), Ok(i));
        }

        #[test]
        fn next_and_prev_are_inverse(ms: u64, seq: u64) {
            let i = id(ms, seq);
            if let Some(n) = i.next() {
                prop_assert!(n > i);
                prop_assert_eq!(n.prev(), Some(i));
            }
        }

        #[test]
        fn a_trim_never_moves_back_nor_past_the_next_id(
            req in (any::<u64>(), any::<u64>()), cur in (any::<u64>(), any::<u64>()),
            last in proptest::option::of((any::<u64>(), any::<u64>())),
        ) {
            let (req, cur) = (id(req.0, req.1), id(cur.0, cur.1));
            let last = last.map(|(m, s)| id(m, s));
            if let Some(t) = trim_target(req, cur, last) {
                prop_assert!(t > cur && t <= req);
                if let Some(next) = last.and_then(StreamId::next) {
                    prop_assert!(t <= next);
                }
            }
        }
    }
}
