//! Admission to a sale, checked without any I/O: signed tickets, signed proof-of-work
//! challenges, and the random order of the opening moment.
//!
//! # The model
//! - A **ticket** (`a1.<payload>.<mac>`) says: user U may reserve in activity A from
//!   `not_before_ms` until `expires_ms`; `nonce` makes every ticket distinct. The gateway
//!   issues it once the sale has opened and checks it on `POST /api/v1/seckill` with one HMAC:
//!   no Redis, no database, any gateway sharing the key accepts it.
//! - A **challenge** (`c1.<payload>.<mac>`) says: U may get a ticket for A by presenting a
//!   nonce such that `SHA-256(challenge ":" nonce)` starts with `difficulty` zero bits, until
//!   `expires_ms`. The server's random salt is inside, so the work cannot start before the
//!   challenge is issued, and the user and activity are inside, so one solution buys one
//!   user's admission to one sale. Stateless too: the MAC proves the gateway issued it.
//! - The **opening window**: tickets issued in the first `window_ms` after the sale opens all
//!   get a `not_before` drawn uniformly from the window that follows it, so within that crowd
//!   the order of arrival (a faster line, an earlier script) does not decide the order of
//!   reservation. Tickets issued later are not usable before that lottery has run.
//!
//! MACs are HMAC-SHA-256 under a key derived from the deployment's secret, truncated to 128
//! bits, compared in constant time, and checked before any field of the payload is parsed.

use crate::ids::{ActivityId, UserId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// First segment of a ticket (the format's version).
pub const TICKET_PREFIX: &str = "a1";
/// First segment of a challenge.
pub const CHALLENGE_PREFIX: &str = "c1";
/// Highest proof-of-work difficulty, in leading zero bits (2^28 hashes is minutes of work in
/// a browser already).
pub const MAX_DIFFICULTY: u8 = 28;
/// Longest accepted proof-of-work nonce (letters and digits).
pub const MAX_NONCE_LEN: usize = 32;
/// Longest accepted ticket or challenge (both are ~110 bytes for the longest ids).
pub const MAX_TOKEN_LEN: usize = 512;
/// MAC bytes kept: forging one takes 2^128 guesses.
const MAC_LEN: usize = 16;

/// Why a ticket or a challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("{0} is malformed")]
    Malformed(Kind),
    #[error("{0} signature is invalid")]
    BadSignature(Kind),
    #[error("{0} was issued to another user")]
    OtherUser(Kind),
    #[error("{0} is for another activity")]
    OtherActivity(Kind),
    #[error("{0} has expired")]
    Expired(Kind),
    #[error(
        "the challenge is easier than this sale now requires ({required} bits); get a new one"
    )]
    TooEasy { required: u8 },
    #[error("the proof-of-work nonce does not solve the challenge")]
    BadWork,
}

/// Which of the two signed strings an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ticket,
    Challenge,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Ticket => "the admission token",
            Kind::Challenge => "the challenge",
        })
    }
}

/// An admission ticket: `user` may reserve in `activity` from `not_before_ms` to `expires_ms`
/// (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub user: UserId,
    pub activity: ActivityId,
    pub not_before_ms: u64,
    pub expires_ms: u64,
    /// Random, so each ticket is distinct (the gateways' seen-sets key on it).
    pub nonce: u128,
}

/// What a reservation needs of a verified ticket (its user and activity matched the caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub not_before_ms: u64,
    pub expires_ms: u64,
    pub nonce: u128,
}

/// A proof-of-work challenge for `user` in `activity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub user: UserId,
    pub activity: ActivityId,
    /// Leading zero bits the solution's digest needs.
    pub difficulty: u8,
    pub expires_ms: u64,
    /// The server's randomness: nobody can start the work before the challenge exists.
    pub salt: u128,
}

