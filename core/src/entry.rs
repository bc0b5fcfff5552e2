//! The reservation entry that `SECKILL.RESERVE` appends to the activity's stream, and that
//! the order worker turns into an order row. The stream entry id is the reservation id.

use crate::ids::{ActivityId, IdError, UserId};
use crate::limits::{parse_bounded, NumberError, MAX_LIMIT, MAX_PRICE_CENTS, MAX_TIME_MS};

pub mod field {
    pub const ACTIVITY: &str = "activity";
    pub const PRODUCT: &str = "product";
    pub const USER: &str = "user";
    pub const QTY: &str = "qty";
    /// Unit price in cents at reservation time.
    pub const PRICE: &str = "price";
    /// Unix milliseconds of the reservation.
    pub const TS: &str = "ts";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationEntry {
    pub activity: ActivityId,
    /// Product id; empty when the activity was created without one.
    pub product: String,
    pub user: UserId,
    pub qty: u64,
    pub price_cents: u64,
    pub ts_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("field '{0}' is missing")]
    Missing(&'static str),
    #[error("field '{field}': {source}")]
    BadId {
        field: &'static str,
        #[source]
        source: IdError,
    },
    #[error(transparent)]
    BadNumber(#[from] NumberError),
    #[error("field 'product' is not printable ASCII of at most 64 bytes")]
    BadProduct,
}

impl ReservationEntry {
    /// Field/value pairs in the order they are written to the stream.
    pub fn to_fields(&self) -> [(&'static str, String); 6] {
        [
            (field::ACTIVITY, self.activity.to_string()),
            (field::PRODUCT, self.product.clone()),
            (field::USER, self.user.to_string()),
            (field::QTY, self.qty.to_string()),
            (field::PRICE, self.price_cents.to_string()),
            (field::TS, self.ts_ms.to_string()),
        ]
    }

    /// Decodes an entry from its field/value pairs (any order; unknown fields ignored so a
    /// newer module can add fields without breaking older workers).
    pub fn from_fields<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, EntryError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let (mut activity, mut product, mut user, mut qty, mut price, mut ts) =
            (None, None, None, None, None, None);
        for (k, v) in pairs {
            let v = v.as_ref();
            match k.as_ref() {
                b"activity" => activity = Some(v.to_vec()),
                b"product" => product = Some(v.to_vec()),
                b"user" => user = Some(v.to_vec()),
                b"qty" => qty = Some(v.to_vec()),
                b"price" => price = Some(v.to_vec()),
                b"ts" => ts = Some(v.to_vec()),
                _ => {}
            }
        }
        let activity = activity.ok_or(EntryError::Missing(field::ACTIVITY))?;
        let user = user.ok_or(EntryError::Missing(field::USER))?;
        let product = product.ok_or(EntryError::Missing(field::PRODUCT))?;
        if product.len() > 64 || !product.iter().all(|b| b.is_ascii_graphic()) {
            return Err(EntryError::BadProduct);
        }
        Ok(Self {
            activity: ActivityId::parse(&activity).map_err(|source| EntryError::BadId {
                field: field::ACTIVITY,
                source,
            })?,
            product: String::from_utf8_lossy(&product).into_owned(),
            user: UserId::parse(&user).map_err(|source| EntryError::BadId {
                field: field::USER,
                source,
            })?,
            qty: parse_bounded(
                "qty",
                &qty.ok_or(EntryError::Missing(field::QTY))?,
                1,
                MAX_LIMIT,
            )?,
            price_cents: parse_bounded(
                "price",
                &price.ok_or(EntryError::Missing(field::PRICE))?,
                0,
                MAX_PRICE_CENTS,
            )?,
            ts_ms: parse_bounded(
                "ts",
                &ts.ok_or(EntryError::Missing(field::TS))?,
                0,
                MAX_TIME_MS,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ReservationEntry {
        ReservationEntry {
            activity: ActivityId::parse("42").unwrap(),
            product: "p-1".into(),
            user: UserId::parse("u7").unwrap(),
            qty: 2,
            price_cents: 999,
            ts_ms: 1_764_000_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(ReservationEntry::from_fields(e.to_fields()), Ok(e));
    }

    #[test]
    fn poison_entries_are_refused_with_a_reason() {
        let mut fields: Vec<(String, String)> = sample()
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        fields.retain(|(k, _)| k != "user");
        assert_eq!(
            ReservationEntry::from_fields(fields.clone()),
            Err(EntryError::Missing("user"))
        );
        fields.push(("user".into(), "a b".into()));
        assert!(matches!(
            ReservationEntry::from_fields(fields),
            Err(EntryError::BadId { field: "user", .. })
        ));
        let bad_qty = sample()
            .to_fields()
            .map(|(k, v)| (k, if k == "qty" { "many".to_owned() } else { v }));
        assert!(matches!(
            ReservationEntry::from_fields(bad_qty),
            Err(EntryError::BadNumber(_))
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_fields_never_panics(
            pairs in proptest::collection::vec((".{0,8}", ".{0,20}"), 0..10)
        ) {
            let _ = ReservationEntry::from_fields(pairs);
        }

        #[test]
        fn every_valid_entry_round_trips(
            user in "[a-z0-9]{1,20}", qty in 1u64..1000, price in 0u64..1_000_000, ts in 0u64..MAX_TIME_MS
        ) {
            let e = ReservationEntry { user: UserId::parse(&user).unwrap(), qty, price_cents: price, ts_ms: ts, ..sample() };
            prop_assert_eq!(ReservationEntry::from_fields(e.to_fields()), Ok(e));
        }
    }
}
