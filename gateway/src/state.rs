//! What every handler shares.

use crate::access_log::AccessLog;
use crate::auth::Jwt;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::sold_out::SoldOutFlags;
use crate::store::Store;
use seckill_db::MySqlPool;
use std::sync::Arc;
use std::time::Duration;

pub type State = Arc<AppState>;

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
}

impl AppState {
    /// The deadline of one Redis call.
    pub(crate) fn store_timeout(&self) -> Duration {
        self.settings.redis_timeout()
    }
}
