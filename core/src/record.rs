//! The activity record: a fixed-layout binary value stored as a plain Redis string.
//!
//! `SECKILL.RESERVE` reads and updates it in place through Redis' direct memory access
//! (`RedisModule_StringDMA`): no field lookup, no allocation, two 8-byte writes. Being a
//! plain string, it persists, replicates and reloads with Redis' own machinery (RDB, AOF,
//! `SET` of the whole record as the replicated effect), even on a server without the module.
//! `SECKILL.STATUS` is the readable view of it.
//!
//! Layout (all integers little-endian u64). Version 2 is version 1 with two stream ids
//! appended; every version-1 field keeps its offset, so the in-place updates of RESERVE,
//! RELEASE and APPLY work on both:
//!
//! | offset | field | since |
//! |---|---|---|
//! | 0 | magic `SKL2` (`SKL1` in version 1) + 4 zero bytes | 1 |
//! | 8 | total | 1 |
//! | 16 | remaining | 1 |
//! | 24 | limit | 1 |
//! | 32 | start (unix ms) | 1 |
//! | 40 | end (unix ms, 0 = none) | 1 |
//! | 48 | price (cents) | 1 |
//! | 56 | reservations (live) | 1 |
//! | 64 | product length | 1 |
//! | 72 | product bytes, zero padded to 64 | 1 |
//! | 136 | sale boundary ms | 2 |
//! | 144 | sale boundary seq | 2 |
//! | 152 | trim point ms | 2 |
//! | 160 | trim point seq | 2 |
//!
//! Version 1 is 136 bytes, version 2 is 168. The sale boundary is the stream's last
//! generated id when this sale was created: stream entries at or below it are reservations of
//! earlier sales of the same activity id. The trim point is the `SECKILL.TRIM` min-id:
//! entries below it were removed as final. A version-1 record reads as boundary and trim
//! point `0-0`; it is rewritten as version 2 when one of them must be stored.

use crate::decision::Sale;
use crate::stream_id::StreamId;

/// Magic of the current layout (version 2).
pub const MAGIC: [u8; 8] = *b"SKL2\0\0\0\0";
/// Length of the current layout (version 2).
pub const LEN: usize = 168;
/// Magic of the first layout, still read.
pub const MAGIC_V1: [u8; 8] = *b"SKL1\0\0\0\0";
/// Length of the first layout.
pub const LEN_V1: usize = 136;
pub const MAX_PRODUCT: usize = 64;

pub const OFF_TOTAL: usize = 8;
pub const OFF_REMAINING: usize = 16;
pub const OFF_LIMIT: usize = 24;
pub const OFF_START: usize = 32;
pub const OFF_END: usize = 40;
pub const OFF_PRICE: usize = 48;
pub const OFF_RESERVATIONS: usize = 56;
pub const OFF_PRODUCT_LEN: usize = 64;
pub const OFF_PRODUCT: usize = 72;
/// Sale boundary (ms, then seq), version 2 only.
pub const OFF_SALE_FROM: usize = 136;
/// Trim point (ms, then seq), version 2 only.
pub const OFF_TRIMMED_BELOW: usize = 152;

/// Layout versions this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    pub sale: Sale,
    pub price_cents: u64,
    pub reservations: u64,
    pub product: String,
    /// Entries at or below this id belong to earlier sales of the activity id.
    pub sale_from: StreamId,
    /// Entries below this id were trimmed as final.
    pub trimmed_below: StreamId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("value is not a seckill activity record (bad length or magic)")]
    NotARecord,
    #[error("product id longer than {MAX_PRODUCT} bytes")]
    ProductTooLong,
    #[error("a version-1 record has no room for this field; upgrade it first")]
    NeedsUpgrade,
}

pub fn read_u64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

pub fn write_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The layout of `buf`, from its length and magic (checked before any field access).
pub fn version(buf: &[u8]) -> Option<Version> {
    match (buf.len(), buf.get(..8)) {
        (LEN, Some(m)) if m == MAGIC => Some(Version::V2),
        (LEN_V1, Some(m)) if m == MAGIC_V1 => Some(Version::V1),
        _ => None,
    }
}

/// Whether `buf` is a record of a layout this crate reads.
pub fn is_record(buf: &[u8]) -> bool {
    version(buf).is_some()
}

/// The counters and window, without touching the product bytes.
pub fn read_sale(buf: &[u8]) -> Result<Sale, RecordError> {
    if !is_record(buf) {
        return Err(RecordError::NotARecord);
    }
    Ok(Sale {
        total: read_u64(buf, OFF_TOTAL),
        remaining: read_u64(buf, OFF_REMAINING),
        limit: read_u64(buf, OFF_LIMIT),
        start_ms: read_u64(buf, OFF_START),
        end_ms: read_u64(buf, OFF_END),
    })
}

