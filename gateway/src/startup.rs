//! Building and running the gateway: [`Application::build`] connects, migrates (when asked),
//! seeds the dev admin (dev mode) and binds; [`Application::run_until_stopped`] serves until
//! SIGINT/SIGTERM, then stops accepting and lets in-flight requests finish.

use crate::access_log::{self, AccessLog};
use crate::admission::Admission;
use crate::auth::{Jwt, Role};
use crate::client_ip::ClientIps;
use crate::config::Settings;
use crate::hashing::PasswordWork;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::runtime;
use crate::sold_out::SoldOutFlags;
use crate::state::{AppState, State};
use crate::store::Store;
use anyhow::Context;
use seckill_db::{pool, users, MySqlPool};
use seckill_runtime::config::{connect_error, explain};
use seckill_runtime::Member;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: State,
    clients: Arc<ClientIps>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let metrics = Arc::new(Metrics::new().context("Failed to register metrics")?);
        // As the `gateway` ACL user (redis.users.gateway, else redis.username); URLs only
        // ever reach logs and errors redacted.
        let target = settings.redis.target("gateway")?;
        let store = Store::connect(
            target,
            &settings.redis,
            settings.redis_timeout(),
            metrics.clone(),
            !settings.telemetry.otlp_endpoint.trim().is_empty(),
        )
        .await
        .map_err(|e| connect_error(e, "Redis", &settings.redis.shown(), "redis.tls"))?;
        // The application user: rows only. Migrations run as the schema owner
        // (mysql.migrate_url), on a pool of their own that is closed afterwards.
        let db = pool::connect_lazy_with(
            settings.mysql.connect_options()?,
            settings.mysql.max_connections,
            settings.mysql_timeout(),
        );
        if settings.gateway.run_migrations || settings.gateway.dev_mode {
            let migrator =
                pool::migrator(settings.mysql.migrate_options()?, settings.mysql_timeout());
            let applied = pool::migrate(&migrator).await;
            migrator.close().await;
            applied.map_err(|e| {
                explain(
                    e,
                    format!(
                        "Failed to apply migrations (as {})",
                        settings.mysql.redacted_migrate_url()
                    ),
                    "mysql.tls",
                )
            })?;
        }
        if settings.gateway.dev_mode {
            seed_dev_admin(&db).await?;
        }
        let listen = settings.listen_addr()?;
        let listener = bind(listen, settings.gateway.listen_backlog)
            .with_context(|| format!("Failed to listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let key = jwt_key(&settings);
        let admission_key = settings
            .admission_secret()
            .map_or_else(|| key.clone(), |k| k.as_bytes().to_vec());
        let openapi = crate::openapi_json(&settings)?;
        let clients = Arc::new(ClientIps::new(settings.trusted_proxies()?));
        let state = Arc::new(AppState {
            jwt: Jwt::with_cache(
                &key,
                settings.auth.token_ttl_secs,
                settings.auth.verified_tokens,
            ),
            admission: Admission::new(&admission_key, &settings.admission),
            passwords: PasswordWork::new(
                settings.auth.hash_slots(),
                settings.auth.hash_queue,
                Duration::from_millis(settings.auth.hash_wait_ms),
            ),
            caches: crate::state::Caches::new(settings.cache_refresh()),
            openapi,
            sold_out: SoldOutFlags::new(Duration::from_millis(settings.gateway.sold_out_ttl_ms)),
            limits: RateLimits::new(&settings.rate_limit),
            access_log: AccessLog::new(settings.gateway.access_log_sample_every),
            settings,
            store,
            db,
            metrics,
        });
        Ok(Self {
            listener,
            addr,
            state,
            clients,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn state(&self) -> State {
        self.state.clone()
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) {
        self.run_until(seckill_runtime::shutdown::signal()).await
    }

    /// Serves until `signal` completes, then drains in-flight requests. With etcd configured,
    /// registers this gateway and follows the runtime settings meanwhile (in the background:
    /// serving never waits for etcd); the registration is deleted as soon as `signal` fires.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) {
        let stop = CancellationToken::new();
        let etcd = self.state.settings.etcd.clone();
        let registration = etcd.enabled().then(|| {
            let member =
                Member::this_process("gateway", self.addr.to_string(), env!("CARGO_PKG_VERSION"));
            tokio::spawn(seckill_runtime::etcd::members::register(
                etcd.clone(),
                member,
                etcd.member_ttl(),
                stop.clone(),
            ))
        });
        let follower = tokio::spawn(runtime::follow(self.state.clone(), stop.clone()));
        let summary = tokio::spawn(access_log::summarize(
            self.state.metrics.clone(),
            Duration::from_secs(self.state.settings.gateway.access_log_summary_secs),
            stop.clone(),
        ));
        let pruner = {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    state.limits.prune();
                }
            })
        };
        crate::server::serve(self.listener, self.state, self.clients, {
            let stop = stop.clone();
            async move {
                signal.await;
                tracing::info!("shutdown signal received; draining in-flight requests");
                // Leave the registry first, so nobody is sent here while draining.
                stop.cancel();
            }
        })
        .await;
        pruner.abort();
        stop.cancel();
        if let Some(r) = registration {
            // Deregistration has its own per-call timeouts; this bound is a backstop.
            let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
        }
        let _ = follower.await;
        let _ = summary.await;
    }
}

/// The configured key, or in dev mode without one a random key for this process (tokens do
/// not survive a restart; `make run` passes its stack's own key instead).
fn jwt_key(settings: &Settings) -> Vec<u8> {
    match settings.jwt_secret() {
        Some(k) => k.as_bytes().to_vec(),
        None => {
            tracing::warn!("dev mode without auth.jwt_secret: tokens are signed with a random key of this process");
            (0..32).map(|_| rand::random::<u8>()).collect()
        }
    }
}

async fn seed_dev_admin(db: &MySqlPool) -> anyhow::Result<()> {
    let hash = tokio::task::spawn_blocking(|| seckill_core::auth::hash_password("admin"))
        .await?
        .map_err(|e| anyhow::anyhow!("Failed to hash the dev admin's password: {e}"))?;
    let created = users::insert_if_absent(db, "admin", &hash, Role::Admin.as_str())
        .await
        .context("Failed to seed the dev admin")?;
    if created {
        tracing::warn!("dev mode: created admin user 'admin' with password 'admin'");
    }
    eprintln!("dev mode: admin login is username 'admin', password 'admin'");
    Ok(())
}

/// Listens on `addr` with room for `backlog` connections the kernel completed and the accept
/// loop has not taken yet (the kernel caps it at `net.core.somaxconn`). Tokio's default, 128,
/// overflowed when a crowd connected at once: 500 connections in a burst dropped ~450 SYNs,
/// and a dropped SYN waits a second for its retransmission.
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As TcpListener::bind does: a restarted gateway can listen again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
