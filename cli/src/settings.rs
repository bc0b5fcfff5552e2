//! The parts of `configs/config.yaml` the CLI reads (other sections are ignored).

use figment::providers::Serialized;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub redis: seckill_worker::config::RedisSettings,
    pub mysql: seckill_worker::config::MysqlSettings,
    pub worker: seckill_worker::config::WorkerSettings,
    pub etcd: seckill_worker::config::EtcdSettings,
    pub auth: Auth,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Auth {
    /// HS256 key of the gateway's tokens; no default (required by `users seed`).
    pub jwt_secret: String,
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

pub fn load(
    config: Option<&Path>,
    redis_url: Option<String>,
    mysql_url: Option<String>,
) -> anyhow::Result<Settings> {
    let o = Overrides {
        redis: redis_url.map(|url| Url { url }),
        mysql: mysql_url.map(|url| Url { url }),
    };
    Ok(seckill_worker::config::figment(config)?
        .merge(Serialized::defaults(o))
        .extract()?)
}
