//! One async function per endpoint. Each returns a reply (errors become the envelope through
//! [`crate::error::reply`]) and runs under the request deadline.

use crate::auth::{self, Caller, Role};
use crate::db::{ActivityRow, OrderRow};
use crate::envelope;
use crate::error::{reply, ApiError};
use crate::models::{
    rfc3339, ActivityView, Credentials, NewActivity, OrderView, ProductRef, ReserveRequest,
};
use crate::release::{self, EndState};
use crate::state::State;
use crate::store::{CreateArgs, StoreError};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use seckill_core::{ActivityId, Refusal};
use serde_json::json;
use std::convert::Infallible;
use std::future::Future;
use std::time::Instant;
use warp::http::StatusCode;
use warp::reply::Response;

/// Most rows a list endpoint returns.
const LIST_LIMIT: u32 = 100;

async fn deadline<T>(
    s: &State,
    fut: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(s.settings.request_timeout(), fut)
        .await
        .unwrap_or(Err(ApiError::Timeout))
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub async fn health(s: State) -> Result<Response, Infallible> {
    let ts = now_rfc3339();
    Ok(match s.store.ping().await {
        Ok(()) => envelope::ok(
            StatusCode::OK,
            json!({"status": "healthy", "timestamp": ts}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: redis unreachable");
            envelope::refusal_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "redis is unreachable",
                json!({"status": "unhealthy", "timestamp": ts, "redis": "down"}),
            )
        }
    })
}

pub async fn metrics(s: State) -> Result<Response, Infallible> {
    let mut res = Response::new(s.metrics.render().into());
    res.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(res)
}

pub async fn openapi() -> Result<Response, Infallible> {
    let mut res = Response::new(crate::OPENAPI_JSON.into());
    res.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

// ---- the hot path -------------------------------------------------------------------------

pub async fn reserve(caller: Caller, body: Bytes, s: State) -> Result<Response, Infallible> {
    let outcome = deadline(&s, reserve_inner(&caller, &body, &s)).await;
    let label = match &outcome {
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
    reply(outcome)
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
        Ok(r) => Ok(envelope::ok(
            StatusCode::OK,
            json!({
                "reservation_id": r.id,
                "status": "queued",
                "activity_id": activity,
                "quantity": req.quantity,
            }),
        )),
        Err(StoreError::Refused {
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

// ---- accounts -----------------------------------------------------------------------------

pub async fn register(body: Bytes, s: State) -> Result<Response, Infallible> {
    reply(deadline(&s, register_inner(&body, &s)).await)
}

async fn register_inner(body: &[u8], s: &State) -> Result<Response, ApiError> {
    let creds = Credentials::parse_new(body)?;
    let password = creds.password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let id = match s
        .db
        .insert_user(&creds.username, &hash, Role::User.as_str())
        .await
    {
        Ok(id) => id,
        Err(crate::db::DbError::Duplicate) => return Err(ApiError::UsernameTaken),
        Err(e) => return Err(e.into()),
    };
    Ok(envelope::ok(
        StatusCode::CREATED,
        json!({"user_id": id.to_string(), "username": creds.username}),
    ))
}

pub async fn login(body: Bytes, s: State) -> Result<Response, Infallible> {
    reply(deadline(&s, login_inner(&body, &s)).await)
}

async fn login_inner(body: &[u8], s: &State) -> Result<Response, ApiError> {
    let creds = Credentials::parse_login(body)?;
    let user = s.db.user_by_name(&creds.username).await?;
    let password = creds.password;
    let checked = tokio::task::spawn_blocking(move || match user {
        Some(u) if auth::verify_password(&password, &u.password_hash) => Some(u),
        Some(_) => None,
        None => {
            auth::burn_password_check(&password);
            None
        }
    })
    .await
    .map_err(ApiError::internal)?;
    let user = checked.ok_or(ApiError::InvalidCredentials)?;
    let role = Role::parse(&user.role).unwrap_or(Role::User);
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let (token, exp) = s
        .jwt
        .issue(&user.id.to_string(), role, now)
        .map_err(ApiError::internal)?;
    let expires_at = chrono::DateTime::from_timestamp(i64::try_from(exp).unwrap_or(0), 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(envelope::ok(
        StatusCode::OK,
        json!({
            "token": token,
            "expires_at": expires_at,
            "user_id": user.id.to_string(),
            "role": role.as_str(),
        }),
    ))
}

// ---- activities ---------------------------------------------------------------------------

async fn view(s: &State, a: ActivityRow) -> ActivityView {
    let live = match ActivityId::parse(a.id.to_string()) {
        Ok(id) => s.store.status(&id).await,
        Err(_) => Ok(None),
    };
    let (remaining, state) = match live {
        Ok(Some(st)) => (Some(st.remaining), st.state),
        Ok(None) => (None, "not-preheated".to_owned()),
        Err(e) => {
            tracing::warn!(error = %e, activity = a.id, "SECKILL.STATUS failed");
            (None, "unknown".to_owned())
        }
    };
    ActivityView {
        id: a.id,
        title: a.title,
        product_id: a.product_id,
        product_name: a.product_name,
        price_cents: a.price_cents,
        stock: a.stock,
        per_user_limit: u64::from(a.per_user_limit),
        start_at: rfc3339(a.start_at),
        end_at: a.end_at.map(rfc3339),
        payment_window_secs: u64::from(a.payment_window_secs),
        remaining,
        state,
    }
}

pub async fn list_activities(s: State) -> Result<Response, Infallible> {
    reply(
        deadline(&s, async {
            let rows = s.db.activities(LIST_LIMIT).await?;
            // The STATUS calls share the multiplexed connection, so they go out pipelined.
            let views = futures::future::join_all(rows.into_iter().map(|a| view(&s, a))).await;
            Ok(envelope::ok(StatusCode::OK, views))
        })
        .await,
    )
}

pub async fn get_activity(id: String, s: State) -> Result<Response, Infallible> {
    reply(
        deadline(&s, async {
            let not_found = || ApiError::NotFound(format!("no activity '{id}'"));
            let n: u64 = id.parse().map_err(|_| not_found())?;
            let row = s.db.activity(n).await?.ok_or_else(not_found)?;
            Ok(envelope::ok(StatusCode::OK, view(&s, row).await))
        })
        .await,
    )
}

pub async fn create_activity(
    _admin: Caller,
    body: Bytes,
    s: State,
) -> Result<Response, Infallible> {
    reply(deadline(&s, create_activity_inner(&body, &s)).await)
}

async fn create_activity_inner(body: &[u8], s: &State) -> Result<Response, ApiError> {
    let new = NewActivity::parse(body, Utc::now())?;
    let db = &s.db;
    let mut tx = db.timed(db.pool.begin()).await?;
    let product_id = match &new.product {
        ProductRef::Existing(id) => {
            let found: Option<(u64,)> = db
                .timed(
                    sqlx::query_as("SELECT id FROM products WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut *tx),
                )
                .await?;
            found
                .map(|(id,)| id)
                .ok_or_else(|| ApiError::InvalidArgument(format!("product {id} does not exist")))?
        }
        ProductRef::New(name) => db
            .timed(
                sqlx::query("INSERT INTO products (name, price_cents) VALUES (?, ?)")
                    .bind(name)
                    .bind(new.price_cents)
                    .execute(&mut *tx),
            )
            .await?
            .last_insert_id(),
    };
    let activity_id = db
        .timed(
            sqlx::query(
                "INSERT INTO activities (product_id, title, stock, per_user_limit, price_cents, \
                 start_at, end_at, payment_window_secs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(product_id)
            .bind(&new.title)
            .bind(new.stock)
            .bind(new.per_user_limit)
            .bind(new.price_cents)
            .bind(new.start_at.naive_utc())
            .bind(new.end_at.map(|t| t.naive_utc()))
            .bind(new.payment_window_secs)
            .execute(&mut *tx),
        )
        .await?
        .last_insert_id();
    let id = ActivityId::parse(activity_id.to_string()).map_err(ApiError::internal)?;
    // Preheat before commit: if Redis refuses, the rows roll back and nothing half-exists.
    s.store
        .create(&CreateArgs {
            activity: id,
            stock: new.stock,
            limit: new.per_user_limit,
            start_ms: u64::try_from(new.start_at.timestamp_millis()).unwrap_or(0),
            end_ms: new
                .end_at
                .map(|t| u64::try_from(t.timestamp_millis()).unwrap_or(0)),
            product: product_id.to_string(),
            price_cents: new.price_cents,
        })
        .await?;
    db.timed(tx.commit()).await?;
    tracing::info!(
        activity = activity_id,
        stock = new.stock,
        "activity created and preheated"
    );
    let row = db
        .activity(activity_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("activity {activity_id} vanished")))?;
    Ok(envelope::ok(StatusCode::CREATED, view(s, row).await))
}

// ---- result polling and orders ------------------------------------------------------------

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

/// `activity_id` from a raw query string.
pub fn activity_from_query(raw: &str) -> Result<ActivityId, ApiError> {
    let value = raw
        .split('&')
        .find_map(|pair| pair.strip_prefix("activity_id="))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::InvalidArgument("query parameter 'activity_id' is required".into())
        })?;
    ActivityId::parse(value).map_err(|e| ApiError::InvalidArgument(format!("'activity_id': {e}")))
}

pub async fn result(caller: Caller, query: String, s: State) -> Result<Response, Infallible> {
    reply(deadline(&s, result_inner(&caller, &query, &s)).await)
}

async fn result_inner(caller: &Caller, query: &str, s: &State) -> Result<Response, ApiError> {
    let activity = activity_from_query(query)?;
    let user = caller.user.as_str();
    let held = s.store.held(&activity, &caller.user).await?;
    // Orders exist only for numeric (MySQL) activity ids.
    let latest = match activity.as_str().parse::<u64>() {
        Ok(n) => s.db.latest_order(n, user).await?,
        Err(_) => None,
    };
    let live = |o: &OrderRow| o.status == "pending" || o.status == "paid";
    let data = match (held > 0, latest) {
        (true, Some(o)) if live(&o) => json!({
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
}

pub async fn list_orders(caller: Caller, s: State) -> Result<Response, Infallible> {
    reply(
        deadline(&s, async {
            let rows = s.db.orders_of(caller.user.as_str(), LIST_LIMIT).await?;
            let views: Vec<OrderView> = rows.into_iter().map(order_view).collect();
            Ok(envelope::ok(StatusCode::OK, views))
        })
        .await,
    )
}

/// The caller's order, or 404 (someone else's order is not revealed).
async fn own_order(s: &State, caller: &Caller, id: u64) -> Result<OrderRow, ApiError> {
    s.db.order(id)
        .await?
        .filter(|o| o.user_id == caller.user.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}

fn order_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no order '{raw}'")))
}

pub async fn pay(id: String, caller: Caller, s: State) -> Result<Response, Infallible> {
    reply(
        deadline(&s, async {
            let id = order_id(&id)?;
            let now = Utc::now().naive_utc();
            if s.db.pay(id, caller.user.as_str(), now).await? {
                let o = own_order(&s, &caller, id).await?;
                return Ok(envelope::ok(StatusCode::OK, order_view(o)));
            }
            let o = own_order(&s, &caller, id).await?;
            Err(if o.status == "pending" {
                ApiError::OrderNotPending(format!(
                    "order {id} can no longer be paid: its payment window closed at {}",
                    rfc3339(o.expires_at)
                ))
            } else {
                ApiError::OrderNotPending(format!("order {id} is {}", o.status))
            })
        })
        .await,
    )
}

pub async fn cancel(id: String, caller: Caller, s: State) -> Result<Response, Infallible> {
    reply(
        deadline(&s, async {
            let id = order_id(&id)?;
            let now = Utc::now().naive_utc();
            let user = caller.user.as_str();
            let won =
                s.db.timed(release::end_order(
                    &s.db.pool,
                    id,
                    Some(user),
                    EndState::Cancelled,
                    now,
                ))
                .await?;
            let o = own_order(&s, &caller, id).await?;
            if !won {
                return Err(ApiError::OrderNotPending(format!(
                    "order {id} is {}",
                    o.status
                )));
            }
            let mut conn = s.store.connection();
            let released = tokio::time::timeout(
                s.store.timeout() + s.settings.mysql_timeout(),
                release::release_stock(&s.db.pool, &mut conn, id, o.activity_id, &o.reservation_id),
            )
            .await;
            match released {
                Ok(Ok(qty)) => {
                    tracing::info!(order = id, qty, "order cancelled, stock returned");
                    s.sold_out.clear(&o.activity_id.to_string());
                }
                // The row is cancelled with released_at NULL: the sweeper finishes the release.
                Ok(Err(e)) => {
                    tracing::warn!(order = id, error = %e, "release deferred to the sweeper")
                }
                Err(_) => tracing::warn!(order = id, "release timed out; deferred to the sweeper"),
            }
            let o = own_order(&s, &caller, id).await?;
            Ok(envelope::ok(StatusCode::OK, order_view(o)))
        })
        .await,
    )
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
