//! One async function per endpoint, grouped by resource. Every handler runs its work through
//! [`respond`]: the request deadline, then the envelope (success or [`ApiError`]).
//!
//! - [`system`]: health, metrics, the OpenAPI document.
//! - [`accounts`]: register, login.
//! - [`activities`]: list, one, and the admin's create.
//! - [`seckill`]: the hot path (reserve) and result polling.
//! - [`admission`]: proof-of-work challenges and admission tokens for the sale.
//! - [`orders`]: the caller's orders, pay, cancel.

pub(crate) mod accounts;
pub(crate) mod activities;
pub(crate) mod admission;
pub(crate) mod orders;
pub(crate) mod seckill;
pub(crate) mod system;

use crate::error::ApiError;
use crate::state::State;
use std::convert::Infallible;
use std::future::Future;
use warp::reply::Response;

/// Most rows a list endpoint returns.
const LIST_LIMIT: u32 = 100;

/// Runs `fut` under the request deadline and turns its outcome into the envelope reply.
async fn respond(
    s: &State,
    fut: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Infallible> {
    Ok(deadline(s, fut)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn deadline<T>(
    s: &State,
    fut: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(s.settings.request_timeout(), fut)
        .await
        .unwrap_or(Err(ApiError::Timeout))
}

/// Runs one SQL statement under the statement deadline (a slow or dead MySQL gives 503).
async fn sql<T>(
    s: &State,
    fut: impl Future<Output = Result<T, seckill_db::DbError>>,
) -> Result<T, ApiError> {
    Ok(seckill_db::error::timed(s.settings.mysql_timeout(), fut).await?)
}

/// Now, in unix milliseconds (the unit of the module's sale windows and of admission tokens).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