fn read_id(buf: &[u8], off: usize) -> StreamId {
    match version(buf) {
        Some(Version::V2) => StreamId::new(read_u64(buf, off), read_u64(buf, off + 8)),
        _ => StreamId::ZERO,
    }
}

/// The sale boundary (`0-0` in a version-1 record: it predates re-creation tracking).
pub fn sale_from(buf: &[u8]) -> StreamId {
    read_id(buf, OFF_SALE_FROM)
}

/// The trim point (`0-0` in a version-1 record: nothing was trimmed by the module).
pub fn trimmed_below(buf: &[u8]) -> StreamId {
    read_id(buf, OFF_TRIMMED_BELOW)
}

/// Stores the trim point in place; a version-1 record has no room for it and must be
/// rewritten with [`upgrade`] first.
pub fn write_trimmed_below(buf: &mut [u8], id: StreamId) -> Result<(), RecordError> {
    if version(buf) != Some(Version::V2) {
        return Err(RecordError::NeedsUpgrade);
    }
    write_u64(buf, OFF_TRIMMED_BELOW, id.ms);
    write_u64(buf, OFF_TRIMMED_BELOW + 8, id.seq);
    Ok(())
}

/// The same record in the current layout: the version-1 bytes at their offsets, the new
/// fields `0-0`.
pub fn upgrade(buf: &[u8]) -> Result<[u8; LEN], RecordError> {
    let version = version(buf).ok_or(RecordError::NotARecord)?;
    let mut out = [0u8; LEN];
    out[..buf.len()].copy_from_slice(buf);
    if version == Version::V1 {
        out[..8].copy_from_slice(&MAGIC);
    }
    Ok(out)
}

/// The product id bytes stored in a valid record.
pub fn product_bytes(buf: &[u8]) -> &[u8] {
    let len = (read_u64(buf, OFF_PRODUCT_LEN) as usize).min(MAX_PRODUCT);
    &buf[OFF_PRODUCT..OFF_PRODUCT + len]
}

impl ActivityRecord {
    pub fn encode(&self) -> Result<[u8; LEN], RecordError> {
        let product = self.product.as_bytes();
        if product.len() > MAX_PRODUCT {
            return Err(RecordError::ProductTooLong);
        }
        let mut buf = [0u8; LEN];
        buf[..8].copy_from_slice(&MAGIC);
        write_u64(&mut buf, OFF_TOTAL, self.sale.total);
        write_u64(&mut buf, OFF_REMAINING, self.sale.remaining);
        write_u64(&mut buf, OFF_LIMIT, self.sale.limit);
        write_u64(&mut buf, OFF_START, self.sale.start_ms);
        write_u64(&mut buf, OFF_END, self.sale.end_ms);
        write_u64(&mut buf, OFF_PRICE, self.price_cents);
        write_u64(&mut buf, OFF_RESERVATIONS, self.reservations);
        write_u64(&mut buf, OFF_PRODUCT_LEN, product.len() as u64);
        buf[OFF_PRODUCT..OFF_PRODUCT + product.len()].copy_from_slice(product);
        write_u64(&mut buf, OFF_SALE_FROM, self.sale_from.ms);
        write_u64(&mut buf, OFF_SALE_FROM + 8, self.sale_from.seq);
        write_trimmed_below(&mut buf, self.trimmed_below)?;
        Ok(buf)
    }

