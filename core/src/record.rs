//! The activity record: a fixed-layout binary value stored as a plain Redis string.
//!
//! `SECKILL.RESERVE` reads and updates it in place through Redis' direct memory access
//! (`RedisModule_StringDMA`): no field lookup, no allocation, two 8-byte writes. Being a
//! plain string, it persists, replicates and reloads with Redis' own machinery (RDB, AOF,
//! `SET` of the whole record as the replicated effect), even on a server without the module.
//! `SECKILL.STATUS` is the readable view of it.
//!
//! Layout (version 1, all integers little-endian u64):
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `SKL1` + 4 zero bytes |
//! | 8 | total |
//! | 16 | remaining |
//! | 24 | limit |
//! | 32 | start (unix ms) |
//! | 40 | end (unix ms, 0 = none) |
//! | 48 | price (cents) |
//! | 56 | reservations (live) |
//! | 64 | product length |
//! | 72 | product bytes, zero padded to 64 |

use crate::decision::Sale;

pub const MAGIC: [u8; 8] = *b"SKL1\0\0\0\0";
pub const LEN: usize = 136;
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    pub sale: Sale,
    pub price_cents: u64,
    pub reservations: u64,
    pub product: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("value is not a seckill activity record (bad length or magic)")]
    NotARecord,
    #[error("product id longer than {MAX_PRODUCT} bytes")]
    ProductTooLong,
}

pub fn read_u64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

pub fn write_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Whether `buf` has the length and magic of a record (checked before any field access).
pub fn is_record(buf: &[u8]) -> bool {
    buf.len() == LEN && buf[..8] == MAGIC
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
        Ok(buf)
    }

    pub fn decode(buf: &[u8]) -> Result<Self, RecordError> {
        let sale = read_sale(buf)?;
        Ok(Self {
            sale,
            price_cents: read_u64(buf, OFF_PRICE),
            reservations: read_u64(buf, OFF_RESERVATIONS),
            product: String::from_utf8_lossy(product_bytes(buf)).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    }

    proptest! {
        #[test]
        fn round_trips(total: u64, remaining: u64, limit: u64, start: u64, end: u64, price: u64,
                       reservations: u64, product in "[a-z0-9:._-]{0,64}") {
            let r = ActivityRecord {
                sale: Sale { total, remaining, limit, start_ms: start, end_ms: end },
                price_cents: price,
                reservations,
                product,
            };
            let buf = r.encode().unwrap();
            prop_assert_eq!(ActivityRecord::decode(&buf), Ok(r));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ActivityRecord::decode(&bytes);
        }
    }
}
