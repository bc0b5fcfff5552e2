//! `POST /api/v1/seckill/challenge` and `POST /api/v1/seckill/admission`: what a buyer does
//! before `POST /api/v1/seckill` when the activity requires admission (the model is in
//! `seckill_core::admission` and `crate::admission`).
//!
//! Both read the sale's window and stock from the status cache (one `SECKILL.STATUS` per
//! activity per `gateway.cache_refresh_ms`, whatever the crowd) and sign what they issue;
//! nothing is stored.

use super::now_ms;
use crate::auth::Caller;
use crate::envelope;
use crate::error::ApiError;
use crate::models::{
    rfc3339_ms, AdmissionRequest, AdmissionTicketView, ChallengeRequest, ChallengeView,
};
use crate::state::State;
use bytes::Bytes;
use seckill_client::Status;
use seckill_core::admission::{self, Challenge, Ticket};
use seckill_core::{ActivityId, Refusal};
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;

/// The activity's live status (`None`: not in Redis), at most `cache_refresh_ms` old.
pub(crate) async fn live_status(
    s: &State,
    activity: &ActivityId,
) -> Result<Arc<Option<Status>>, ApiError> {
    let ttl = s.caches.ttl;
    let slot = s.caches.status.slot(&activity.as_str().to_owned(), ttl);
    slot.get(ttl, || async {
        s.store.status(activity).await.map_err(ApiError::from)
    })
    .await
}

/// The activity's status if it exists, has not ended and is not sold out; and, when
/// `must_be_open`, has opened.
fn on_sale<'a>(
    st: Option<&'a Status>,
    activity: &ActivityId,
    now: u64,
    must_be_open: bool,
) -> Result<&'a Status, ApiError> {
    let st = st.ok_or_else(|| {
        ApiError::refused(Refusal::NoActivity, format!("no activity '{activity}'"))
    })?;
    if st.end_ms > 0 && now >= st.end_ms {
        return Err(ApiError::refused(
            Refusal::Ended,
            format!("activity '{activity}' has ended"),
        ));
    }
    if must_be_open && now < st.start_ms {
        return Err(ApiError::refused(
            Refusal::NotStarted,
            format!(
                "activity '{activity}' opens at {}; admission is issued from then on",
                rfc3339_ms(st.start_ms)
            ),
        ));
    }
    if st.remaining == 0 {
        return Err(ApiError::refused(
            Refusal::SoldOut,
            format!("activity '{activity}' is sold out"),
        ));
    }
    Ok(st)
}

fn count(s: &State, route: &str, outcome: &Result<Response, ApiError>) {
    let label = match outcome {
        Ok(_) => "issued",
        Err(e) => e.code(),
    };
    s.metrics
        .admissions
        .with_label_values(&[route, label])
        .inc();
}

pub(crate) async fn challenge(
    caller: Caller,
    body: Bytes,
    s: State,
) -> Result<Response, Infallible> {
    let outcome = super::deadline(&s, async {
        let req = ChallengeRequest::parse(&body)?;
        let now = now_ms();
        let st = live_status(&s, &req.activity).await?;
        // Before the opening too: the work can be done while the countdown runs.
        on_sale(st.as_ref().as_ref(), &req.activity, now, false)?;
        let difficulty = s.admission.rules(req.activity.as_str()).difficulty;
        let c = Challenge {
            user: caller.user.clone(),
            activity: req.activity.clone(),
            difficulty,
            expires_ms: now.saturating_add(s.admission.challenge_ttl_ms),
            salt: rand::random(),
        };
        Ok(envelope::ok(
            StatusCode::OK,
            ChallengeView {
                challenge: s.admission.keys.issue_challenge(&c),
                difficulty,
                algorithm: "sha256-leading-zero-bits",
                expires_at: rfc3339_ms(c.expires_ms),
            },
        ))
    })
    .await;
    count(&s, "challenge", &outcome);
    Ok(outcome.unwrap_or_else(ApiError::into_response))
}

pub(crate) async fn admit(caller: Caller, body: Bytes, s: State) -> Result<Response, Infallible> {
    let outcome = super::deadline(&s, async {
        let req = AdmissionRequest::parse(&body)?;
        let now = now_ms();
        let rules = s.admission.rules(req.activity.as_str());
        let st = live_status(&s, &req.activity).await?;
        let st = on_sale(st.as_ref().as_ref(), &req.activity, now, true)?;
        if rules.difficulty > 0 {
            let (Some(challenge), Some(nonce)) = (&req.challenge, &req.nonce) else {
                return Err(ApiError::PowRequired(format!(
                    "this sale asks for proof of work ({} bits): solve a challenge from \
                     POST /api/v1/seckill/challenge and send it with its nonce",
                    rules.difficulty
                )));
            };
            s.admission
                .keys
                .verify_work(
                    challenge,
                    nonce,
                    &caller.user,
                    &req.activity,
                    rules.difficulty,
                    now,
                )
                .map_err(|e| ApiError::PowInvalid(e.to_string()))?;
        }
        let not_before = admission::not_before(st.start_ms, rules.window_ms, now, rand::random());
        let ticket = Ticket {
            user: caller.user.clone(),
            activity: req.activity.clone(),
            not_before_ms: not_before,
            expires_ms: not_before.max(now).saturating_add(s.admission.token_ttl_ms),
            nonce: rand::random(),
        };
        Ok(envelope::ok(
            StatusCode::OK,
            AdmissionTicketView {
                token: s.admission.keys.issue_ticket(&ticket),
                activity_id: req.activity.as_str().to_owned(),
                not_before: rfc3339_ms(not_before),
                wait_ms: not_before.saturating_sub(now),
                expires_at: rfc3339_ms(ticket.expires_ms),
            },
        ))
    })
    .await;
    count(&s, "admission", &outcome);
    Ok(outcome.unwrap_or_else(ApiError::into_response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(start: u64, end: u64, remaining: u64) -> Status {
        Status {
            start_ms: start,
            end_ms: end,
            remaining,
            ..Status::default()
        }
    }

    #[test]
    fn admission_only_once_open_challenges_before_too() {
        let a = ActivityId::parse("7").unwrap();
        let code = |r: Result<&Status, ApiError>| r.err().map(|e| e.code());
        assert_eq!(code(on_sale(None, &a, 5, true)), Some("NO_ACTIVITY"));
        assert_eq!(
            code(on_sale(Some(&status(10, 0, 1)), &a, 5, true)),
            Some("NOT_STARTED")
        );
        assert_eq!(code(on_sale(Some(&status(10, 0, 1)), &a, 5, false)), None);
        assert_eq!(
            code(on_sale(Some(&status(0, 10, 1)), &a, 10, true)),
            Some("ENDED")
        );
        assert_eq!(
            code(on_sale(Some(&status(0, 0, 0)), &a, 10, true)),
            Some("SOLD_OUT")
        );
        assert_eq!(code(on_sale(Some(&status(0, 0, 1)), &a, 10, true)), None);
    }
}
