//! `GET /api/v1/orders`, `POST /api/v1/orders/{id}/pay`, `POST /api/v1/orders/{id}/cancel`:
//! the state machine is `seckill_db::orders`'s (the sweeper uses the same functions).

use super::{respond, sql, LIST_LIMIT};
use crate::auth::Caller;
use crate::envelope;
use crate::error::ApiError;
use crate::models::{rfc3339, OrderView};
use crate::state::State;
use chrono::Utc;
use seckill_db::orders::{self, OrderRow, Unreleased};
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reply::Response;

fn order_view(o: OrderRow) -> OrderView {
    OrderView {
        id: o.id,
        reservation_id: o.reservation_id,
        activity_id: o.activity_id,
        product_id: o.product_id,
        quantity: u64::from(o.quantity),
        amount_cents: o.amount_cents,
        status: o.status,
        reserved_at: rfc3339(o.reserved_at),
        expires_at: rfc3339(o.expires_at),
        paid_at: o.paid_at.map(rfc3339),
        released_at: o.released_at.map(rfc3339),
    }
}

pub(crate) async fn list(caller: Caller, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let rows = sql(&s, orders::of_user(&s.db, caller.user.as_str(), LIST_LIMIT)).await?;
        let views: Vec<OrderView> = rows.into_iter().map(order_view).collect();
        Ok(envelope::ok(StatusCode::OK, views))
    })
    .await
}

/// The caller's order, or 404 (someone else's order is not revealed).
async fn own_order(s: &State, caller: &Caller, id: u64) -> Result<OrderRow, ApiError> {
    sql(s, orders::by_id(&s.db, id))
        .await?
        .filter(|o| o.user_id == caller.user.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}

fn order_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no order '{raw}'")))
}

pub(crate) async fn pay(id: String, caller: Caller, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let id = order_id(&id)?;
        let won = sql(&s, orders::pay(&s.db, id, Some(caller.user.as_str()))).await?;
        let o = own_order(&s, &caller, id).await?;
        if won {
            return Ok(envelope::ok(StatusCode::OK, order_view(o)));
        }
        Err(if o.status == "pending" {
            ApiError::OrderNotPending(format!(
                "order {id} can no longer be paid: its payment window closed at {}",
                rfc3339(o.expires_at)
            ))
        } else {
            ApiError::OrderNotPending(format!("order {id} is {}", o.status))
        })
    })
    .await
}

pub(crate) async fn cancel(id: String, caller: Caller, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let id = order_id(&id)?;
        let mut o = own_order(&s, &caller, id).await?;
        let won = o.status == "pending"
            && sql(&s, orders::cancel(&s.db, id, caller.user.as_str())).await?;
        if !won {
            // Not pending, or a pay/expiry won the race since the read: say what it is now.
            let now = own_order(&s, &caller, id).await?;
            return Err(ApiError::OrderNotPending(format!(
                "order {id} is {}",
                now.status
            )));
        }
        o.status = "cancelled".into();
        let unreleased = Unreleased {
            id,
            activity_id: o.activity_id,
            reservation_id: o.reservation_id.clone(),
        };
        let released = tokio::time::timeout(
            s.store_timeout() + s.settings.mysql_timeout(),
            orders::release(&s.db, &unreleased, |activity, rid| {
                let store = &s.store;
                async move { store.release(&activity, &rid).await }
            }),
        )
        .await;
        match released {
            Ok(Ok(qty)) => {
                tracing::info!(order = id, qty, "order cancelled, stock returned");
                s.sold_out.clear(&o.activity_id.to_string());
                s.caches.invalidate();
                o.released_at = Some(Utc::now().naive_utc());
            }
            // The row is cancelled with released_at NULL: the sweeper finishes the release.
            Ok(Err(e)) => {
                tracing::warn!(order = id, error = %e, "release deferred to the sweeper")
            }
            Err(_) => tracing::warn!(order = id, "release timed out; deferred to the sweeper"),
        }
        Ok(envelope::ok(StatusCode::OK, order_view(o)))
    })
    .await
}
