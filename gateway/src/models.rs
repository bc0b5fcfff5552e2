//! Request bodies, parsed into domain values ("parse, don't validate"), and response bodies.
//!
//! Bodies are read as a JSON object first, so an array, a string or malformed JSON is refused
//! with a message naming the problem; each field is then checked for type and range.
//!
//! Each request type also states its schema for the OpenAPI document (`schema()`), built from
//! the same constants its parser checks against, so the document cannot promise a bound the
//! parser does not enforce. Response types derive theirs.

use crate::error::ApiError;
use crate::openapi::schema as sch;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use seckill_core::account::{
    check_password, AccountError, Username, PASSWORD_LEN, USERNAME_CHARS, USERNAME_LEN,
};
use seckill_core::admission::{MAX_NONCE_LEN, MAX_TOKEN_LEN};
use seckill_core::limits::{MAX_LIMIT, MAX_PRICE_CENTS, MAX_STOCK};
use seckill_core::ActivityId;
pub(crate) use seckill_db::activities::{NewActivity, ProductRef};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::ToSchema;

type Object = Map<String, Value>;

/// Parses a body that must be a JSON object.
pub(crate) fn json_object(body: &[u8]) -> Result<Object, ApiError> {
    if body.is_empty() {
        return Err(ApiError::InvalidArgument("request body is empty".into()));
    }
    serde_json::from_slice::<Object>(body).map_err(|e| {
        let why = if e.is_data() {
            "request body must be a JSON object".to_owned()
        } else {
            format!("request body is not valid JSON ({e})")
        };
        ApiError::InvalidArgument(why)
    })
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(msg.into())
}

/// A field's value; `null` counts as missing.
fn get<'a>(obj: &'a Object, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn required<'a>(obj: &'a Object, name: &str) -> Result<&'a Value, ApiError> {
    get(obj, name).ok_or_else(|| invalid(format!("field '{name}' is required")))
}

/// An unsigned integer in `min..=max` (JSON numbers only; no strings, floats or negatives).
/// A whole, non-negative JSON number: `3`, and also `3.0` (JSON Schema's "integer" admits a
/// number with a zero fraction, and so do we).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        // 2^64: every integral f64 below it converts exactly.
        (f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0).then_some(f as u64)
    })
}

fn bounded(v: &Value, name: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    let n = whole(v).filter(|n| (min..=max).contains(n));
    n.ok_or_else(|| invalid(format!("'{name}' must be an integer from {min} to {max}")))
}

fn text<'a>(v: &'a Value, name: &str, min: usize, max: usize) -> Result<&'a str, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid(format!("'{name}' must be a string")))?;
    let len = s.chars().count();
    if len < min || len > max {
        return Err(invalid(format!(
            "'{name}' must be {min} to {max} characters long"
        )));
    }
    Ok(s)
}

/// An id given as a JSON number or string, in the id alphabet of the core crate.
fn id_value(v: &Value, name: &str) -> Result<String, ApiError> {
    let raw = match (v, whole(v)) {
        (Value::Number(_), Some(n)) => n.to_string(),
        (Value::String(s), _) => s.clone(),
        _ => {
            return Err(invalid(format!(
                "'{name}' must be a string or a positive integer"
            )))
        }
    };
    ActivityId::parse(&raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| invalid(format!("'{name}': {e}")))
}

