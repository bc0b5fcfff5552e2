//! Configuration, layered once for every binary: built-in defaults, then `configs/config.yaml`
//! (or `--config FILE`), then environment variables `SECKILL_<SECTION>__<KEY>` (e.g.
//! `SECKILL_MYSQL__URL`), then the binary's flags.
//!
//! The file is shared by every seckill binary: each reads the sections it needs into its own
//! settings type and ignores the rest. The sections every process shares are defined here:
//! `redis`, `mysql`, `etcd` and `telemetry`; they build the connections of every binary
//! ([`RedisSettings::target`], [`MysqlSettings::connect_options`], `etcd::connect`), so ACL
//! users, TLS files and URL redaction ([`redact_url`]) are handled once.

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::mysql::MySqlConnectOptions;
use std::collections::BTreeMap;
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
    /// A setting that parses but cannot be used (a URL that is not one, an unreadable
    /// certificate file, ...). The message names the key; URLs in it are redacted.
    #[error("{0}")]
    Setting(String),
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
    // figment reads an environment value as YAML-like data ("0123" -> 123, "[a]" -> a list,
    // quotes stripped): right for numbers and lists, wrong for passwords and URLs, which
    // are taken exactly as written.
    let env = Env::prefixed("SECKILL_").split("__");
    fig = fig.merge(env.clone().filter(|k| !is_text_key(k.as_str())));
    for (key, value) in env.iter() {
        if is_text_key(key.as_str()) {
            fig = fig.merge(Serialized::default(key.as_str(), value));
        }
    }
    Ok(fig)
}

/// Keys whose environment value is taken verbatim (see [`figment`]).
fn is_text_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    ["password", "username", "url", "migrate_url", "jwt_secret"]
        .iter()
        .any(|k| last.eq_ignore_ascii_case(k))
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
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
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

/// A string; also an integer or a boolean, kept as written. An environment variable such as
/// `SECKILL_REDIS__PASSWORD=123456` reaches serde as a number (figment parses values), and
/// the default error message would quote it.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (a secret; its value is not shown)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            // A float would not round-trip ("1e5" comes back as 100000): refuse it without
            // quoting it.
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom(
                    "a secret was read as a number (its value is not shown): quote it",
                ))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `url` with the password of its user info (and of any `password=` query parameter)
/// replaced by `***`: `redis://seckill-gateway:***@10.0.0.5:6379/`. This is the only form
/// of a server URL that goes into a log line or an error message.
///
/// Fails closed: text that is not `scheme://...` is shown as `***` whole (it may be a
/// password set in the wrong place).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return "***".into();
    }
    // The user info ends at the last '@' before the path or query (a password may hold '@'
    // or '/' when it was not percent-encoded: take the last '@' of the whole string that
    // comes before any '?').
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_and_path = match before_query.rfind('@') {
        Some(at) => {
            let (userinfo, host) = before_query.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***{host}"),
                // `redis://name@host` is a user name alone.
                None => format!("{userinfo}{host}"),
            }
        }
        None => before_query.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("pass") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{authority_and_path}?{q}"),
        None => format!("{scheme}://{authority_and_path}"),
    }
}

/// The TLS files of one server connection, all PEM. Empty (the default): the server's
/// certificate, when the URL asks for TLS, is checked against the system's trust store and
/// no client certificate is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TlsFiles {
    /// CA certificate(s) the server's certificate must chain to, instead of the system's.
    pub ca_file: String,
    /// Client certificate (chain), for a server that requires one (mutual TLS).
    pub cert_file: String,
    /// The client certificate's private key.
    pub key_file: String,
}

