//! Bounds on numbers accepted from outside. Anything beyond them is an argument error, so an
//! absurd value can never overflow a counter or a price computation.

/// Largest stock of one activity.
pub const MAX_STOCK: u64 = 1_000_000_000_000;
/// Largest per-user limit (and so the largest quantity of one reservation).
pub const MAX_LIMIT: u64 = 1_000_000;
/// Largest price in cents.
pub const MAX_PRICE_CENTS: u64 = 1_000_000_000_000;
/// Latest accepted timestamp (year ~2286), in unix milliseconds.
pub const MAX_TIME_MS: u64 = 9_999_999_999_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("{what} must be a whole number, got '{got}'")]
    NotANumber { what: &'static str, got: String },
    #[error("{what} must be between {min} and {max}, got {got}")]
    OutOfRange {
        what: &'static str,
        min: u64,
        max: u64,
        got: String,
    },
}

/// Parses a decimal integer in `min..=max`. Signs, spaces and leading `+` are refused.
pub fn parse_bounded(
    what: &'static str,
    raw: &[u8],
    min: u64,
    max: u64,
) -> Result<u64, NumberError> {
    let text = String::from_utf8_lossy(raw);
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotANumber {
            what,
            got: truncate(&text),
        });
    }
    let out_of_range = || NumberError::OutOfRange {
        what,
        min,
        max,
        got: truncate(&text),
    };
    if text.starts_with('-') {
        return Err(out_of_range());
    }
    let value: u64 = digits.parse().map_err(|_| out_of_range())?;
    if value < min || value > max {
        return Err(out_of_range());
    }
    Ok(value)
}

fn truncate(s: &str) -> String {
    if s.len() <= 32 {
        s.to_owned()
    } else {
        let mut end = 32;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        assert_eq!(parse_bounded("qty", b"1", 1, 10), Ok(1));
        assert_eq!(parse_bounded("qty", b"10", 1, 10), Ok(10));
        for bad in [&b""[..], b"x", b"1.5", b" 1", b"+1", b"1e3", b"0x10"] {
            assert!(
                matches!(
                    parse_bounded("qty", bad, 1, 10),
                    Err(NumberError::NotANumber { .. })
                ),
                "{bad:?}"
            );
        }
        for bad in [&b"0"[..], b"11", b"-1", b"99999999999999999999999999"] {
            assert!(
                matches!(
                    parse_bounded("qty", bad, 1, 10),
                    Err(NumberError::OutOfRange { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_was_wrong() {
        let e = parse_bounded("quantity", b"-3", 1, 5).unwrap_err();
        assert_eq!(e.to_string(), "quantity must be between 1 and 5, got -3");
        let long = "9".repeat(100);
        assert!(
            parse_bounded("stock", long.as_bytes(), 0, 5)
                .unwrap_err()
                .to_string()
                .len()
                < 100
        );
    }
}
