//! Request bodies, parsed into domain values ("parse, don't validate"), and response bodies.
//!
//! Bodies are read as a JSON object first, so an array, a string or malformed JSON is refused
//! with a message naming the problem; each field is then checked for type and range.

use crate::error::ApiError;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use seckill_core::account::{check_password, AccountError, Username, USERNAME_CHARS};
use seckill_core::limits::{MAX_LIMIT, MAX_PRICE_CENTS, MAX_STOCK};
use seckill_core::ActivityId;
pub(crate) use seckill_db::activities::{NewActivity, ProductRef};
use serde::Serialize;
use serde_json::{Map, Value};

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
fn bounded(v: &Value, name: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    let n = v.as_u64().filter(|n| (min..=max).contains(n));
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
    let raw = match v {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) => s.clone(),
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

/// `POST /api/v1/seckill`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReserveRequest {
    pub activity: ActivityId,
    pub product: String,
    pub quantity: u64,
}

impl ReserveRequest {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let obj = json_object(body)?;
        let activity = ActivityId::parse(id_value(required(&obj, "activity_id")?, "activity_id")?)
            .map_err(|e| invalid(e.to_string()))?;
        let product = id_value(required(&obj, "product_id")?, "product_id")?;
        let quantity = bounded(required(&obj, "quantity")?, "quantity", 1, MAX_LIMIT)?;
        Ok(Self {
            activity,
            product,
            quantity,
        })
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
            username: text(required(&obj, "username")?, "username", 1, 64)?.to_owned(),
            password: text(required(&obj, "password")?, "password", 1, 128)?.to_owned(),
        })
    }
}

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

/// Formats a MySQL `DATETIME` (stored in UTC) as RFC 3339.
pub(crate) fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Serialize)]
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
    /// pending / open / sold-out / ended, from Redis; "unknown" when Redis did not answer.
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
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
        let r =
            reserve(r#"{"activity_id": "42", "product_id": 7, "quantity": 1, "x": 1}"#).unwrap();
        assert_eq!(r.product, "7");
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
