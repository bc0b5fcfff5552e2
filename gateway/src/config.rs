//! Settings: built-in defaults, then `configs/config.yaml` (or `--config FILE`), then
//! `SECKILL_*` environment variables (`SECKILL_AUTH__JWT_SECRET` sets `auth.jwt_secret`), then
//! command-line flags. Only the sections the gateway reads are modelled; the worker's
//! sections in the same file are ignored here.

use anyhow::{bail, Context};
use figment::providers::Serialized;
pub use seckill_runtime::config::DEFAULT_CONFIG;
pub use seckill_runtime::{EtcdSettings, MysqlSettings, RedisSettings, Secret, TelemetrySettings};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Shortest JWT secret accepted outside dev mode (HS256 wants at least 256 bits).
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "seckill-gateway", version, about = "The seckill HTTP API")]
pub struct Cli {
    /// Settings file (default: configs/config.yaml; a missing default file is not an error).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:8080 (gateway.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Dev mode: seeds admin/admin and allows the built-in JWT secret (gateway.dev_mode).
    #[arg(long)]
    pub dev: bool,
    /// Redis URL (redis.url).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// MySQL URL (mysql.url).
    #[arg(long)]
    pub mysql_url: Option<String>,
    /// Apply the schema migrations at startup (gateway.run_migrations).
    #[arg(long)]
    pub run_migrations: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub gateway: GatewaySettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub redis: RedisSettings,
    pub mysql: MysqlSettings,
    /// etcd: membership and runtime settings; empty endpoints = neither.
    pub etcd: EtcdSettings,
    /// OTLP span export; off unless `telemetry.otlp_endpoint` is set.
    pub telemetry: TelemetrySettings,
    /// Admission tokens, proof of work and the opening-window lottery of the sale route.
    pub admission: AdmissionSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: String,
    /// Seeds admin/admin, allows the built-in JWT secret, runs migrations.
    pub dev_mode: bool,
    /// Apply `migrations/` at startup (always done in dev mode).
    pub run_migrations: bool,
    /// Whole-request deadline; a slower request gets 503 `TIMEOUT`.
    pub request_timeout_ms: u64,
    /// Deadline of one Redis command (connect included); past it the request gets 503.
    pub redis_timeout_ms: u64,
    /// Deadline of one SQL statement (pool acquire included).
    pub mysql_timeout_ms: u64,
    /// How long a SOLDOUT reply short-circuits later requests for the same activity.
    /// Kept short so stock returned by a cancel or an expiry is sold again (no undersell).
    pub sold_out_ttl_ms: u64,
    /// Largest accepted request body.
    pub body_limit_bytes: u64,
    /// `tracing` filter (`RUST_LOG` syntax); `RUST_LOG` wins when set.
    pub log_filter: String,
    /// One access-log line per this many ordinary requests (successes and the sale's
    /// expected refusals); errors and unexpected refusals are always logged. 0: none, 1: all.
    pub access_log_sample_every: u64,
    /// Seconds between `access summary` lines (requests by route and status, latency);
    /// 0: none.
    pub access_log_summary_secs: u64,
    /// Open connections at most; a connection over the cap is answered 503 and closed at
    /// once (never queued).
    pub max_connections: usize,
    /// Connections the kernel may hold for the accept loop (`listen(2)`'s backlog, capped by
    /// `net.core.somaxconn`): a crowd connecting at once beyond it has SYNs dropped and waits
    /// a second for each retransmission.
    pub listen_backlog: u32,
    /// From the moment the gateway waits for a request (a new connection, or a kept-alive one
    /// between requests) until the request's head is complete; then the connection is closed.
    /// Bounds slow-header clients and idle keep-alive connections alike.
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moves in either direction for this long while the
    /// gateway waits on it (a stalled body, a client that stops reading) is closed. Longer
    /// than `request_timeout_ms`.
    pub idle_timeout_ms: u64,
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed: the client is the right-most
    /// address in it that is not one of them. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The activity list, one activity and the live status the admission route reads are
    /// refreshed at most once per this interval, whatever the crowd.
    pub cache_refresh_ms: u64,
    /// Threads serving requests (the async runtime's workers); 0: half the cores, at least
    /// one (see [`GatewaySettings::worker_threads`]).
    pub worker_threads: usize,
}