/// The key that signs tickets and challenges, derived from a deployment secret so it never
/// equals the JWT key itself (a JWT signature is never a valid ticket MAC and vice versa).
#[derive(Clone)]
pub struct AdmissionKeys {
    mac: HmacSha256,
}

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of every length; `new_from_slice` cannot fail for it.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

impl AdmissionKeys {
    pub fn derive(secret: &[u8]) -> Self {
        let mut m = hmac(secret);
        m.update(b"seckill admission key v1");
        Self {
            mac: hmac(&m.finalize().into_bytes()),
        }
    }

    fn tag(&self, signed: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(signed);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn sign(&self, prefix: &str, payload: &str) -> String {
        let body = format!("{prefix}.{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = URL_SAFE_NO_PAD.encode(self.tag(body.as_bytes()));
        format!("{body}.{tag}")
    }

    /// The payload of a signed string, once its prefix and MAC check out, decoded into `buf`.
    fn open<'b>(
        &self,
        prefix: &str,
        signed: &str,
        kind: Kind,
        buf: &'b mut [u8; MAX_TOKEN_LEN],
    ) -> Result<&'b str, AdmissionError> {
        if signed.len() > MAX_TOKEN_LEN {
            return Err(AdmissionError::Malformed(kind));
        }
        let (body, tag) = signed
            .rsplit_once('.')
            .ok_or(AdmissionError::Malformed(kind))?;
        let (head, payload) = body
            .split_once('.')
            .ok_or(AdmissionError::Malformed(kind))?;
        if head != prefix {
            return Err(AdmissionError::Malformed(kind));
        }
        // Decoded on the stack: this runs for every reservation when admission is on.
        let mut tag_buf = [0u8; 32];
        let n = URL_SAFE_NO_PAD
            .decode_slice(tag, &mut tag_buf)
            .map_err(|_| AdmissionError::Malformed(kind))?;
        if n != MAC_LEN {
            return Err(AdmissionError::Malformed(kind));
        }
        let mut m = self.mac.clone();
        m.update(body.as_bytes());
        // Constant time, and before anything inside is trusted or parsed.
        m.verify_truncated_left(&tag_buf[..MAC_LEN])
            .map_err(|_| AdmissionError::BadSignature(kind))?;
        let n = URL_SAFE_NO_PAD
            .decode_slice(payload, buf)
            .map_err(|_| AdmissionError::Malformed(kind))?;
        std::str::from_utf8(&buf[..n]).map_err(|_| AdmissionError::Malformed(kind))
    }

    pub fn issue_ticket(&self, t: &Ticket) -> String {
        let payload = format!(
            "{}|{}|{}|{}|{:032x}",
            t.user, t.activity, t.not_before_ms, t.expires_ms, t.nonce
        );
        self.sign(TICKET_PREFIX, &payload)
    }

    /// The ticket, if it is genuine, is `user`'s, is for `activity` and has not expired at
    /// `now_ms`. Whether `not_before_ms` has come is the caller's question (it is not a reason
    /// to throw the ticket away). Allocates nothing: it runs on every reservation.
    pub fn verify_ticket(
        &self,
        token: &str,
        user: &UserId,
        activity: &ActivityId,
        now_ms: u64,
    ) -> Result<Verified, AdmissionError> {
        const K: Kind = Kind::Ticket;
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let payload = self.open(TICKET_PREFIX, token, K, &mut buf)?;
        let mut f = payload.split('|');
        let (Some(u), Some(a), Some(nb), Some(exp), Some(nonce), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(AdmissionError::Malformed(K));
        };
        let bad = |_| AdmissionError::Malformed(K);
        let v = Verified {
            not_before_ms: nb.parse().map_err(bad)?,
            expires_ms: exp.parse().map_err(bad)?,
            nonce: u128::from_str_radix(nonce, 16).map_err(bad)?,
        };
        // Genuine (the MAC matched), so these are the ids it was issued for.
        if u != user.as_str() {
            return Err(AdmissionError::OtherUser(K));
        }
        if a != activity.as_str() {
            return Err(AdmissionError::OtherActivity(K));
        }
        if now_ms >= v.expires_ms {
            return Err(AdmissionError::Expired(K));
        }
        Ok(v)
    }