    pub fn decode(buf: &[u8]) -> Result<Self, RecordError> {
        let sale = read_sale(buf)?;
        Ok(Self {
            sale,
            price_cents: read_u64(buf, OFF_PRICE),
            reservations: read_u64(buf, OFF_RESERVATIONS),
            product: String::from_utf8_lossy(product_bytes(buf)).into_owned(),
            sale_from: sale_from(buf),
            trimmed_below: trimmed_below(buf),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ActivityRecord {
        ActivityRecord {
            sale: Sale {
                total: 10,
                remaining: 7,
                limit: 2,
                start_ms: 1_000,
                end_ms: 2_000,
            },
            price_cents: 1_999,
            reservations: 3,
            product: "sku-1".into(),
            sale_from: StreamId::new(1_700_000_000_000, 4),
            trimmed_below: StreamId::new(1_600_000_000_000, 0),
        }
    }

    /// A version-1 record as the first module wrote it, byte by byte.
    fn v1_bytes(r: &ActivityRecord) -> Vec<u8> {
        let mut b = MAGIC_V1.to_vec();
        for v in [
            r.sale.total,
            r.sale.remaining,
            r.sale.limit,
            r.sale.start_ms,
            r.sale.end_ms,
            r.price_cents,
            r.reservations,
            r.product.len() as u64,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(r.product.as_bytes());
        b.resize(LEN_V1, 0);
        b
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        assert_eq!(
            ActivityRecord::decode(b"hello"),
            Err(RecordError::NotARecord)
        );
        let mut buf = [0u8; LEN];
        assert_eq!(ActivityRecord::decode(&buf), Err(RecordError::NotARecord));
        buf[..8].copy_from_slice(&MAGIC);
        assert!(ActivityRecord::decode(&buf).is_ok());
        assert!(ActivityRecord::decode(&buf[..LEN - 1]).is_err());
        // Each magic only with its own length.
        assert!(ActivityRecord::decode(&buf[..LEN_V1]).is_err());
        let mut v1 = [0u8; LEN];
        v1[..8].copy_from_slice(&MAGIC_V1);
        assert!(ActivityRecord::decode(&v1).is_err());
        assert!(ActivityRecord::decode(&v1[..LEN_V1]).is_ok());
    }

    #[test]
    fn version_one_records_read_with_zero_marks() {
        let r = sample();
        let v1 = v1_bytes(&r);
        assert_eq!(version(&v1), Some(Version::V1));
        let want = ActivityRecord {
            sale_from: StreamId::ZERO,
            trimmed_below: StreamId::ZERO,
            ..r.clone()
        };
        assert_eq!(ActivityRecord::decode(&v1), Ok(want.clone()));
        assert_eq!(read_sale(&v1), Ok(r.sale));
        assert_eq!(product_bytes(&v1), b"sku-1");
        // The in-place counters sit where version 1 had them.
        assert_eq!(read_u64(&v1, OFF_REMAINING), 7);
        assert_eq!(read_u64(&v1, OFF_RESERVATIONS), 3);
    }

    #[test]
    fn a_version_one_record_is_upgraded_before_a_new_field_is_written() {
        let mut v1 = v1_bytes(&sample());
        let mark = StreamId::new(5, 6);
        assert_eq!(
            write_trimmed_below(&mut v1, mark),
            Err(RecordError::NeedsUpgrade)
        );
        let mut v2 = upgrade(&v1).unwrap();
        assert_eq!(version(&v2), Some(Version::V2));
        assert_eq!(
            &v2[8..LEN_V1],
            &v1[8..],
            "version-1 fields keep their offsets"
        );
        write_trimmed_below(&mut v2, mark).unwrap();
        let r = ActivityRecord::decode(&v2).unwrap();
        assert_eq!((r.sale_from, r.trimmed_below), (StreamId::ZERO, mark));
        // Upgrading the current layout changes nothing.
        assert_eq!(upgrade(&v2), Ok(v2));
        assert_eq!(upgrade(b"nope"), Err(RecordError::NotARecord));
    }

    #[test]
    fn encodes_the_current_layout() {
        let buf = sample().encode().unwrap();
        assert_eq!(&buf[..8], b"SKL2\0\0\0\0");
        assert_eq!(read_u64(&buf, OFF_SALE_FROM), 1_700_000_000_000);
        assert_eq!(read_u64(&buf, OFF_SALE_FROM + 8), 4);
        assert_eq!(read_u64(&buf, OFF_TRIMMED_BELOW), 1_600_000_000_000);
        assert_eq!(read_u64(&buf, OFF_TRIMMED_BELOW + 8), 0);
        assert_eq!(&buf[..LEN_V1][8..], &v1_bytes(&sample())[8..]);
    }

    proptest! {
        #[test]
        fn round_trips(total: u64, remaining: u64, limit: u64, start: u64, end: u64, price: u64,
                       reservations: u64, product in "[a-z0-9:._-]{0,64}",
                       from in (any::<u64>(), any::<u64>()), trim in (any::<u64>(), any::<u64>())) {
            let r = ActivityRecord {
                sale: Sale { total, remaining, limit, start_ms: start, end_ms: end },
                price_cents: price,
                reservations,
                product,
                sale_from: StreamId::new(from.0, from.1),
                trimmed_below: StreamId::new(trim.0, trim.1),
            };
            let buf = r.encode().unwrap();
            prop_assert_eq!(ActivityRecord::decode(&buf), Ok(r.clone()));
            // The same record written by the first module reads the same, without the marks.
            let v1 = v1_bytes(&r);
            let old = ActivityRecord { sale_from: StreamId::ZERO, trimmed_below: StreamId::ZERO, ..r };
            prop_assert_eq!(ActivityRecord::decode(&v1), Ok(old.clone()));
            prop_assert_eq!(ActivityRecord::decode(&upgrade(&v1).unwrap()), Ok(old));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ActivityRecord::decode(&bytes);
            let _ = upgrade(&bytes);
        }
    }
}