impl GatewaySettings {
    /// `worker_threads`, with 0 resolved against this machine's cores.
    ///
    /// Half, because the gateway shares its machine with Redis (one thread that every
    /// reservation goes through), the kernel's network stack, and on small hardware the
    /// database and the worker. On two cores, two runtime workers spent their time handing
    /// requests and Redis replies to each other and waking each other up: one worker served
    /// 37.7k reservations/s where two served 29.8k, with 25 instead of 30 µs of CPU each
    /// (docs/benchmarks.md, "Gateway rows"). A gateway with a machine of its own sets it to
    /// the number of cores.
    pub fn worker_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        half_the_cores()
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            dev_mode: false,
            run_migrations: false,
            request_timeout_ms: 5_000,
            redis_timeout_ms: 500,
            mysql_timeout_ms: 3_000,
            sold_out_ttl_ms: 1_000,
            body_limit_bytes: 16 * 1024,
            log_filter: "info".into(),
            access_log_sample_every: 100,
            access_log_summary_secs: 10,
            max_connections: 10_000,
            listen_backlog: 4096,
            header_read_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            trusted_proxies: Vec::new(),
            cache_refresh_ms: 500,
            worker_threads: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// HS256 key. Required outside dev mode; no usable default.
    pub jwt_secret: Option<Secret>,
    /// Lifetime of a token issued by login.
    pub token_ttl_secs: u64,
    /// Password hashes (argon2, ~19 MiB and tens of ms of CPU each) running at once; 0: half
    /// the cores, at least one, so the sale keeps the other half whatever logins do.
    pub hash_concurrency: usize,
    /// Logins/registrations allowed to wait for a hashing slot; more are refused at once
    /// (503 `OVERLOADED`, `Retry-After`).
    pub hash_queue: usize,
    /// Longest wait for a hashing slot before the same refusal.
    pub hash_wait_ms: u64,
    /// Bearer tokens kept once verified (each until its own expiry), so a client's every
    /// request after the first skips the signature check; 0: check every request in full.
    pub verified_tokens: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_secs: 24 * 3600,
            hash_concurrency: 0,
            hash_queue: 32,
            hash_wait_ms: 2_000,
            verified_tokens: crate::auth::VERIFIED_TOKENS,
        }
    }
}

impl AuthSettings {
    /// `hash_concurrency`, with 0 resolved against this machine's cores.
    pub fn hash_slots(&self) -> usize {
        if self.hash_concurrency > 0 {
            return self.hash_concurrency;
        }
        half_the_cores()
    }
}

/// Half of this machine's cores, at least one: what the sale's own threads leave to the rest.
fn half_the_cores() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / 2).max(1)
}

/// GCRA limits: `per_second` sustained with bursts of `burst`. A person clicking as fast as
/// they can manages ~10 clicks/s for a few seconds, so the per-user default never refuses one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_user_per_second: u32,
    pub per_user_burst: u32,
    /// Per client (the TCP peer, or the `X-Forwarded-For` client behind a trusted proxy; an
    /// IPv6 client is its /64).
    pub per_ip_per_second: u32,
    pub per_ip_burst: u32,
    /// `/api/v1/auth/*` (password hashing: the expensive unauthenticated work) per client.
    pub auth_per_ip_per_minute: u32,
    pub auth_per_ip_burst: u32,
    /// `/api/v1/auth/*` per username (guessing one account's password from many addresses).
    pub auth_per_username_per_minute: u32,
    pub auth_per_username_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_user_per_second: 20,
            per_user_burst: 40,
            per_ip_per_second: 2_000,
            per_ip_burst: 4_000,
            auth_per_ip_per_minute: 60,
            auth_per_ip_burst: 20,
            auth_per_username_per_minute: 10,
            auth_per_username_burst: 5,
        }
    }
}

