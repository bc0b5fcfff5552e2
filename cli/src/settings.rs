//! The parts of `configs/config.yaml` the CLI reads (other sections are ignored), layered by
//! `seckill_runtime::config` with the `--redis-url` / `--mysql-url` flags on top.

use seckill_runtime::{EtcdSettings, MysqlSettings, RedisSettings, Secret};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Settings {
    pub(crate) redis: RedisSettings,
    pub(crate) mysql: MysqlSettings,
    pub(crate) worker: Worker,
    pub(crate) etcd: EtcdSettings,
    pub(crate) auth: Auth,
}

/// The part of the `worker` section the CLI needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Worker {
    /// The consumer group whose lag `seckill lag` and `seckill audit` report.
    pub(crate) group: String,
}

impl Default for Worker {
    fn default() -> Self {
        Self {
            group: "seckill-orders".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Auth {
    /// HS256 key of the gateway's tokens; no default (required by `users seed`).
    pub(crate) jwt_secret: Secret,
}

#[derive(Serialize)]
struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mysql: Option<Url>,
}

#[derive(Serialize)]
struct Url {
    url: String,
}

pub(crate) fn load(
    config: Option<&Path>,
    redis_url: Option<String>,
    mysql_url: Option<String>,
) -> anyhow::Result<Settings> {
    let o = Overrides {
        redis: redis_url.map(|url| Url { url }),
        mysql: mysql_url.map(|url| Url { url }),
    };
    Ok(seckill_runtime::config::load(config, o)?)
}