/// [`TlsFiles`] read.
#[derive(Clone, Default)]
pub struct TlsPem {
    pub ca: Option<Vec<u8>>,
    /// Certificate chain and private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_empty() && self.cert_file.is_empty() && self.key_file.is_empty()
    }

    /// Reads the files; `section` (e.g. `redis.tls`) names each in errors.
    pub fn load(&self, section: &str) -> Result<TlsPem, ConfigError> {
        let read = |key: &str, path: &str| -> Result<Option<Vec<u8>>, ConfigError> {
            if path.is_empty() {
                return Ok(None);
            }
            std::fs::read(path)
                .map(Some)
                .map_err(|e| ConfigError::Setting(format!("{section}.{key} {path}: {e}")))
        };
        let ca = read("ca_file", &self.ca_file)?;
        let identity = match (
            read("cert_file", &self.cert_file)?,
            read("key_file", &self.key_file)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Setting(format!(
                    "{section}.cert_file and {section}.key_file go together: set both or neither"
                )))
            }
        };
        Ok(TlsPem { ca, identity })
    }
}

/// Adds to a connection error what a TLS failure means, when it is one: which setting
/// decides whom the client trusts. `section` is e.g. `redis.tls`.
pub fn tls_hint(error_chain: &str, section: &str) -> Option<String> {
    let e = error_chain.to_ascii_lowercase();
    if e.contains("unknownissuer") || e.contains("unknown issuer") || e.contains("unknownca") {
        Some(format!(
            "the server's TLS certificate is not trusted: it is not signed by a CA in \
             {section}.ca_file (or the system's trust store when that is empty)"
        ))
    } else if e.contains("notvalidforname") || e.contains("not valid for name") {
        Some(format!(
            "the server's TLS certificate is not valid for the host name in the URL \
             (trusted through {section}.ca_file or the system's trust store)"
        ))
    } else if e.contains("certificaterequired") || e.contains("certificate required") {
        Some(format!(
            "the server requires a client certificate: set {section}.cert_file and \
             {section}.key_file"
        ))
    } else if e.contains("invalid peer certificate") || e.contains("badcertificate") {
        Some(format!(
            "the TLS certificate was refused (check {section}.ca_file, cert_file and key_file)"
        ))
    } else {
        None
    }
}

/// A failed connection to `server` (`"Redis"`, `"MySQL"`, `"etcd"`) at `shown` (a redacted
/// URL), as every binary reports it: "Failed to connect to Redis at rediss://gw:***@host/",
/// plus what a TLS failure in the chain means (see [`tls_hint`]; `tls_section` is e.g.
/// `redis.tls`), over the original error.
pub fn connect_error(
    error: impl Into<anyhow::Error>,
    server: &str,
    shown: &str,
    tls_section: &str,
) -> anyhow::Error {
    explain(
        error,
        format!("Failed to connect to {server} at {shown}"),
        tls_section,
    )
}

/// `error` under `context` (which names the server, redacted), plus what a TLS failure in
/// its chain means.
pub fn explain(
    error: impl Into<anyhow::Error>,
    context: String,
    tls_section: &str,
) -> anyhow::Error {
    let error = error.into();
    match tls_hint(&format!("{error:#} {error:?}"), tls_section) {
        Some(hint) => error.context(format!("{context}: {hint}")),
        None => error.context(context),
    }
}

/// The `redis` section.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://host:port/` of the server with the seckill module; `rediss://` for TLS. May
    /// carry credentials (`redis://user:password@host:port/`); the fields below win.
    pub url: String,
    /// ACL user every binary logs in as, unless `users.<binary>` names another.
    pub username: String,
    pub password: Secret,
    /// Per binary (`gateway`, `worker`, `cli`): the ACL user of that binary, when several
    /// binaries read one file (the local stack's `.state/stack.yaml`).
    pub users: BTreeMap<String, RedisUser>,
    /// CA and client certificate for `rediss://`.
    pub tls: TlsFiles,
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

/// An ACL user name and its password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RedisUser {
    pub username: String,
    pub password: Secret,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            username: String::new(),
            password: Secret::default(),
            users: BTreeMap::new(),
            tls: TlsFiles::default(),
            cluster_nodes: Vec::new(),
            min_replicas: 0,
            replica_ack_timeout_ms: 200,
        }
    }
}