    pub fn issue_challenge(&self, c: &Challenge) -> String {
        let payload = format!(
            "{}|{}|{}|{}|{:032x}",
            c.user, c.activity, c.difficulty, c.expires_ms, c.salt
        );
        self.sign(CHALLENGE_PREFIX, &payload)
    }

    /// The challenge, if it is genuine, `user`'s, for `activity`, unexpired, at least as hard
    /// as `required`, and `nonce` solves it.
    pub fn verify_work(
        &self,
        challenge: &str,
        nonce: &str,
        user: &UserId,
        activity: &ActivityId,
        required: u8,
        now_ms: u64,
    ) -> Result<Challenge, AdmissionError> {
        const K: Kind = Kind::Challenge;
        let mut buf = [0u8; MAX_TOKEN_LEN];
        let payload = self.open(CHALLENGE_PREFIX, challenge, K, &mut buf)?;
        let f: Vec<&str> = payload.split('|').collect();
        let [u, a, d, exp, salt] = f.as_slice() else {
            return Err(AdmissionError::Malformed(K));
        };
        let bad = |_| AdmissionError::Malformed(K);
        let c = Challenge {
            user: UserId::parse(u).map_err(|_| AdmissionError::Malformed(K))?,
            activity: ActivityId::parse(a).map_err(|_| AdmissionError::Malformed(K))?,
            difficulty: d.parse().map_err(bad)?,
            expires_ms: exp.parse().map_err(bad)?,
            salt: u128::from_str_radix(salt, 16).map_err(bad)?,
        };
        check_owner(
            &c.user,
            &c.activity,
            c.expires_ms,
            user,
            activity,
            now_ms,
            K,
        )?;
        if c.difficulty < required {
            return Err(AdmissionError::TooEasy { required });
        }
        if !solves(challenge, nonce, c.difficulty) {
            return Err(AdmissionError::BadWork);
        }
        Ok(c)
    }
}

fn check_owner(
    user: &UserId,
    activity: &ActivityId,
    expires_ms: u64,
    want_user: &UserId,
    want_activity: &ActivityId,
    now_ms: u64,
    kind: Kind,
) -> Result<(), AdmissionError> {
    if user != want_user {
        return Err(AdmissionError::OtherUser(kind));
    }
    if activity != want_activity {
        return Err(AdmissionError::OtherActivity(kind));
    }
    if now_ms >= expires_ms {
        return Err(AdmissionError::Expired(kind));
    }
    Ok(())
}

