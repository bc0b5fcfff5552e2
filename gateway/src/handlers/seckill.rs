//! `POST /api/v1/seckill` (the hot path: no MySQL, one coalesced `SECKILL.RESERVE`) and
//! `GET /api/v1/seckill/result`.
//!
//! When the activity requires admission, the token is checked here before Redis is asked:
//! one HMAC (`seckill_core::admission`), its user, activity, expiry and turn, then this
//! gateway's seen-set (`crate::admission`). No Redis or database round trip is added.
//!
//! With `redis.min_replicas` > 0 a reservation is answered 200 only once that many replicas
//! hold it; one they did not confirm in time is answered 202 with `"status":"pending"` and its
//! reservation id (held unless a failover loses it), and `result` tells the outcome later:
//! held by the buyer → `queued`/`success`, gone → 404.

use super::{now_ms, respond, sql};
use crate::admission::SeenSet;
use crate::auth::Caller;
use crate::envelope;
use crate::error::ApiError;
use crate::models::{ReservationView, ReserveRequest, ResultView};
use crate::state::State;
use bytes::Bytes;
use seckill_client::{ClientError, Durability};
use seckill_core::admission::AdmissionError;
use seckill_core::{ActivityId, Refusal};
use seckill_db::orders;
use std::convert::Infallible;
use std::time::Instant;
use warp::http::StatusCode;
use warp::reply::Response;

pub(crate) async fn reserve(caller: Caller, body: Bytes, s: State) -> Result<Response, Infallible> {
    let outcome = super::deadline(&s, reserve_inner(&caller, &body, &s)).await;
    let label = match &outcome {
        // 202: held, not yet confirmed on `redis.min_replicas` replicas.
        Ok(r) if r.status() == StatusCode::ACCEPTED => "pending",
        Ok(_) => "reserved",
        Err(ApiError::Refused { refusal, .. }) => match refusal {
            Refusal::SoldOut => "sold_out",
            Refusal::Limit => "limit",
            Refusal::NotStarted => "not_started",
            Refusal::Ended => "ended",
            Refusal::NoActivity => "no_activity",
        },
        Err(ApiError::InvalidArgument(_)) => "invalid",
        Err(
            ApiError::AdmissionRequired(_)
            | ApiError::AdmissionInvalid(_)
            | ApiError::AdmissionExpired
            | ApiError::AdmissionUsed,
        ) => "no_admission",
        Err(ApiError::TooEarly { .. }) => "too_early",
        Err(ApiError::RateLimited) => "rate_limited",
        Err(_) => "error",
    };
    s.metrics.reservations.with_label_values(&[label]).inc();
    Ok(outcome.unwrap_or_else(ApiError::into_response))
}

/// A ticket marked in the seen-set for the duration of its reservation: unmarked on drop
/// unless the reservation succeeded (a failed or abandoned attempt may use it again).
struct Marked<'a> {
    seen: &'a SeenSet,
    nonce: u128,
    keep: bool,
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.seen.forget(self.nonce);
        }
    }
}

fn refused_admission(e: AdmissionError) -> ApiError {
    match e {
        AdmissionError::Expired(_) => ApiError::AdmissionExpired,
        other => ApiError::AdmissionInvalid(format!("{other}; ask for a new one")),
    }
}

/// The admission check of a request for `req.activity` by `caller`, when the activity
/// requires it: the ticket, marked as in use (`None` when no admission is required).
fn admitted<'a>(
    s: &'a State,
    caller: &Caller,
    req: &ReserveRequest,
) -> Result<Option<Marked<'a>>, ApiError> {
    if !s.admission.rules(req.activity.as_str()).required {
        return Ok(None);
    }
    let token = req.admission.as_deref().ok_or_else(|| {
        ApiError::AdmissionRequired(
            "this sale requires admission: get a token from POST /api/v1/seckill/admission \
             and send it as 'admission'"
                .into(),
        )
    })?;
    let now = now_ms();
    let t = s
        .admission
        .keys
        .verify_ticket(token, &caller.user, &req.activity, now)
        .map_err(refused_admission)?;
    if now < t.not_before_ms {
        return Err(ApiError::TooEarly {
            retry_after_ms: t.not_before_ms - now,
            not_before_ms: t.not_before_ms,
        });
    }
    if !s.admission.seen.mark(t.nonce, t.expires_ms, now) {
        return Err(ApiError::AdmissionUsed);
    }
    Ok(Some(Marked {
        seen: &s.admission.seen,
        nonce: t.nonce,
        keep: false,
    }))
}

