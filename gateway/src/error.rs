//! Every way a request can fail, its HTTP status and machine code, in one place: the
//! gateway's own errors, and the storage layers' errors (`ClientError`, `DbError`) mapped to
//! HTTP here, not inside storage. Also the single `recover` handler that turns warp's
//! rejections into the envelope.

use crate::envelope;
use seckill_client::ClientError;
use seckill_core::Refusal;
use seckill_db::activities::CreateError;
use seckill_db::DbError;
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::reply::Response;
use warp::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The Redis module refused the reservation.
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    #[error("username is already taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("{0}")]
    OrderNotPending(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests; slow down")]
    RateLimited,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    #[error("{0}")]
    Unavailable(String),
    /// Bounded work is full (password hashing): try again shortly.
    #[error("{0}")]
    Overloaded(String),
    #[error("the request took too long")]
    Timeout,
    /// The client did not send its body within the request deadline.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The activity requires an admission token and the request has none.
    #[error("{0}")]
    AdmissionRequired(String),
    /// The admission token is not genuine, or is another user's or another activity's.
    #[error("{0}")]
    AdmissionInvalid(String),
    #[error("the admission token has expired; ask for a new one")]
    AdmissionExpired,
    /// This gateway already took a reservation with this token.
    #[error("this admission token was already used; ask for a new one")]
    AdmissionUsed,
    /// The admission token's turn (`not_before`) has not come yet.
    #[error("your turn has not come yet: retry in {retry_after_ms} ms")]
    TooEarly {
        retry_after_ms: u64,
        not_before_ms: u64,
    },
    /// The sale asks for proof of work and the request brings none.
    #[error("{0}")]
    PowRequired(String),
    /// The proof of work is not valid (forged, expired, too easy, wrong nonce).
    #[error("{0}")]
    PowInvalid(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Reject for ApiError {}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Refused { refusal, .. } => refusal_status(*refusal),
            ApiError::UsernameTaken | ApiError::OrderNotPending(_) | ApiError::Conflict(_) => {
                StatusCode::CONFLICT
            }
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::Timeout | ApiError::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::AdmissionRequired(_)
            | ApiError::AdmissionInvalid(_)
            | ApiError::AdmissionExpired
            | ApiError::PowRequired(_)
            | ApiError::PowInvalid(_) => StatusCode::FORBIDDEN,
            ApiError::AdmissionUsed => StatusCode::CONFLICT,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooEarly { .. } => TOO_EARLY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error` field of the envelope.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "INVALID_ARGUMENT",
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Refused { refusal, .. } => refusal_code(*refusal),
            ApiError::UsernameTaken => "USERNAME_TAKEN",
            ApiError::InvalidCredentials => "INVALID_CREDENTIALS",
            ApiError::OrderNotPending(_) => "ORDER_NOT_PENDING",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::RateLimited => "RATE_LIMITED",
            ApiError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            ApiError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            ApiError::Overloaded(_) => "OVERLOADED",
            ApiError::Timeout => "TIMEOUT",
            ApiError::BodyTimeout => "REQUEST_TIMEOUT",
            ApiError::AdmissionRequired(_) => "ADMISSION_REQUIRED",
            ApiError::AdmissionInvalid(_) => "ADMISSION_INVALID",
            ApiError::AdmissionExpired => "ADMISSION_EXPIRED",
            ApiError::AdmissionUsed => "ADMISSION_USED",
            ApiError::TooEarly { .. } => "TOO_EARLY",
            ApiError::PowRequired(_) => "POW_REQUIRED",
            ApiError::PowInvalid(_) => "POW_INVALID",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// Seconds for `Retry-After`: every "try again later" answer says when.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooEarly { retry_after_ms, .. } => Some(retry_after_ms.div_ceil(1000).max(1)),
            _ => match self.status() {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Some(1),
                _ => None,
            },
        }
    }

    /// The envelope reply, with `Retry-After` where it applies.
    fn response(&self) -> Response {
        let mut res = match self {
            ApiError::TooEarly {
                retry_after_ms,
                not_before_ms,
            } => envelope::refusal_with(
                self.status(),
                self.code(),
                &self.to_string(),
                serde_json::json!({
                    "retry_after_ms": retry_after_ms,
                    "not_before": crate::models::rfc3339_ms(*not_before_ms),
                }),
            ),
            _ => envelope::refusal(self.status(), self.code(), &self.to_string()),
        };
        if let Some(secs) = self.retry_after_secs() {
            res.headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.into());
        }
        res
    }

    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Self {
        ApiError::Refused {
            refusal,
            message: message.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The envelope reply. Internal errors are logged with their cause chain here and shown
    /// to the client without detail.
    pub fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        self.response()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { refusal, message } => ApiError::refused(refusal, message),
            ClientError::Argument(m) => ApiError::InvalidArgument(m),
            ClientError::Exists(m) => ApiError::Conflict(m),
            ClientError::Unavailable(_) | ClientError::Timeout(_) | ClientError::OutOfMemory(_) => {
                tracing::warn!(error = %e, "redis call failed");
                ApiError::Unavailable("the sale backend is unavailable; try again".into())
            }
            ClientError::Protocol(_) => ApiError::internal(e),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Duplicate(_) => ApiError::Conflict("already exists".into()),
            DbError::Timeout(_) | DbError::Transient(_) | DbError::Unexplained(_) => {
                tracing::warn!(error = %e, "mysql call failed");
                ApiError::Unavailable("the database is unavailable; try again".into())
            }
            DbError::Rejected(e) => {
                ApiError::internal(anyhow::Error::new(e).context("SQL statement failed"))
            }
        }
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::NoProduct(_) => ApiError::InvalidArgument(e.to_string()),
            CreateError::Db(e) => e.into(),
            CreateError::Redis(e) => e.into(),
        }
    }
}

/// 425: a request that came before its time (an admission token whose turn is later).
pub(crate) const TOO_EARLY: StatusCode = StatusCode::TOO_EARLY;

/// HTTP status of a module refusal (the contract's table).
pub(crate) fn refusal_status(r: Refusal) -> StatusCode {
    match r {
        Refusal::SoldOut | Refusal::Limit => StatusCode::CONFLICT,
        Refusal::NotStarted => StatusCode::FORBIDDEN,
        Refusal::Ended => StatusCode::GONE,
        Refusal::NoActivity => StatusCode::NOT_FOUND,
    }
}

/// Machine code of a module refusal in HTTP replies.
pub(crate) fn refusal_code(r: Refusal) -> &'static str {
    match r {
        Refusal::SoldOut => "SOLD_OUT",
        Refusal::Limit => "LIMIT_EXCEEDED",
        Refusal::NotStarted => "NOT_STARTED",
        Refusal::Ended => "ENDED",
        Refusal::NoActivity => "NO_ACTIVITY",
    }
}

/// A body whose Content-Length is over `gateway.body_limit_bytes` (warp's `PayloadTooLarge`,
/// and the hot route's own check).
pub(crate) fn body_too_large() -> Response {
    envelope::refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "request body is too large",
    )
}

/// A body without Content-Length (warp's `LengthRequired`, and the hot route's own check).
pub(crate) fn length_required() -> Response {
    envelope::refusal(
        StatusCode::LENGTH_REQUIRED,
        "LENGTH_REQUIRED",
        "a Content-Length header is required",
    )
}

/// The one `recover` handler: every rejection (ours and warp's) becomes the envelope.
pub(crate) async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    Ok(rejection_response(&err))
}

fn rejection_response(err: &Rejection) -> Response {
    use warp::reject::*;
    if let Some(e) = err.find::<ApiError>() {
        return e.response();
    }
    let (status, code, message) = if err.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such route".to_owned(),
        )
    } else if err.find::<PayloadTooLarge>().is_some() {
        return body_too_large();
    } else if err.find::<LengthRequired>().is_some() {
        return length_required();
    } else if err.find::<MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route".to_owned(),
        )
    } else if let Some(e) = err.find::<InvalidQuery>() {
        (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("invalid query string: {e}"),
        )
    } else if let Some(e) = err.find::<InvalidHeader>() {
        (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("invalid header {}", e.name()),
        )
    } else if let Some(e) = err.find::<MissingHeader>() {
        (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("missing header {}", e.name()),
        )
    } else if err.find::<UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send application/json".to_owned(),
        )
    } else {
        tracing::warn!(rejection = ?err, "unhandled rejection");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error".to_owned(),
        )
    };
    envelope::refusal(status, code, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_refusals_map_to_the_contract() {
        let table = [
            (Refusal::SoldOut, 409, "SOLD_OUT"),
            (Refusal::Limit, 409, "LIMIT_EXCEEDED"),
            (Refusal::NotStarted, 403, "NOT_STARTED"),
            (Refusal::Ended, 410, "ENDED"),
            (Refusal::NoActivity, 404, "NO_ACTIVITY"),
        ];
        for (r, status, code) in table {
            let e = ApiError::refused(r, "x");
            assert_eq!(e.status().as_u16(), status, "{r}");
            assert_eq!(e.code(), code, "{r}");
        }
    }

    #[test]
    fn other_errors_map_to_their_codes() {
        let table: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::InvalidArgument("x".into()),
                400,
                "INVALID_ARGUMENT",
            ),
            (ApiError::Unauthorized("x".into()), 401, "UNAUTHORIZED"),
            (ApiError::InvalidCredentials, 401, "INVALID_CREDENTIALS"),
            (ApiError::Forbidden("x".into()), 403, "FORBIDDEN"),
            (ApiError::UsernameTaken, 409, "USERNAME_TAKEN"),
            (
                ApiError::OrderNotPending("x".into()),
                409,
                "ORDER_NOT_PENDING",
            ),
            (ApiError::RateLimited, 429, "RATE_LIMITED"),
            (ApiError::PayloadTooLarge(1), 413, "PAYLOAD_TOO_LARGE"),
            (
                ApiError::Unavailable("x".into()),
                503,
                "SERVICE_UNAVAILABLE",
            ),
            (ApiError::Timeout, 503, "TIMEOUT"),
            (ApiError::Overloaded("x".into()), 503, "OVERLOADED"),
            (
                ApiError::AdmissionRequired("x".into()),
                403,
                "ADMISSION_REQUIRED",
            ),
            (
                ApiError::AdmissionInvalid("x".into()),
                403,
                "ADMISSION_INVALID",
            ),
            (ApiError::AdmissionExpired, 403, "ADMISSION_EXPIRED"),
            (ApiError::AdmissionUsed, 409, "ADMISSION_USED"),
            (
                ApiError::TooEarly {
                    retry_after_ms: 1,
                    not_before_ms: 1,
                },
                425,
                "TOO_EARLY",
            ),
            (ApiError::PowRequired("x".into()), 403, "POW_REQUIRED"),
            (ApiError::PowInvalid("x".into()), 403, "POW_INVALID"),
            (ApiError::internal(anyhow::anyhow!("db")), 500, "INTERNAL"),
        ];
        for (e, status, code) in table {
            assert_eq!((e.status().as_u16(), e.code()), (status, code), "{e:?}");
        }
    }

    #[test]
    fn try_again_later_answers_say_when() {
        let after = |e: ApiError| {
            e.into_response()
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok().map(str::to_owned))
        };
        assert_eq!(after(ApiError::RateLimited).as_deref(), Some("1"));
        assert_eq!(
            after(ApiError::Overloaded("x".into())).as_deref(),
            Some("1")
        );
        assert_eq!(after(ApiError::Timeout).as_deref(), Some("1"));
        let early = ApiError::TooEarly {
            retry_after_ms: 1_200,
            not_before_ms: 5,
        };
        assert_eq!(after(early).as_deref(), Some("2"));
        assert_eq!(after(ApiError::AdmissionUsed), None);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let e = ApiError::internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(e.to_string(), "internal error");
    }
}