/// Whether `nonce` is acceptable at all: 1 to [`MAX_NONCE_LEN`] letters and digits.
pub fn valid_nonce(nonce: &str) -> bool {
    (1..=MAX_NONCE_LEN).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `SHA-256(challenge ":" nonce)`, the digest the work is about.
pub fn work_digest(challenge: &str, nonce: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(challenge.as_bytes());
    h.update(b":");
    h.update(nonce.as_bytes());
    h.finalize().into()
}

/// Leading zero bits of `digest`.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut n = 0;
    for b in digest {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Whether `nonce` solves `challenge` at `difficulty` (one hash: the server's whole cost).
pub fn solves(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    valid_nonce(nonce) && leading_zero_bits(&work_digest(challenge, nonce)) >= u32::from(difficulty)
}

/// The work a client does: the first decimal nonce that solves `challenge` (2^difficulty
/// hashes on average). For tests and tools; browsers do the same in `app.js`.
pub fn solve(challenge: &str, difficulty: u8) -> String {
    let mut n: u64 = 0;
    loop {
        let nonce = n.to_string();
        if solves(challenge, &nonce, difficulty) {
            return nonce;
        }
        n += 1;
    }
}

/// When a ticket issued at `now_ms` may first be used, for a sale opening at `start_ms` with
/// an opening window of `window_ms`; `draw` is a uniformly random number.
///
/// - no window: at once;
/// - issued during the opening window `[start, start + window)` (the crowd that clicked "at
///   the same moment"): a uniformly random instant of the next window,
///   `[start + window, start + 2 window)`, so arriving first inside the window buys nothing;
/// - issued later: not before that lottery is over (`start + 2 window`), then at once.
pub fn not_before(start_ms: u64, window_ms: u64, now_ms: u64, draw: u64) -> u64 {
    if window_ms == 0 {
        return now_ms;
    }
    let lottery = start_ms.saturating_add(window_ms);
    if now_ms < lottery {
        lottery.saturating_add(draw % window_ms)
    } else {
        now_ms.max(lottery.saturating_add(window_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AdmissionKeys {
        AdmissionKeys::derive(b"test-secret-test-secret-test-secret!")
    }
    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn a(s: &str) -> ActivityId {
        ActivityId::parse(s).unwrap()
    }
    fn ticket() -> Ticket {
        Ticket {
            user: u("42"),
            activity: a("7"),
            not_before_ms: 1_000,
            expires_ms: 61_000,
            nonce: 0xdead_beef,
        }
    }

    #[test]
    fn tickets_round_trip_and_bind_user_activity_and_time() {
        let k = keys();
        let t = ticket();
        let s = k.issue_ticket(&t);
        assert!(s.starts_with("a1.") && s.len() < 200, "{s}");
        assert_eq!(
            k.verify_ticket(&s, &u("42"), &a("7"), 5_000),
            Ok(Verified {
                not_before_ms: t.not_before_ms,
                expires_ms: t.expires_ms,
                nonce: t.nonce
            })
        );
        let table = [
            (
                u("43"),
                a("7"),
                5_000,
                AdmissionError::OtherUser(Kind::Ticket),
            ),
            (
                u("42"),
                a("8"),
                5_000,
                AdmissionError::OtherActivity(Kind::Ticket),
            ),
            (
                u("42"),
                a("7"),
                61_000,
                AdmissionError::Expired(Kind::Ticket),
            ),
        ];
        for (user, act, now, want) in table {
            assert_eq!(k.verify_ticket(&s, &user, &act, now).err(), Some(want));
        }
    }

    #[test]
    fn forged_and_garbled_tickets_are_refused() {
        let k = keys();
        let s = k.issue_ticket(&ticket());
        let other =
            AdmissionKeys::derive(b"another-secret-another-secret-0000").issue_ticket(&ticket());
        let (body, _) = s.rsplit_once('.').unwrap();
        // The same payload claiming another user, with the genuine MAC of the original.
        let forged_payload =
            URL_SAFE_NO_PAD.encode("43|7|1000|61000|000000000000000000000000deadbeef");
        let mac = s.rsplit_once('.').unwrap().1;
        let swapped = format!("a1.{forged_payload}.{mac}");
        let challenge_as_ticket = k.issue_challenge(&Challenge {
            user: u("42"),
            activity: a("7"),
            difficulty: 0,
            expires_ms: 61_000,
            salt: 1,
        });
        let cases: Vec<(&str, String, AdmissionError)> = vec![
            (
                "wrong key",
                other,
                AdmissionError::BadSignature(Kind::Ticket),
            ),
            (
                "payload swapped",
                swapped,
                AdmissionError::BadSignature(Kind::Ticket),
            ),
            (
                "no mac",
                format!("{body}."),
                AdmissionError::Malformed(Kind::Ticket),
            ),
            (
                "mac cut",
                format!("{body}.AAAA"),
                AdmissionError::Malformed(Kind::Ticket),
            ),
            (
                "empty",
                String::new(),
                AdmissionError::Malformed(Kind::Ticket),
            ),
            (
                "garbage",
                "a1.%%%.%%%".into(),
                AdmissionError::Malformed(Kind::Ticket),
            ),
            (
                "huge",
                "a".repeat(10_000),
                AdmissionError::Malformed(Kind::Ticket),
            ),
            (
                "a challenge",
                challenge_as_ticket,
                AdmissionError::Malformed(Kind::Ticket),
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(
                k.verify_ticket(&token, &u("42"), &a("7"), 5_000).err(),
                Some(want),
                "{name}"
            );
        }
        // A MAC of the right length but wrong bits.
        let mut bad = s.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            k.verify_ticket(&bad, &u("42"), &a("7"), 5_000).err(),
            Some(AdmissionError::BadSignature(Kind::Ticket))
        );
    }

    #[test]
    fn work_is_checked_against_the_signed_difficulty() {
        let k = keys();
        let c = Challenge {
            user: u("42"),
            activity: a("7"),
            difficulty: 10,
            expires_ms: 61_000,
            salt: 99,
        };
        let s = k.issue_challenge(&c);
        let nonce = solve(&s, 10);
        assert!(leading_zero_bits(&work_digest(&s, &nonce)) >= 10);
        assert_eq!(k.verify_work(&s, &nonce, &u("42"), &a("7"), 10, 1), Ok(c));
        assert_eq!(
            k.verify_work(&s, &nonce, &u("42"), &a("7"), 0, 1)
                .map(|c| c.difficulty),
            Ok(10)
        );
        assert_eq!(
            k.verify_work(&s, &nonce, &u("42"), &a("7"), 12, 1).err(),
            Some(AdmissionError::TooEasy { required: 12 })
        );
        // A nonce that does not solve it (the first of a few that fail).
        let wrong = (0..100u32)
            .map(|n| format!("x{n}"))
            .find(|n| !solves(&s, n, 10))
            .unwrap();
        assert_eq!(
            k.verify_work(&s, &wrong, &u("42"), &a("7"), 10, 1).err(),
            Some(AdmissionError::BadWork)
        );
        for bad in ["", "a b", "é", &"1".repeat(33)] {
            assert!(!solves(&s, bad, 0), "{bad:?} is not a nonce");
        }
        assert_eq!(
            k.verify_work(&s, &nonce, &u("1"), &a("7"), 10, 1).err(),
            Some(AdmissionError::OtherUser(Kind::Challenge))
        );
        assert_eq!(
            k.verify_work(&s, &nonce, &u("42"), &a("7"), 10, 61_000)
                .err(),
            Some(AdmissionError::Expired(Kind::Challenge))
        );
    }

    #[test]
    fn leading_zero_bits_counts_bits() {
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0x01]), 7);
        assert_eq!(leading_zero_bits(&[0x00, 0x40]), 9);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn the_opening_window_is_a_lottery_then_first_come() {
        let (start, w) = (1_000_000, 200);
        // No window: at once.
        assert_eq!(not_before(start, 0, start + 5, 123), start + 5);
        // Inside the window: the next window, by the draw alone (not by arrival time).
        for now in [start, start + 1, start + 199] {
            assert_eq!(not_before(start, w, now, 0), start + 200);
            assert_eq!(not_before(start, w, now, 199), start + 399);
            assert_eq!(not_before(start, w, now, 1234), start + 200 + 34);
        }
        // After the window: not before the lottery is over, then at once.
        assert_eq!(not_before(start, w, start + 200, 7), start + 400);
        assert_eq!(not_before(start, w, start + 399, 7), start + 400);
        assert_eq!(not_before(start, w, start + 5_000, 7), start + 5_000);
        // A sale open "since ever" (START 0) has no lottery left.
        assert_eq!(not_before(0, w, start, 7), start);
    }

    #[test]
    fn draws_spread_uniformly_over_the_window() {
        // 10,000 pseudo-random draws: every 20 ms bucket of a 200 ms window gets its share.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let nb = not_before(0, 200, 0, x) - 200;
            buckets[(nb / 20) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (850..1150).contains(&b)),
            "{buckets:?}"
        );
    }
}
