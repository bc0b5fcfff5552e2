//! What every handler shares.

use crate::access_log::AccessLog;
use crate::admission::Admission;
use crate::auth::Jwt;
use crate::config::Settings;
use crate::hashing::PasswordWork;
use crate::metrics::Metrics;
use crate::models::ActivityView;
use crate::rate_limit::RateLimits;
use crate::sold_out::SoldOutFlags;
use crate::store::Store;
use seckill_client::Status;
use seckill_db::MySqlPool;
use std::sync::Arc;
use std::time::Duration;

pub type State = Arc<AppState>;

/// The caches of the public reads: the activity list, one activity, and Redis status by
/// activity id (`None`: not in Redis).
pub(crate) type Caches =
    crate::cache::Caches<Vec<ActivityView>, Option<ActivityView>, Option<Status>>;

pub struct AppState {
    pub settings: Settings,
    /// Redis: the hot path and live stock.
    pub(crate) store: Store,
    /// MySQL: accounts, activities, orders. Never used by `POST /api/v1/seckill`.
    pub(crate) db: MySqlPool,
    pub jwt: Jwt,
    pub(crate) sold_out: SoldOutFlags,
    pub(crate) limits: RateLimits,
    pub(crate) metrics: Arc<Metrics>,
    /// Which requests get an access-log line (sampling changes live).
    pub(crate) access_log: AccessLog,
    /// Admission tokens, proof of work, the opening lottery (policy changes live).
    pub(crate) admission: Admission,
    /// Password hashing, bounded.
    pub(crate) passwords: PasswordWork,
    /// Public reads, refreshed at most once per `gateway.cache_refresh_ms`.
    pub(crate) caches: Caches,
    /// The OpenAPI document served at `/api/v1/openapi.json`, built once at startup.
    pub(crate) openapi: String,
}

impl AppState {
    /// The deadline of one Redis call.
    pub(crate) fn store_timeout(&self) -> Duration {
        self.settings.redis_timeout()
    }
}
