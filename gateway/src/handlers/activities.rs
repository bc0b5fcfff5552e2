//! `GET /api/v1/activities`, `GET /api/v1/activities/{id}`, `POST /api/v1/admin/activities`.
//!
//! The public reads go through `crate::cache`: the list, one activity and each activity's
//! live status are loaded at most once per `gateway.cache_refresh_ms`, whatever the crowd.

use super::admission::live_status;
use super::{respond, sql, LIST_LIMIT};
use crate::auth::Caller;
use crate::envelope;
use crate::error::ApiError;
use crate::models::{parse_new_activity, rfc3339, ActivityView, AdmissionView};
use crate::state::State;
use bytes::Bytes;
use chrono::Utc;
use seckill_core::ActivityId;
use seckill_db::activities::{self, ActivityRow};
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reply::Response;

/// The row with its live stock and state from Redis (the status cache).
async fn view(s: &State, a: ActivityRow) -> ActivityView {
    let live = match ActivityId::parse(a.id.to_string()) {
        Ok(id) => live_status(s, &id).await,
        Err(_) => Ok(std::sync::Arc::new(None)),
    };
    let (remaining, state) = match live.as_deref() {
        Ok(Some(st)) => (Some(st.remaining), st.state.clone()),
        Ok(None) => (None, "not-preheated".to_owned()),
        Err(e) => {
            tracing::warn!(error = %e, activity = a.id, "SECKILL.STATUS failed");
            (None, "unknown".to_owned())
        }
    };
    let rules = s.admission.rules(&a.id.to_string());
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
        admission: AdmissionView {
            required: rules.required,
            difficulty: rules.difficulty,
            window_ms: rules.window_ms,
        },
    }
}

async fn load_list(s: &State) -> Result<Vec<ActivityView>, ApiError> {
    let rows = sql(s, activities::list(&s.db, LIST_LIMIT)).await?;
    // The STATUS calls share the multiplexed connection, so they go out pipelined.
    Ok(futures::future::join_all(rows.into_iter().map(|a| view(s, a))).await)
}

pub(crate) async fn list(s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let views = s.caches.list.get(s.caches.ttl, || load_list(&s)).await?;
        Ok(envelope::ok(StatusCode::OK, &*views))
    })
    .await
}

pub(crate) async fn get(id: String, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let not_found = || ApiError::NotFound(format!("no activity '{id}'"));
        let n: u64 = id.parse().map_err(|_| not_found())?;
        let ttl = s.caches.ttl;
        // A fresh list has it already (the usual case: the list's 100 newest).
        if let Some(Ok(list)) = s.caches.list.fresh(ttl) {
            if let Some(v) = list.iter().find(|v| v.id == n) {
                return Ok(envelope::ok(StatusCode::OK, v));
            }
        }
        let slot = s.caches.one.slot(&n, ttl);
        let found = slot
            .get(ttl, || async {
                Ok(match sql(&s, activities::get(&s.db, n)).await? {
                    Some(row) => Some(view(&s, row).await),
                    None => None,
                })
            })
            .await?;
        match found.as_ref() {
            Some(v) => Ok(envelope::ok(StatusCode::OK, v)),
            None => Err(not_found()),
        }
    })
    .await
}

pub(crate) async fn create(_admin: Caller, body: Bytes, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let new = parse_new_activity(&body, Utc::now())?;
        // Rows, preheat (through the store: span and metric), commit; under one deadline.
        let created = tokio::time::timeout(
            s.settings.mysql_timeout() + s.store_timeout(),
            activities::create(
                &s.db,
                |args| {
                    let store = &s.store;
                    async move { store.create(&args).await }
                },
                &new,
            ),
        )
        .await
        .map_err(|_| ApiError::Unavailable("the database is unavailable; try again".into()))??;
        // Its author sees it at once in the lists of this gateway.
        s.caches.invalidate();
        let row = sql(&s, activities::get(&s.db, created.activity_id))
            .await?
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("activity {} vanished", created.activity_id))
            })?;
        Ok(envelope::ok(StatusCode::CREATED, view(&s, row).await))
    })
    .await
}
