//! Configuration, layered once for every binary: built-in defaults, then `configs/config.yaml`
//! (or `--config FILE`), then environment variables `SECKILL_<SECTION>__<KEY>` (e.g.
//! `SECKILL_MYSQL__URL`), then the binary's flags.
//!
//! The file is shared by every seckill binary: each reads the sections it needs into its own
//! settings type and ignores the rest. The sections every process shares are defined here:
//! `redis`, `mysql`, `etcd` and `telemetry`.

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_CONFIG: &str = "configs/config.yaml";

/// The file `make run` (`scripts/run-local.sh`) writes into its state directory: the
/// addresses of the stack it started and, in dev mode, that stack's token key.
pub const STACK_FILE: &str = "stack.yaml";

/// The local stack's settings file, when there is one: `$SECKILL_STATE_DIR/stack.yaml`, or
/// `.state/stack.yaml` under the working directory (where `make run` puts it).
pub fn stack_file() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("SECKILL_STATE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(".state"));
    let file = dir.join(STACK_FILE);
    file.is_file().then_some(file)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(String),
    #[error("invalid configuration: {0}")]
    Invalid(#[source] Box<figment::Error>),
}

/// The layers below the flags: the file asked for (which must exist); or else the default
/// file when present, then the local stack's file ([`stack_file`]) when present; then the
/// environment. Callers merge their flags on top and extract their settings type.
///
/// So with no `--config`, a command run next to a `make run` stack talks to that stack,
/// while `SECKILL_*` variables and flags still win.
pub fn figment(config: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut fig = Figment::new();
    match config {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError::Missing(path.display().to_string()));
            }
            fig = fig.merge(Yaml::file(path));
        }
        None => {
            if Path::new(DEFAULT_CONFIG).exists() {
                fig = fig.merge(Yaml::file(DEFAULT_CONFIG));
            }
            if let Some(stack) = stack_file() {
                fig = fig.merge(Yaml::file(stack));
            }
        }
    }
    Ok(fig.merge(Env::prefixed("SECKILL_").split("__")))
}

/// Loads `T` from [`figment`] with `overrides` (the flags, serialized; absent ones skipped)
/// on top. `T`'s own defaults (`#[serde(default)]`) fill what nothing sets.
pub fn load<T: DeserializeOwned>(
    config: Option<&Path>,
    overrides: impl Serialize,
) -> Result<T, ConfigError> {
    figment(config)?
        .merge(Serialized::defaults(overrides))
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// A value that must not appear in logs or `Debug` output (passwords, keys, URLs with
/// credentials).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The `redis` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://host:port/` of the server with the seckill module.
    pub url: String,
    /// Redis Cluster: seed nodes (`host:port`, or URLs), any of them; the rest of the cluster
    /// is discovered. Empty (the default): the standalone server at `url`. Nodes given as
    /// `host:port` are reached with `url`'s scheme and credentials.
    pub cluster_nodes: Vec<String>,
    /// Replicas that must hold a reservation before the gateway answers 200 for it and before
    /// the worker turns it into an order (`WAIT`). 0: neither waits (a failover can lose the
    /// last writes the primary acknowledged).
    pub min_replicas: u32,
    /// How long one confirmation waits for those replicas; past it the gateway answers 202
    /// (pending) and the worker retries the batch later.
    pub replica_ack_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            cluster_nodes: Vec::new(),
            min_replicas: 0,
            replica_ack_timeout_ms: 200,
        }
    }
}

impl RedisSettings {
    pub fn is_cluster(&self) -> bool {
        self.cluster_nodes.iter().any(|n| !n.trim().is_empty())
    }

    pub fn replica_ack_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.replica_ack_timeout_ms.max(1))
    }
}

/// The `mysql` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database`. No usable default password: set it with
    /// `SECKILL_MYSQL__URL` outside development.
    pub url: Secret,
    /// Pool size of each process.
    pub max_connections: u32,
    /// How long a query may wait for a pooled connection before it counts as "unreachable".
    pub acquire_timeout_ms: u64,
}

impl Default for MysqlSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("mysql://root@127.0.0.1:3306/seckill"),
            max_connections: 8,
            acquire_timeout_ms: 3_000,
        }
    }
}

impl MysqlSettings {
    pub fn acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.acquire_timeout_ms.max(1))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct EtcdSettings {
    /// Client endpoints (`http://127.0.0.1:2379`). Empty: no etcd; no registration, no
    /// runtime settings, and the sweeper elects its leader with a MySQL advisory lock.
    pub endpoints: Vec<String>,
    /// Lease of a member's key: a crashed process disappears from `seckill members` within
    /// this many seconds.
    pub member_ttl_secs: i64,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            member_ttl_secs: 10,
        }
    }
}

