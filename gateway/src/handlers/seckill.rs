//! `POST /api/v1/seckill` (the hot path: no MySQL, one coalesced `SECKILL.RESERVE`) and
//! `GET /api/v1/seckill/result`.
//!
//! With `redis.min_replicas` > 0 a reservation is answered 200 only once that many replicas
//! hold it; one they did not confirm in time is answered 202 with `"status":"pending"` and its
//! reservation id (held unless a failover loses it), and `result` tells the outcome later:
//! held by the buyer → `queued`/`success`, gone → 404.

use super::{respond, sql};
use crate::auth::Caller;
use crate::envelope;
use crate::error::ApiError;
use crate::models::ReserveRequest;
use crate::state::State;
use bytes::Bytes;
use seckill_client::{ClientError, Durability};
use seckill_core::{ActivityId, Refusal};
use seckill_db::orders;
use serde_json::json;
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
        Err(_) => "error",
    };
    s.metrics.reservations.with_label_values(&[label]).inc();
    Ok(outcome.unwrap_or_else(ApiError::into_response))
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
    match s
        .store
        .reserve(&req.activity, &caller.user, req.quantity, &req.product)
        .await
    {
        Ok(r) => {
            // Not confirmed on `redis.min_replicas` replicas in time: the buyer holds it
            // unless a failover loses it; GET /api/v1/seckill/result tells the outcome.
            let (status, state) = match r.durability {
                Durability::Pending => (StatusCode::ACCEPTED, "pending"),
                Durability::Unchecked | Durability::Replicated(_) => (StatusCode::OK, "queued"),
            };
            Ok(envelope::ok(
                status,
                json!({
                    "reservation_id": r.id,
                    "status": state,
                    "activity_id": activity,
                    "quantity": req.quantity,
                }),
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
    let value = raw
        .split('&')
        .find_map(|pair| pair.strip_prefix("activity_id="))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::InvalidArgument("query parameter 'activity_id' is required".into())
        })?;
    ActivityId::parse(value).map_err(|e| ApiError::InvalidArgument(format!("'activity_id': {e}")))
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
        let data = match (held > 0, latest) {
            (true, Some(o)) if o.is_live() => json!({
                "status": "success", "order_id": o.id, "order_status": o.status,
                "reservation_id": o.reservation_id,
            }),
            (true, _) => json!({"status": "queued"}),
            (false, Some(o)) => json!({
                "status": "failed", "order_id": o.id, "order_status": o.status,
                "reservation_id": o.reservation_id,
            }),
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
        for bad in ["", "activity_id=", "x=1", "activity_id=a%7Bb"] {
            assert!(
                matches!(activity_from_query(bad), Err(ApiError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