/// Admission to the sale (`POST /api/v1/seckill/admission`, then the token on
/// `POST /api/v1/seckill`). The live values (`required`, `difficulty`, `window_ms`, the
/// per-activity overrides) can also be set through etcd, see `crate::runtime`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AdmissionSettings {
    /// Whether `POST /api/v1/seckill` needs an admission token (every activity, unless
    /// `activities` says otherwise). Off by default: the contract's three-field call keeps
    /// working for existing clients; turn it on for a sale.
    pub required: bool,
    /// Proof-of-work difficulty (leading zero bits of SHA-256, 0 to 28) an admission costs;
    /// 0: no work.
    pub difficulty: u8,
    /// The opening window: tokens requested in the first `window_ms` of a sale are usable
    /// in a random order over the next `window_ms`. 0: first come, first served.
    pub window_ms: u64,
    /// Lifetime of an admission token after its `not_before`.
    pub token_ttl_secs: u64,
    /// Lifetime of a proof-of-work challenge (how long ahead of a sale work can be done).
    pub challenge_ttl_secs: u64,
    /// Key of tokens and challenges; unset: derived from `auth.jwt_secret` (so every gateway
    /// of a deployment accepts every other's tokens).
    pub secret: Option<Secret>,
    /// Per-activity overrides of `required` and `difficulty`, by activity id.
    pub activities: std::collections::BTreeMap<String, ActivityAdmission>,
}

/// One activity's overrides (absent: the global value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityAdmission {
    pub required: Option<bool>,
    pub difficulty: Option<u8>,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            required: false,
            difficulty: 0,
            window_ms: 200,
            token_ttl_secs: 60,
            challenge_ttl_secs: 300,
            secret: None,
            activities: Default::default(),
        }
    }
}

/// Longest opening window accepted (the lottery delays the first reservations by up to twice
/// this).
pub const MAX_WINDOW_MS: u64 = 10_000;

impl Settings {
    /// Layers defaults, the file, the environment and the flags, then checks the result.
    pub fn load(cli: &Cli) -> anyhow::Result<Self> {
        let file = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let mut fig = seckill_runtime::config::figment(cli.config.as_deref())?;
        if let Some(v) = &cli.listen {
            fig = fig.merge(Serialized::default("gateway.listen", v));
        }
        if cli.dev {
            fig = fig.merge(Serialized::default("gateway.dev_mode", true));
        }
        if cli.run_migrations {
            fig = fig.merge(Serialized::default("gateway.run_migrations", true));
        }
        if let Some(v) = &cli.redis_url {
            fig = fig.merge(Serialized::default("redis.url", v));
        }
        if let Some(v) = &cli.mysql_url {
            fig = fig.merge(Serialized::default("mysql.url", v));
        }
        let settings: Settings = fig
            .extract()
            .with_context(|| format!("Failed to read settings (file {})", file.display()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings the gateway must not start with.
    pub fn validate(&self) -> anyhow::Result<()> {
        let listen = self.listen_addr()?;
        // Dev mode seeds admin/admin: never reachable from another machine.
        if self.gateway.dev_mode && !listen.ip().is_loopback() {
            bail!(
                "dev mode (admin/admin) only listens on a loopback address, not {listen}: \
                 use gateway.listen 127.0.0.1:<port>, or turn dev mode off"
            );
        }
        match &self.auth.jwt_secret {
            Some(s) if !s.expose().is_empty() => {
                if !self.gateway.dev_mode && s.expose().len() < MIN_SECRET_LEN {
                    bail!("auth.jwt_secret must be at least {MIN_SECRET_LEN} bytes");
                }
            }
            _ if self.gateway.dev_mode => {}
            _ => bail!(
                "auth.jwt_secret is not set: set SECKILL_AUTH__JWT_SECRET (or auth.jwt_secret), \
                 or run with --dev"
            ),
        }
        if self.auth.token_ttl_secs == 0 {
            bail!("auth.token_ttl_secs must be positive");
        }
        for (name, v) in [
            (
                "gateway.request_timeout_ms",
                self.gateway.request_timeout_ms,
            ),
            ("gateway.redis_timeout_ms", self.gateway.redis_timeout_ms),
            ("gateway.mysql_timeout_ms", self.gateway.mysql_timeout_ms),
            ("gateway.body_limit_bytes", self.gateway.body_limit_bytes),
            (
                "gateway.header_read_timeout_ms",
                self.gateway.header_read_timeout_ms,
            ),
            ("gateway.idle_timeout_ms", self.gateway.idle_timeout_ms),
            (
                "gateway.max_connections",
                self.gateway.max_connections as u64,
            ),
            ("gateway.cache_refresh_ms", self.gateway.cache_refresh_ms),
            ("auth.hash_wait_ms", self.auth.hash_wait_ms),
            ("admission.token_ttl_secs", self.admission.token_ttl_secs),
            (
                "admission.challenge_ttl_secs",
                self.admission.challenge_ttl_secs,
            ),
        ] {
            if v == 0 {
                bail!("{name} must be positive");
            }
        }
        let r = &self.rate_limit;
        if r.enabled
            && [
                r.per_user_per_second,
                r.per_user_burst,
                r.per_ip_per_second,
                r.per_ip_burst,
            ]
            .contains(&0)
        {
            bail!("rate_limit values must be positive (or set rate_limit.enabled: false)");
        }
        if r.enabled
            && [
                r.auth_per_ip_per_minute,
                r.auth_per_ip_burst,
                r.auth_per_username_per_minute,
                r.auth_per_username_burst,
            ]
            .contains(&0)
        {
            bail!("rate_limit.auth_* values must be positive (or set rate_limit.enabled: false)");
        }
        if self.gateway.idle_timeout_ms <= self.gateway.request_timeout_ms {
            // The idle timer also runs while a handler works; it must never cut one short.
            bail!("gateway.idle_timeout_ms must be longer than gateway.request_timeout_ms");
        }
        self.trusted_proxies()?;
        let a = &self.admission;
        if let Some(k) = self.admission_secret() {
            if !self.gateway.dev_mode && k.len() < MIN_SECRET_LEN {
                bail!("admission.secret must be at least {MIN_SECRET_LEN} bytes (or unset: derived from auth.jwt_secret)");
            }
        }
        let difficulties =
            std::iter::once(a.difficulty).chain(a.activities.values().filter_map(|o| o.difficulty));
        for d in difficulties {
            if d > seckill_core::admission::MAX_DIFFICULTY {
                bail!(
                    "admission difficulty {d} is above {}",
                    seckill_core::admission::MAX_DIFFICULTY
                );
            }
        }
        for id in a.activities.keys() {
            seckill_core::ActivityId::parse(id)
                .with_context(|| format!("admission.activities: '{id}' is not an activity id"))?;
        }
        if a.window_ms > MAX_WINDOW_MS {
            bail!("admission.window_ms must be at most {MAX_WINDOW_MS}");
        }
        if a.token_ttl_secs * 1000 <= 2 * a.window_ms {
            bail!("admission.token_ttl_secs must outlast the opening lottery (2 x window_ms)");
        }
        Ok(())
    }

    /// `gateway.trusted_proxies` parsed (a bare address is a /32 or /128).
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.gateway
            .trusted_proxies
            .iter()
            .map(|raw| {
                let raw = raw.trim();
                raw.parse::<ipnet::IpNet>()
                    .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("gateway.trusted_proxies: '{raw}' is not a CIDR or an address")
                    })
            })
            .collect()
    }