/// Never the URL's password (the URL is shown redacted).
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.redacted_url())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("users", &self.users)
            .field("tls", &self.tls)
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>(),
            )
            .field("min_replicas", &self.min_replicas)
            .field("replica_ack_timeout_ms", &self.replica_ack_timeout_ms)
            .finish()
    }
}

impl RedisSettings {
    pub fn is_cluster(&self) -> bool {
        self.cluster_nodes.iter().any(|n| !n.trim().is_empty())
    }

    pub fn replica_ack_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.replica_ack_timeout_ms.max(1))
    }

    /// Where `binary` (`gateway`, `worker`, `cli`) finds Redis, standalone or cluster, and
    /// how it logs in to every node: its ACL user ([`Self::user_for`]) and, for `rediss://`,
    /// the TLS files. Reads the files; connects nothing.
    pub fn target(&self, binary: &str) -> Result<seckill_client::Target, ConfigError> {
        let shown = self.redacted_url();
        let target = seckill_client::Target::new(&self.url, &self.cluster_nodes);
        let urls: Vec<String> = match &target.nodes {
            seckill_client::Nodes::Standalone { url } => vec![url.clone()],
            seckill_client::Nodes::Cluster { seeds } => seeds.clone(),
        };
        let mut tls_url = false;
        for url in &urls {
            use redis::IntoConnectionInfo;
            let info = url.as_str().into_connection_info().map_err(|e| {
                let name = if target.is_cluster() {
                    "redis.cluster_nodes"
                } else {
                    "redis.url"
                };
                ConfigError::Setting(format!(
                    "{name} {} is not a Redis URL: {e}",
                    redact_url(url)
                ))
            })?;
            tls_url |= matches!(info.addr, redis::ConnectionAddr::TcpTls { .. });
        }
        if !tls_url && !self.tls.is_empty() {
            return Err(ConfigError::Setting(format!(
                "redis.tls is set but redis.url {shown} is not a rediss:// URL"
            )));
        }
        let tls = if tls_url && !self.tls.is_empty() {
            let pem = self.tls.load("redis.tls")?;
            Some(redis::TlsCertificates {
                client_tls: pem
                    .identity
                    .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    }),
                root_cert: pem.ca,
            })
        } else {
            None
        };
        let user = self.user_for(binary);
        Ok(target.with_access(seckill_client::Access {
            username: user
                .as_ref()
                .filter(|u| !u.username.is_empty())
                .map(|u| u.username.clone()),
            password: user
                .as_ref()
                .filter(|u| !u.password.is_empty())
                .map(|u| u.password.expose().to_owned()),
            tls,
        }))
    }
    /// The URL as logs and errors show it ([`redact_url`]).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Where Redis is, as logs and errors show it: the URL, or the cluster's seed nodes,
    /// redacted.
    pub fn shown(&self) -> String {
        if self.is_cluster() {
            let nodes: Vec<String> = self
                .cluster_nodes
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty())
                .map(|n| {
                    if n.contains("://") {
                        redact_url(n)
                    } else {
                        n.to_owned()
                    }
                })
                .collect();
            format!("the cluster of {}", nodes.join(", "))
        } else {
            self.redacted_url()
        }
    }

    /// Who `binary` logs in as: `users.<binary>` when it names a user, else
    /// `username`/`password` when set, else the URL's user info.
    pub fn user_for(&self, binary: &str) -> Option<RedisUser> {
        if let Some(u) = self.users.get(binary).filter(|u| !u.username.is_empty()) {
            return Some(u.clone());
        }
        (!self.username.is_empty() || !self.password.is_empty()).then(|| RedisUser {
            username: self.username.clone(),
            password: self.password.clone(),
        })
    }
}