/// An optional string field of at most `max` bytes (the signed tokens: ASCII).
fn opt_token(obj: &Object, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match get(obj, name) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .as_str()
                .ok_or_else(|| invalid(format!("'{name}' must be a string")))?;
            if s.is_empty() || s.len() > max {
                return Err(invalid(format!(
                    "'{name}' must be 1 to {max} characters long"
                )));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

/// `activity_id` of a body, as an [`ActivityId`].
fn activity_field(obj: &Object) -> Result<ActivityId, ApiError> {
    ActivityId::parse(id_value(required(obj, "activity_id")?, "activity_id")?)
        .map_err(|e| invalid(e.to_string()))
}

/// `POST /api/v1/seckill`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReserveRequest {
    pub activity: ActivityId,
    pub product: String,
    pub quantity: u64,
    /// The admission token, when the client sent one.
    pub admission: Option<String>,
}

impl ReserveRequest {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        let activity = activity_field(&obj)?;
        let product = id_value(required(&obj, "product_id")?, "product_id")?;
        let quantity = bounded(required(&obj, "quantity")?, "quantity", 1, MAX_LIMIT)?;
        let admission = opt_token(&obj, "admission", MAX_TOKEN_LEN)?;
        Ok(Self {
            activity,
            product,
            quantity,
            admission,
        })
    }

    pub(crate) fn schema() -> Schema {
        sch::object(
            "A reservation: the activity, the product it sells, how many units.",
            &[
                ("activity_id", sch::id("The activity."), true),
                (
                    "product_id",
                    sch::id("The product the activity sells (a mismatch is refused)."),
                    true,
                ),
                (
                    "quantity",
                    sch::integer(
                        "Units, at most the activity's per-user limit.",
                        1,
                        MAX_LIMIT,
                    ),
                    true,
                ),
                (
                    "admission",
                    sch::string(
                        "The admission token from POST /api/v1/seckill/admission; required when \
                         the activity requires admission (see the activity's `admission`), \
                         ignored otherwise.",
                        1,
                        MAX_TOKEN_LEN,
                        None,
                    ),
                    false,
                ),
            ],
        )
    }
}

/// `POST /api/v1/seckill/challenge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChallengeRequest {
    pub activity: ActivityId,
}

impl ChallengeRequest {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        Ok(Self {
            activity: activity_field(&obj)?,
        })
    }

    pub(crate) fn schema() -> Schema {
        sch::object(
            "The activity whose proof-of-work challenge is asked for.",
            &[("activity_id", sch::id("The activity."), true)],
        )
    }
}

/// `POST /api/v1/seckill/admission`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdmissionRequest {
    pub activity: ActivityId,
    /// The challenge and its solution, when the sale asks for proof of work.
    pub challenge: Option<String>,
    pub nonce: Option<String>,
}

impl AdmissionRequest {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        let activity = activity_field(&obj)?;
        let challenge = opt_token(&obj, "challenge", MAX_TOKEN_LEN)?;
        let nonce = opt_token(&obj, "nonce", MAX_NONCE_LEN)?;
        if let Some(n) = &nonce {
            if !seckill_core::admission::valid_nonce(n) {
                return Err(invalid("'nonce' may only contain letters and digits"));
            }
        }
        Ok(Self {
            activity,
            challenge,
            nonce,
        })
    }

    pub(crate) fn schema() -> Schema {
        sch::object(
            "The activity to be admitted to; with proof of work when the sale asks for it.",
            &[
                ("activity_id", sch::id("The activity."), true),
                (
                    "challenge",
                    sch::string(
                        "A challenge from POST /api/v1/seckill/challenge (needed when the \
                         activity's admission difficulty is above 0).",
                        1,
                        MAX_TOKEN_LEN,
                        None,
                    ),
                    false,
                ),
                (
                    "nonce",
                    sch::string(
                        "Letters and digits such that SHA-256(challenge + \":\" + nonce) starts \
                         with the challenge's number of zero bits.",
                        1,
                        MAX_NONCE_LEN,
                        Some(&format!("^[A-Za-z0-9]{{1,{MAX_NONCE_LEN}}}$")),
                    ),
                    false,
                ),
            ],
        )
    }
}

