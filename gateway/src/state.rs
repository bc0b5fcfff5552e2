//! What every handler shares.

use crate::auth::Jwt;
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::sold_out::SoldOutFlags;
use crate::store::Store;
use std::sync::Arc;

pub type State = Arc<AppState>;

pub struct AppState {
    pub settings: Settings,
    /// Redis: the hot path and live stock.
    pub store: Store,
    /// MySQL: accounts, activities, orders. Never used by `POST /api/v1/seckill`.
    pub db: Db,
    pub jwt: Jwt,
    pub sold_out: SoldOutFlags,
    pub limits: RateLimits,
    pub metrics: Arc<Metrics>,
}