async fn reserve_inner(caller: &Caller, body: &[u8], s: &State) -> Result<Response, ApiError> {
    let req = ReserveRequest::parse(body)?;
    let activity = req.activity.as_str();
    if s.sold_out.is_sold_out(activity, Instant::now()) {
        return Err(ApiError::refused(
            Refusal::SoldOut,
            format!("activity '{activity}' is sold out"),
        ));
    }
    let mut ticket = admitted(s, caller, &req)?;
    match s
        .store
        .reserve(&req.activity, &caller.user, req.quantity, &req.product)
        .await
    {
        Ok(r) => {
            if let Some(t) = ticket.as_mut() {
                t.keep = true;
            }
            // Not confirmed on `redis.min_replicas` replicas in time: the buyer holds it
            // unless a failover loses it; GET /api/v1/seckill/result tells the outcome.
            let (status, state) = match r.durability {
                Durability::Pending => (StatusCode::ACCEPTED, "pending"),
                Durability::Unchecked | Durability::Replicated(_) => (StatusCode::OK, "queued"),
            };
            Ok(envelope::ok(
                status,
                ReservationView {
                    reservation_id: r.id,
                    status: state,
                    activity_id: activity.to_owned(),
                    quantity: req.quantity,
                },
            ))
        }
        Err(ClientError::Refused {
            refusal: Refusal::SoldOut,
            ..
        }) => {
            s.sold_out.mark(activity, Instant::now());
            Err(ApiError::refused(
                Refusal::SoldOut,
                format!("activity '{activity}' is sold out"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `activity_id` from a raw query string.
pub(crate) fn activity_from_query(raw: &str) -> Result<ActivityId, ApiError> {
    // Percent-decoded, as any client encodes it (`R%3A` is `R:`).
    let value = form_urlencoded::parse(raw.as_bytes())
        .find_map(|(k, v)| (k == "activity_id").then_some(v))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::InvalidArgument("query parameter 'activity_id' is required".into())
        })?;
    ActivityId::parse(value.as_bytes())
        .map_err(|e| ApiError::InvalidArgument(format!("'activity_id': {e}")))
}

pub(crate) async fn result(
    caller: Caller,
    query: String,
    s: State,
) -> Result<Response, Infallible> {
    respond(&s, async {
        let activity = activity_from_query(&query)?;
        let user = caller.user.as_str();
        let held = s.store.held(&activity, &caller.user).await?;
        // Orders exist only for numeric (MySQL) activity ids.
        let latest = match activity.as_str().parse::<u64>() {
            Ok(n) => sql(&s, orders::latest_of_user(&s.db, n, user)).await?,
            Err(_) => None,
        };
        let order = |status, o: orders::OrderRow| ResultView {
            status,
            order_id: Some(o.id),
            order_status: Some(o.status),
            reservation_id: Some(o.reservation_id),
        };
        let data = match (held > 0, latest) {
            (true, Some(o)) if o.is_live() => order("success", o),
            (true, _) => ResultView {
                status: "queued",
                order_id: None,
                order_status: None,
                reservation_id: None,
            },
            (false, Some(o)) => order("failed", o),
            (false, None) => {
                return Err(ApiError::NotFound(format!(
                    "you have no reservation in activity '{activity}'"
                )))
            }
        };
        Ok(envelope::ok(StatusCode::OK, data))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_query_parsing() {
        assert_eq!(
            activity_from_query("activity_id=42")
                .map(|a| a.to_string())
                .ok(),
            Some("42".into())
        );
        assert_eq!(
            activity_from_query("x=1&activity_id=7")
                .map(|a| a.to_string())
                .ok(),
            Some("7".into())
        );
        assert_eq!(
            activity_from_query("activity_id=R%3A")
                .map(|a| a.to_string())
                .ok(),
            Some("R:".into())
        );
        for bad in [
            "",
            "activity_id=",
            "x=1",
            "activity_id=a%7Bb",
            "activity_id=a%20b",
        ] {
            assert!(
                matches!(activity_from_query(bad), Err(ApiError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