/// `POST /api/v1/auth/register` and `/login`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// For registration: the account rules of `seckill_core::account` (the CLI's too).
    pub(crate) fn parse_new(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        let username = text(required(&obj, "username")?, "username", 0, usize::MAX)?;
        let username = Username::parse(username).map_err(|e| match e {
            AccountError::UsernameChars => {
                invalid(format!("'username' may only contain {USERNAME_CHARS}"))
            }
            _ => invalid("'username' must be 3 to 32 characters long"),
        })?;
        let password = text(required(&obj, "password")?, "password", 0, usize::MAX)?;
        check_password(password)
            .map_err(|_| invalid("'password' must be 8 to 128 characters long"))?;
        Ok(Self {
            username: username.as_str().to_owned(),
            password: password.to_owned(),
        })
    }

    /// For login: any non-empty strings (a wrong one is simply a failed login).
    pub(crate) fn parse_login(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        Ok(Self {
            username: text(required(&obj, "username")?, "username", 1, LOGIN_NAME_MAX)?.to_owned(),
            password: text(
                required(&obj, "password")?,
                "password",
                1,
                *PASSWORD_LEN.end(),
            )?
            .to_owned(),
        })
    }

    pub(crate) fn schema_new() -> Schema {
        sch::object(
            "A new account.",
            &[
                (
                    "username",
                    sch::string(
                        "Letters, digits, '_', '-' and '.'.",
                        *USERNAME_LEN.start(),
                        *USERNAME_LEN.end(),
                        Some(&format!(
                            "^[A-Za-z0-9_.-]{{{},{}}}$",
                            USERNAME_LEN.start(),
                            USERNAME_LEN.end()
                        )),
                    ),
                    true,
                ),
                (
                    "password",
                    sch::string(
                        "Characters (not bytes).",
                        *PASSWORD_LEN.start(),
                        *PASSWORD_LEN.end(),
                        None,
                    ),
                    true,
                ),
            ],
        )
    }

    pub(crate) fn schema_login() -> Schema {
        sch::object(
            "Credentials.",
            &[
                ("username", sch::string("", 1, LOGIN_NAME_MAX, None), true),
                (
                    "password",
                    sch::string("", 1, *PASSWORD_LEN.end(), None),
                    true,
                ),
            ],
        )
    }
}

/// Longest username a login accepts (longer than any registered one, so a typo of length is
/// still just a failed login).
const LOGIN_NAME_MAX: usize = 64;

/// Longest payment window accepted (a week).
pub(crate) const MAX_PAYMENT_WINDOW_SECS: u64 = 7 * 24 * 3600;

fn instant(v: &Value, name: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid(format!("'{name}' must be an RFC 3339 time or \"now\"")))?;
    if s == "now" {
        return Ok(now);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(format!("'{name}' must be an RFC 3339 time or \"now\"")))
}

/// `POST /api/v1/admin/activities`: the body of a new activity (`now` for `"now"` and the
/// default start).
pub(crate) fn parse_new_activity(body: &[u8], now: DateTime<Utc>) -> Result<NewActivity, ApiError> {
    let obj = json_object(body)?;
    let title = text(required(&obj, "title")?, "title", 1, 200)?.to_owned();
    let product = match (get(&obj, "product_id"), get(&obj, "product_name")) {
        (Some(id), None) => ProductRef::Existing(bounded(id, "product_id", 1, u64::MAX)?),
        (None, Some(name)) => ProductRef::New(text(name, "product_name", 1, 200)?.to_owned()),
        _ => return Err(invalid(
            "give exactly one of 'product_id' (existing product) or 'product_name' (new product)",
        )),
    };
    let price_cents = bounded(
        required(&obj, "price_cents")?,
        "price_cents",
        0,
        MAX_PRICE_CENTS,
    )?;
    let stock = bounded(required(&obj, "stock")?, "stock", 1, MAX_STOCK)?;
    let per_user_limit = match get(&obj, "per_user_limit") {
        Some(v) => bounded(v, "per_user_limit", 1, MAX_LIMIT)?,
        None => 1,
    };
    let start_at = match get(&obj, "start_at") {
        Some(v) => instant(v, "start_at", now)?,
        None => now,
    };
    let end_at = get(&obj, "end_at")
        .map(|v| instant(v, "end_at", now))
        .transpose()?;
    if end_at.is_some_and(|end| end <= start_at) {
        return Err(invalid("'end_at' must be after 'start_at'"));
    }
    let payment_window_secs = match get(&obj, "payment_window_secs") {
        Some(v) => bounded(v, "payment_window_secs", 1, MAX_PAYMENT_WINDOW_SECS)?,
        None => 900,
    };
    Ok(NewActivity {
        title,
        product,
        price_cents,
        stock,
        per_user_limit,
        start_at,
        end_at,
        payment_window_secs,
    })
}