/// The `mysql` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database[?ssl-mode=...]` of the application user
    /// (rows only: SELECT, INSERT, UPDATE). No usable default password: set it with
    /// `SECKILL_MYSQL__URL` outside development.
    pub url: Secret,
    /// The schema owner's URL, used by `seckill db migrate|rollback`, `seckill-worker
    /// --migrate` and the gateway's `--run-migrations` / dev mode. Empty: `url`.
    pub migrate_url: Secret,
    /// Pool size of each process.
    pub max_connections: u32,
    /// How long a query may wait for a pooled connection before it counts as "unreachable".
    pub acquire_timeout_ms: u64,
    /// CA and client certificate; with `ca_file` set and no `ssl-mode` in the URL, the
    /// server's certificate and host name are verified (`VERIFY_IDENTITY`).
    pub tls: TlsFiles,
}

impl Default for MysqlSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("mysql://root@127.0.0.1:3306/seckill"),
            migrate_url: Secret::default(),
            max_connections: 8,
            acquire_timeout_ms: 3_000,
            tls: TlsFiles::default(),
        }
    }
}

impl MysqlSettings {
    pub fn acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.acquire_timeout_ms.max(1))
    }

    /// `url` as logs and errors show it ([`redact_url`]).
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// The URL migrations run with: `migrate_url`, else `url`.
    pub fn migrate_url(&self) -> &Secret {
        if self.migrate_url.is_empty() {
            &self.url
        } else {
            &self.migrate_url
        }
    }

    /// [`Self::migrate_url`] as logs and errors show it.
    pub fn redacted_migrate_url(&self) -> String {
        redact_url(self.migrate_url().expose())
    }

    /// Connection options of the application user (`url`), with the TLS files read.
    pub fn connect_options(&self) -> Result<MySqlConnectOptions, ConfigError> {
        self.options(&self.url, "mysql.url")
    }

    /// Connection options of the schema owner ([`Self::migrate_url`]).
    pub fn migrate_options(&self) -> Result<MySqlConnectOptions, ConfigError> {
        let key = if self.migrate_url.is_empty() {
            "mysql.url"
        } else {
            "mysql.migrate_url"
        };
        self.options(self.migrate_url(), key)
    }

    fn options(&self, url: &Secret, key: &str) -> Result<MySqlConnectOptions, ConfigError> {
        use std::str::FromStr;
        let shown = redact_url(url.expose());
        let mut o = MySqlConnectOptions::from_str(url.expose())
            .map_err(|e| ConfigError::Setting(format!("{key} {shown} is invalid: {e}")))?;
        let pem = self.tls.load("mysql.tls")?;
        if let Some(ca) = pem.ca {
            let lower = url.expose().to_ascii_lowercase();
            if !lower.contains("ssl-mode=") && !lower.contains("sslmode=") {
                o = o.ssl_mode(sqlx::mysql::MySqlSslMode::VerifyIdentity);
            }
            o = o.ssl_ca_from_pem(ca);
        }
        if let Some((cert, key)) = pem.identity {
            o = o
                .ssl_client_cert_from_pem(cert)
                .ssl_client_key_from_pem(key);
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct EtcdSettings {
    /// Client endpoints (`http://127.0.0.1:2379`, or `https://...` for TLS). Empty: no etcd;
    /// no registration, no runtime settings, and the sweeper elects its leader with a MySQL
    /// advisory lock.
    pub endpoints: Vec<String>,
    /// Lease of a member's key: a crashed process disappears from `seckill members` within
    /// this many seconds.
    pub member_ttl_secs: i64,
    /// CA and client certificate for `https://` endpoints.
    pub tls: TlsFiles,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            member_ttl_secs: 10,
            tls: TlsFiles::default(),
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

    /// The endpoints as logs and errors show them ([`redact_url`] each).
    pub fn redacted_endpoints(&self) -> String {
        let shown: Vec<String> = self.endpoints.iter().map(|e| redact_url(e)).collect();
        format!("[{}]", shown.join(", "))
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
    fn the_shipped_config_file_reads_into_the_shared_sections() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/config.yaml");
        let s: Sample = load(Some(&file), Flags { redis: None }).expect("configs/config.yaml");
        assert_eq!(s.redis.url, RedisSettings::default().url);
        assert!(s.redis.username.is_empty() && s.redis.users.is_empty());
        assert!(s.redis.tls.is_empty() && s.mysql.tls.is_empty());
        assert!(s.mysql.migrate_url.is_empty());
        assert!(s.redis.target("gateway").is_ok());
        assert!(s.mysql.connect_options().is_ok() && s.mysql.migrate_options().is_ok());
    }

    #[test]
    fn urls_are_redacted_in_every_shape() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:pw@host:6379/", "redis://:***@host:6379/"),
            ("redis://gw:pw@host:6379/0", "redis://gw:***@host:6379/0"),
            ("rediss://gw:p%40ss@host/", "rediss://gw:***@host/"),
            // Unencoded '@' and '/' in the password.
            ("redis://gw:p@s/s@host:1/", "redis://gw:***@host:1/"),
            ("redis://gw@host/", "redis://gw@host/"),
            (
                "mysql://root@127.0.0.1:3306/seckill",
                "mysql://root@127.0.0.1:3306/seckill",
            ),
            (
                "mysql://app:secret@db:3306/seckill?ssl-mode=verify_identity",
                "mysql://app:***@db:3306/seckill?ssl-mode=verify_identity",
            ),
            (
                "mysql://db/x?user=a&password=secret",
                "mysql://db/x?user=a&password=***",
            ),
            ("https://127.0.0.1:2379", "https://127.0.0.1:2379"),
            // Not a URL: possibly a password in the wrong place.
            ("secret", "***"),
            ("mysql:/app:secret@db", "***"),
            ("", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let mut r = RedisSettings {
            url: "redis://gw:url-secret@host:6379/".into(),
            password: Secret::new("field-secret"),
            ..Default::default()
        };
        r.users.insert(
            "worker".into(),
            RedisUser {
                username: "w".into(),
                password: Secret::new("user-secret"),
            },
        );
        let m = MysqlSettings {
            url: Secret::new("mysql://app:app-secret@db/x"),
            migrate_url: Secret::new("mysql://own:own-secret@db/x"),
            ..Default::default()
        };
        let shown = format!("{r:?} {m:?}");
        for secret in [
            "url-secret",
            "field-secret",
            "user-secret",
            "app-secret",
            "own-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("redis://gw:***@host:6379/"), "{shown}");
    }

    #[test]
    fn each_binary_logs_in_as_its_own_user() {
        let mut r = RedisSettings {
            url: "redis://url-user:url-pw@127.0.0.1:6379/".into(),
            ..Default::default()
        };
        let who = |r: &RedisSettings, binary: &str| -> anyhow::Result<(String, String)> {
            let info = r
                .target(binary)?
                .client()?
                .get_connection_info()
                .redis
                .clone();
            Ok((
                info.username.unwrap_or_default(),
                info.password.unwrap_or_default(),
            ))
        };
        let pair = |u: &str, p: &str| (u.to_owned(), p.to_owned());
        assert_eq!(who(&r, "gateway").ok(), Some(pair("url-user", "url-pw")));
        r.username = "flat".into();
        r.password = Secret::new("flat-pw");
        assert_eq!(who(&r, "gateway").ok(), Some(pair("flat", "flat-pw")));
        r.users.insert(
            "gateway".into(),
            RedisUser {
                username: "seckill-gateway".into(),
                password: Secret::new("gw-pw"),
            },
        );
        assert_eq!(
            who(&r, "gateway").ok(),
            Some(pair("seckill-gateway", "gw-pw"))
        );
        assert_eq!(who(&r, "worker").ok(), Some(pair("flat", "flat-pw")));
    }

    #[test]
    fn tls_settings_that_cannot_work_are_refused_by_name() {
        let err = |r: &RedisSettings| r.target("cli").err().map(|e| e.to_string());
        let mut r = RedisSettings {
            url: "redis://:pw@127.0.0.1:6379/".into(),
            ..Default::default()
        };
        r.tls.ca_file = "/nonexistent/ca.pem".into();
        let e = err(&r).unwrap_or_default();
        assert!(
            e.contains("redis.tls is set") && e.contains("not a rediss://"),
            "{e}"
        );
        assert!(!e.contains(":pw@"), "{e}");
        r.url = "rediss://:pw@127.0.0.1:6379/".into();
        let e = err(&r).unwrap_or_default();
        assert!(e.contains("redis.tls.ca_file /nonexistent/ca.pem"), "{e}");
        r.tls = TlsFiles {
            cert_file: "/nonexistent/c.pem".into(),
            ..Default::default()
        };
        let e = err(&r).unwrap_or_default();
        assert!(e.contains("redis.tls.cert_file"), "{e}");
        let e = RedisSettings {
            url: "redis://:pw@host:notaport/".into(),
            ..Default::default()
        }
        .target("cli")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("redis.url redis://:***@host:notaport/"), "{e}");
        let m = MysqlSettings {
            url: Secret::new("mysql://app:pw@db:notaport/x"),
            ..Default::default()
        };
        let e = m
            .connect_options()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("mysql.url mysql://app:***@db:notaport/x"), "{e}");
    }

    #[test]
    fn migrations_use_the_schema_owner_when_there_is_one() -> anyhow::Result<()> {
        let mut m = MysqlSettings {
            url: Secret::new("mysql://app:a@db/x"),
            ..Default::default()
        };
        assert_eq!(m.migrate_options()?.get_username(), "app");
        m.migrate_url = Secret::new("mysql://owner:o@db/x");
        assert_eq!(m.migrate_options()?.get_username(), "owner");
        assert_eq!(m.connect_options()?.get_username(), "app");
        assert_eq!(m.redacted_migrate_url(), "mysql://owner:***@db/x");
        // A CA file without an ssl-mode in the URL means: verify the server.
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not checked until a connection is made")?;
        m.tls.ca_file = ca.display().to_string();
        assert!(matches!(
            m.connect_options()?.get_ssl_mode(),
            sqlx::mysql::MySqlSslMode::VerifyIdentity
        ));
        m.url = Secret::new("mysql://app:a@db/x?ssl-mode=required");
        assert!(matches!(
            m.connect_options()?.get_ssl_mode(),
            sqlx::mysql::MySqlSslMode::Required
        ));
        Ok(())
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn passwords_from_the_environment_are_taken_verbatim() {
        figment::Jail::expect_with(|jail| {
            for (var, value) in [
                ("SECKILL_REDIS__PASSWORD", "0123456"),
                ("SECKILL_REDIS__USERS__WORKER__PASSWORD", "true"),
                ("SECKILL_REDIS__USERS__CLI__PASSWORD", "\"quoted\""),
                ("SECKILL_REDIS__USERS__GATEWAY__PASSWORD", "[1e5]"),
                ("SECKILL_REDIS__USERS__GATEWAY__USERNAME", "42"),
                ("SECKILL_MYSQL__MAX_CONNECTIONS", "3"),
            ] {
                jail.set_env(var, value);
            }
            let s: Sample = load(None, Flags { redis: None }).map_err(|e| e.to_string())?;
            let user = |b: &str| s.redis.users.get(b).cloned().unwrap_or_default();
            assert_eq!(s.redis.password.expose(), "0123456");
            assert_eq!(user("worker").password.expose(), "true");
            assert_eq!(user("cli").password.expose(), "\"quoted\"");
            assert_eq!(user("gateway").password.expose(), "[1e5]");
            assert_eq!(user("gateway").username, "42");
            assert_eq!(s.mysql.max_connections, 3, "other values are still parsed");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn a_secret_read_as_a_float_from_a_file_is_refused_without_being_quoted() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "redis: {password: 1e5}\n")?;
            let e = load::<Sample>(Some(Path::new("c.yaml")), Flags { redis: None })
                .err()
                .map(|e| format!("{e:#} {e:?}"))
                .unwrap_or_default();
            assert!(e.contains("quote it") && !e.contains("1e5"), "{e}");
            Ok(())
        });
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
                        ..Default::default()
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