impl EtcdSettings {
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// The member lease, never below 2 s (keep-alives go out every third of it).
    pub fn member_ttl(&self) -> i64 {
        self.member_ttl_secs.max(2)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct TelemetrySettings {
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` (Jaeger, an OpenTelemetry
    /// collector). Empty (the default): spans are not exported and no exporter exists.
    pub otlp_endpoint: String,
    /// Share of new traces kept (0.0..=1.0); a request's spans are all kept or all dropped.
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Sample {
        redis: RedisSettings,
        mysql: MysqlSettings,
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        redis: Option<RedisSettings>,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn file_env_and_flags_layer_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.yaml",
                "redis: {url: redis://file/}\nmysql: {url: mysql://file/x, max_connections: 3}\n",
            )?;
            jail.set_env("SECKILL_MYSQL__URL", "mysql://env/x");
            let s: Sample = load(
                Some(Path::new("c.yaml")),
                Flags {
                    redis: Some(RedisSettings {
                        url: "redis://flag/".into(),
                        ..RedisSettings::default()
                    }),
                },
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(s.redis.url, "redis://flag/");
            assert_eq!(s.mysql.url.expose(), "mysql://env/x");
            assert_eq!(s.mysql.max_connections, 3);
            assert_eq!(s.mysql.acquire_timeout_ms, 3_000, "default fills the rest");
            assert!(
                !format!("{s:?}").contains("env/x"),
                "secrets never in Debug"
            );
            assert!(load::<Sample>(Some(Path::new("absent.yaml")), Flags { redis: None }).is_err());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn the_local_stack_file_sits_between_the_config_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_dir("configs")?;
            jail.create_file(
                DEFAULT_CONFIG,
                "redis: {url: redis://file/}\nmysql: {url: mysql://file/x}\n",
            )?;
            jail.create_dir(".state")?;
            jail.create_file(
                ".state/stack.yaml",
                "redis: {url: redis://stack/}\nmysql: {url: mysql://stack/x, max_connections: 5}\n",
            )?;
            jail.set_env("SECKILL_MYSQL__URL", "mysql://env/x");
            let s: Sample = load(None, Flags { redis: None }).map_err(|e| e.to_string())?;
            assert_eq!(
                s.redis.url, "redis://stack/",
                "the stack file beats the config file"
            );
            assert_eq!(
                s.mysql.url.expose(),
                "mysql://env/x",
                "the environment beats it"
            );
            assert_eq!(s.mysql.max_connections, 5);
            // An explicit --config is all there is: the stack file is not read.
            jail.create_file("other.yaml", "redis: {url: redis://other/}\n")?;
            let s: Sample = load(Some(Path::new("other.yaml")), Flags { redis: None })
                .map_err(|e| e.to_string())?;
            assert_eq!(s.redis.url, "redis://other/");
            assert_eq!(s.mysql.max_connections, 8);
            // SECKILL_STATE_DIR points elsewhere.
            jail.create_dir("elsewhere")?;
            jail.create_file("elsewhere/stack.yaml", "redis: {url: redis://elsewhere/}\n")?;
            jail.set_env("SECKILL_STATE_DIR", "elsewhere");
            let s: Sample = load(None, Flags { redis: None }).map_err(|e| e.to_string())?;
            assert_eq!(s.redis.url, "redis://elsewhere/");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn cluster_nodes_come_from_the_file_or_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.yaml",
                "redis: {url: redis://file/, cluster_nodes: ['127.0.0.1:7000'], min_replicas: 1}\n",
            )?;
            let s: Sample = load(Some(Path::new("c.yaml")), Flags { redis: None })
                .map_err(|e| e.to_string())?;
            assert!(s.redis.is_cluster());
            assert_eq!(s.redis.cluster_nodes, vec!["127.0.0.1:7000"]);
            assert_eq!(s.redis.min_replicas, 1);
            assert_eq!(s.redis.replica_ack_timeout_ms, 200);
            jail.set_env(
                "SECKILL_REDIS__CLUSTER_NODES",
                "[127.0.0.1:7001,127.0.0.1:7002]",
            );
            let s: Sample = load(Some(Path::new("c.yaml")), Flags { redis: None })
                .map_err(|e| e.to_string())?;
            assert_eq!(
                s.redis.cluster_nodes,
                vec!["127.0.0.1:7001", "127.0.0.1:7002"]
            );
            assert!(!RedisSettings::default().is_cluster());
            Ok(())
        });
    }
}