/// The schema of `POST /api/v1/admin/activities`'s body.
pub(crate) fn new_activity_schema() -> Schema {
    let when = |what: &str| {
        sch::any_of(
            what,
            vec![
                sch::date_time("An RFC 3339 time."),
                sch::constant("now", "The time of the request."),
            ],
        )
    };
    sch::object(
        "A new activity. Exactly one of product_id (an existing product) and product_name (a \
         new product) must be given; end_at must be after start_at.",
        &[
            ("title", sch::string("", 1, 200, None), true),
            (
                "product_id",
                sch::integer("An existing product.", 1, u64::MAX),
                false,
            ),
            (
                "product_name",
                sch::string("A new product with this name.", 1, 200, None),
                false,
            ),
            ("price_cents", sch::integer("", 0, MAX_PRICE_CENTS), true),
            ("stock", sch::integer("", 1, MAX_STOCK), true),
            (
                "per_user_limit",
                sch::integer("Default 1.", 1, MAX_LIMIT),
                false,
            ),
            ("start_at", when("Default: now."), false),
            ("end_at", when("Default: no end."), false),
            (
                "payment_window_secs",
                sch::integer("Default 900.", 1, MAX_PAYMENT_WINDOW_SECS),
                false,
            ),
        ],
    )
}

/// Formats a MySQL `DATETIME` (stored in UTC) as RFC 3339.
pub(crate) fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats unix milliseconds as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What an activity asks of its buyers before `POST /api/v1/seckill`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub(crate) struct AdmissionView {
    /// Whether reservations need an admission token.
    pub required: bool,
    /// Proof-of-work difficulty of an admission (leading zero bits; 0: none).
    pub difficulty: u8,
    /// The opening window (ms): admissions requested in it are served in a random order.
    pub window_ms: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ActivityView {
    pub id: u64,
    pub title: String,
    pub product_id: u64,
    pub product_name: String,
    pub price_cents: u64,
    pub stock: u64,
    pub per_user_limit: u64,
    pub start_at: String,
    pub end_at: Option<String>,
    pub payment_window_secs: u64,
    /// Live stock from `SECKILL.STATUS`; null when Redis did not answer.
    pub remaining: Option<u64>,
    /// pending / open / sold-out / ended, from Redis; "unknown" when Redis did not answer;
    /// "not-preheated" when Redis does not have it.
    pub state: String,
    pub admission: AdmissionView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct OrderView {
    pub id: u64,
    pub reservation_id: String,
    pub activity_id: u64,
    pub product_id: String,
    pub quantity: u64,
    pub amount_cents: u64,
    pub status: String,
    pub reserved_at: String,
    pub expires_at: String,
    pub paid_at: Option<String>,
    pub released_at: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct HealthView {
    /// `healthy`, or `unhealthy` (with 503).
    pub status: &'static str,
    pub timestamp: String,
    /// `down` when Redis does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
}

/// `GET /ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ReadyView {
    /// `ready` or `not-ready` (with 503).
    pub status: &'static str,
    pub timestamp: String,
    /// `up` or `down`.
    pub redis: &'static str,
    /// `up` or `down`.
    pub mysql: &'static str,
}

/// `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RegisteredView {
    pub user_id: String,
    pub username: String,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct LoginView {
    /// HS256 JWT for `Authorization: Bearer`.
    pub token: String,
    pub expires_at: String,
    pub user_id: String,
    /// `user` or `admin`.
    pub role: &'static str,
}

/// `POST /api/v1/seckill`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ReservationView {
    /// The reservation (a stream id, `<ms>-<seq>`).
    pub reservation_id: String,
    /// `queued` (200): held, the order is written asynchronously; poll the result.
    /// `pending` (202): held, but not yet confirmed on `redis.min_replicas` replicas in time;
    /// the result tells the outcome.
    pub status: &'static str,
    pub activity_id: String,
    pub quantity: u64,
}

/// `GET /api/v1/seckill/result`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ResultView {
    /// `queued` (reserved, order not written yet), `success` (a live order), `failed` (the
    /// order was cancelled or expired).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
}

