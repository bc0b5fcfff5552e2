//! Why a reservation was refused. The module replies with [`Refusal::code`] as the error
//! prefix (`-SOLDOUT ...`), and the gateway maps the same enum to HTTP.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    SoldOut,
    Limit,
    NotStarted,
    Ended,
    NoActivity,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::SoldOut,
        Refusal::Limit,
        Refusal::NotStarted,
        Refusal::Ended,
        Refusal::NoActivity,
    ];

    /// The machine-readable code, as it appears at the start of the Redis error reply.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::SoldOut => "SOLDOUT",
            Refusal::Limit => "LIMIT",
            Refusal::NotStarted => "NOTSTARTED",
            Refusal::Ended => "ENDED",
            Refusal::NoActivity => "NOACTIVITY",
        }
    }

    /// Parses the code at the start of an error message (`"SOLDOUT no stock left"`).
    pub fn from_error_message(msg: &str) -> Option<Self> {
        let code = msg.trim_start_matches('-').split_whitespace().next()?;
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_error_messages() {
        for r in Refusal::ALL {
            assert_eq!(
                Refusal::from_error_message(&format!("{} because", r.code())),
                Some(r)
            );
            assert_eq!(
                Refusal::from_error_message(&format!("-{}", r.code())),
                Some(r)
            );
        }
        assert_eq!(Refusal::from_error_message("ERR wrong number"), None);
        assert_eq!(Refusal::from_error_message(""), None);
    }
}