    /// The key of admission tokens and challenges.
    pub fn admission_secret(&self) -> Option<&str> {
        self.admission
            .secret
            .as_ref()
            .map(Secret::expose)
            .filter(|s| !s.is_empty())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.gateway
            .listen
            .parse()
            .with_context(|| format!("gateway.listen '{}' is not ip:port", self.gateway.listen))
    }

    /// The configured JWT key; `None` only in dev mode (see [`Settings::validate`]), where the
    /// gateway then signs with a random key of its own process.
    pub fn jwt_secret(&self) -> Option<&str> {
        self.auth
            .jwt_secret
            .as_ref()
            .map(Secret::expose)
            .filter(|s| !s.is_empty())
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.redis_timeout_ms)
    }
    pub fn mysql_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.mysql_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.request_timeout_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.header_read_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.idle_timeout_ms)
    }
    pub fn cache_refresh(&self) -> Duration {
        Duration::from_millis(self.gateway.cache_refresh_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret(s: Option<&str>, dev: bool) -> Settings {
        let mut st = Settings::default();
        st.auth.jwt_secret = s.map(Secret::new);
        st.gateway.dev_mode = dev;
        st
    }

    #[test]
    fn refuses_to_start_without_a_secret_outside_dev_mode() {
        assert!(with_secret(None, false).validate().is_err());
        assert!(with_secret(Some(""), false).validate().is_err());
        assert!(with_secret(Some("short"), false).validate().is_err());
        assert!(with_secret(Some(&"k".repeat(32)), false).validate().is_ok());
        let dev = with_secret(None, true);
        assert!(dev.validate().is_ok());
        assert_eq!(
            dev.jwt_secret(),
            None,
            "dev mode without a key: a random one at startup"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let st = with_secret(Some("super-secret-value-super-secret-value"), false);
        assert!(!format!("{st:?}").contains("super-secret"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn file_env_and_flags_layer_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.yaml",
                "gateway:\n  listen: 127.0.0.1:9000\n  sold_out_ttl_ms: 250\n\
                 auth:\n  jwt_secret: from-file-from-file-from-file-0123\n\
                 worker:\n  batch: 10\n",
            )?;
            jail.set_env("SECKILL_GATEWAY__SOLD_OUT_TTL_MS", "300");
            let cli = Cli {
                config: Some("c.yaml".into()),
                listen: Some("127.0.0.1:9001".into()),
                dev: false,
                redis_url: None,
                mysql_url: None,
                run_migrations: false,
            };
            let s = Settings::load(&cli).map_err(|e| e.to_string())?;
            assert_eq!(s.gateway.listen, "127.0.0.1:9001");
            assert_eq!(s.gateway.sold_out_ttl_ms, 300);
            assert_eq!(s.jwt_secret(), Some("from-file-from-file-from-file-0123"));
            Ok(())
        });
    }

    /// `configs/config.yaml` is what operators read: it parses into these settings, passes
    /// the checks (with a key given), and names every key of the gateway's sections.
    #[test]
    fn the_shipped_file_parses_and_documents_every_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/config.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut s: Settings = figment::Figment::new()
            .merge(<figment::providers::Yaml as figment::providers::Format>::string(&text))
            .extract()
            .unwrap();
        s.auth.jwt_secret = Some(Secret::new("k".repeat(32)));
        s.validate().unwrap();
        let yaml: serde_json::Value = serde_json::to_value(Settings::default()).unwrap();
        for section in ["gateway", "auth", "rate_limit", "admission"] {
            for key in yaml[section].as_object().unwrap().keys() {
                assert!(
                    text.contains(&format!("  {key}:")) || text.contains(&format!("  # {key}:")),
                    "configs/config.yaml does not document {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn edge_settings_are_checked() {
        let ok = with_secret(Some(&"k".repeat(32)), false);
        assert!(ok.validate().is_ok());
        type Tweak = Box<dyn Fn(&mut Settings)>;
        let cases: Vec<(&str, Tweak)> = vec![
            (
                "idle_timeout",
                Box::new(|s| s.gateway.idle_timeout_ms = 100),
            ),
            (
                "trusted_proxies",
                Box::new(|s| s.gateway.trusted_proxies = vec!["10.0.0.0/33".into()]),
            ),
            (
                "max_connections",
                Box::new(|s| s.gateway.max_connections = 0),
            ),
            ("difficulty", Box::new(|s| s.admission.difficulty = 29)),
            ("window_ms", Box::new(|s| s.admission.window_ms = 60_000)),
            (
                "token_ttl_secs",
                Box::new(|s| s.admission.token_ttl_secs = 0),
            ),
            (
                "admission.secret",
                Box::new(|s| s.admission.secret = Some(Secret::new("short"))),
            ),
            (
                "not an activity id",
                Box::new(|s| {
                    s.admission
                        .activities
                        .insert("a{b}".into(), ActivityAdmission::default());
                }),
            ),
        ];
        for (want, tweak) in cases {
            let mut s = ok.clone();
            tweak(&mut s);
            let err = s
                .validate()
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(err.contains(want), "{want}: {err:?}");
        }
        let mut s = ok.clone();
        s.gateway.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into(), "192.0.2.7".into()];
        assert_eq!(s.trusted_proxies().map(|v| v.len()).ok(), Some(3));
        assert!(s.auth.hash_slots() >= 1);
    }

    #[test]
    fn dev_mode_is_loopback_only() {
        let mut st = with_secret(None, true);
        for ok in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.1:0"] {
            st.gateway.listen = ok.into();
            assert!(st.validate().is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080"] {
            st.gateway.listen = bad.into();
            let err = st
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("loopback"), "{bad}: {err}");
        }
        st.gateway.dev_mode = false;
        st.auth.jwt_secret = Some(Secret::new("k".repeat(32)));
        st.gateway.listen = "0.0.0.0:8080".into();
        assert!(st.validate().is_ok(), "production may listen anywhere");
    }
}