/// `POST /api/v1/seckill/challenge`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ChallengeView {
    /// Signed; send it back with a nonce to POST /api/v1/seckill/admission.
    pub challenge: String,
    /// Leading zero bits SHA-256(challenge ":" nonce) must have.
    pub difficulty: u8,
    /// `sha256-leading-zero-bits`.
    pub algorithm: &'static str,
    pub expires_at: String,
}

/// `POST /api/v1/seckill/admission`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AdmissionTicketView {
    /// Send it as `admission` in POST /api/v1/seckill.
    pub token: String,
    pub activity_id: String,
    /// Not usable before this instant (425 `TOO_EARLY` until then).
    pub not_before: String,
    /// Milliseconds from now until `not_before` (clock-independent).
    pub wait_ms: u64,
    pub expires_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserve(body: &str) -> Result<ReserveRequest, ApiError> {
        ReserveRequest::parse(body.as_bytes())
    }

    #[test]
    fn reserve_accepts_numbers_and_strings() {
        let r = reserve(r#"{"activity_id": 42, "product_id": "p-1", "quantity": 2}"#).unwrap();
        assert_eq!(r.activity.as_str(), "42");
        assert_eq!(r.product, "p-1");
        assert_eq!(r.quantity, 2);
        assert_eq!(r.admission, None);
        let r =
            reserve(r#"{"activity_id": 1, "product_id": 1, "quantity": 1, "admission": "a1.x.y"}"#)
                .unwrap();
        assert_eq!(r.admission.as_deref(), Some("a1.x.y"));
        let r =
            reserve(r#"{"activity_id": "42", "product_id": 7, "quantity": 1, "x": 1}"#).unwrap();
        assert_eq!(r.product, "7");
        // JSON Schema's integers include a zero fraction.
        let r = reserve(r#"{"activity_id": 1298.0, "product_id": 7, "quantity": 2.0}"#).unwrap();
        assert_eq!((r.activity.as_str(), r.quantity), ("1298", 2));
    }

    #[test]
    fn reserve_bad_input_table() {
        let cases = [
            ("", "empty"),
            ("{", "not valid JSON"),
            ("[1,2,3]", "JSON object"),
            ("\"str\"", "JSON object"),
            ("null", "JSON object"),
            (
                r#"{"product_id": 1, "quantity": 1}"#,
                "'activity_id' is required",
            ),
            (
                r#"{"activity_id": 1, "quantity": 1}"#,
                "'product_id' is required",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1}"#,
                "'quantity' is required",
            ),
            (
                r#"{"activity_id": null, "product_id": 1, "quantity": 1}"#,
                "required",
            ),
            (
                r#"{"activity_id": true, "product_id": 1, "quantity": 1}"#,
                "'activity_id' must be",
            ),
            (
                r#"{"activity_id": -1, "product_id": 1, "quantity": 1}"#,
                "'activity_id' must be",
            ),
            (
                r#"{"activity_id": 1.5, "product_id": 1, "quantity": 1}"#,
                "'activity_id' must be",
            ),
            (
                r#"{"activity_id": "a{b}", "product_id": 1, "quantity": 1}"#,
                "activity_id",
            ),
            (
                r#"{"activity_id": "", "product_id": 1, "quantity": 1}"#,
                "activity_id",
            ),
            (
                r#"{"activity_id": 1, "product_id": [], "quantity": 1}"#,
                "'product_id' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 0}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": -1}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 1.5}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": "1"}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 1e30}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 99999999999999999999999}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 1000001}"#,
                "'quantity' must be",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 1, "admission": 5}"#,
                "'admission' must be a string",
            ),
            (
                r#"{"activity_id": 1, "product_id": 1, "quantity": 1, "admission": ""}"#,
                "'admission' must be 1 to",
            ),
        ];
        for (body, want) in cases {
            match reserve(body) {
                Err(ApiError::InvalidArgument(msg)) => {
                    assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn admission_requests() {
        let r = AdmissionRequest::parse(
            br#"{"activity_id": "7", "challenge": "c1.a.b", "nonce": "123"}"#,
        )
        .unwrap();
        assert_eq!(
            (r.activity.as_str(), r.nonce.as_deref()),
            ("7", Some("123"))
        );
        for bad in [
            r#"{"challenge": "c"}"#,
            r#"{"activity_id": 7, "nonce": "a b"}"#,
            r#"{"activity_id": 7, "nonce": 12}"#,
            r#"{"activity_id": 7, "nonce": "123456789012345678901234567890123"}"#,
        ] {
            assert!(AdmissionRequest::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(ChallengeRequest::parse(br#"{"activity_id": 7}"#).is_ok());
    }

    #[test]
    fn times_in_milliseconds_are_rfc3339() {
        assert_eq!(rfc3339_ms(1_893_456_000_500), "2030-01-01T00:00:00.500Z");
    }

    #[test]
    fn credentials_rules() {
        let ok = Credentials::parse_new(br#"{"username":"alice_1","password":"longenough"}"#);
        assert_eq!(ok.map(|c| c.username).ok(), Some("alice_1".to_owned()));
        for bad in [
            r#"{"username":"al","password":"longenough"}"#,
            r#"{"username":"alice bob","password":"longenough"}"#,
            r#"{"username":"alice","password":"short"}"#,
            r#"{"username":5,"password":"longenough"}"#,
            r#"{"password":"longenough"}"#,
        ] {
            assert!(Credentials::parse_new(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Credentials::parse_login(br#"{"username":"admin","password":"admin"}"#).is_ok());
        assert!(Credentials::parse_login(br#"{"username":"admin","password":""}"#).is_err());
    }

    #[test]
    fn new_activity_defaults_and_checks() {
        let now = Utc::now();
        let a = parse_new_activity(
            br#"{"title":"t","product_name":"p","price_cents":100,"stock":10}"#,
            now,
        )
        .unwrap();
        assert_eq!((a.per_user_limit, a.payment_window_secs), (1, 900));
        assert_eq!(a.start_at, now);
        assert_eq!(a.product, ProductRef::New("p".into()));
        let a = parse_new_activity(
            br#"{"title":"t","product_id":3,"price_cents":0,"stock":1,"per_user_limit":2,
                "start_at":"2030-01-01T00:00:00Z","end_at":"2030-01-02T00:00:00+08:00"}"#,
            now,
        )
        .unwrap();
        assert_eq!(a.product, ProductRef::Existing(3));
        assert_eq!(
            a.end_at.map(|e| e.to_rfc3339()),
            Some("2030-01-01T16:00:00+00:00".into())
        );
        for bad in [
            r#"{"title":"t","price_cents":1,"stock":1}"#,
            r#"{"title":"t","product_id":1,"product_name":"x","price_cents":1,"stock":1}"#,
            r#"{"title":"t","product_id":1,"price_cents":1,"stock":0}"#,
            r#"{"title":"t","product_id":1,"price_cents":-1,"stock":1}"#,
            r#"{"title":"","product_id":1,"price_cents":1,"stock":1}"#,
            r#"{"title":"t","product_id":1,"price_cents":1,"stock":1,"start_at":"tomorrow"}"#,
            r#"{"title":"t","product_id":1,"price_cents":1,"stock":1,"start_at":"2030-01-02T00:00:00Z","end_at":"2030-01-01T00:00:00Z"}"#,
        ] {
            assert!(parse_new_activity(bad.as_bytes(), now).is_err(), "{bad}");
        }
    }

    #[test]
    fn datetimes_are_rfc3339_utc() {
        let t = DateTime::parse_from_rfc3339("2030-01-01T00:00:00.5Z")
            .unwrap()
            .naive_utc();
        assert_eq!(rfc3339(t), "2030-01-01T00:00:00.500Z");
    }
}
