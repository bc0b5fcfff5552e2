//! `spawn_app()` and request helpers.

use reqwest::StatusCode;
use seckill_gateway::auth::{Jwt, Role};
use seckill_gateway::config::{Secret, Settings};
use seckill_gateway::startup::Application;
use seckill_gateway::state::State;
use seckill_testkit::RedisServer;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub(crate) const SECRET: &str = "integration-test-jwt-secret-0123456789";

pub(crate) struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub redis: RedisServer,
    /// Fresh database URL, when the app was started with MySQL.
    pub db_url: Option<String>,
    pub state: State,
    jwt: Jwt,
    stop: Option<oneshot::Sender<()>>,
    /// The worker binary, killed when the test app drops.
    worker: Option<seckill_testkit::ChildGuard>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.worker.take();
    }
}

/// Every table's rows and every Redis key's content (see [`TestApp::snapshot`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub tables: std::collections::BTreeMap<String, Vec<String>>,
    pub keys: std::collections::BTreeMap<String, Vec<u8>>,
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The envelope's `error` machine code.
    pub(crate) fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub(crate) fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// Asserts the contract's envelope shape.
    pub(crate) fn assert_envelope(&self) {
        assert_eq!(
            self.body["code"].as_u64(),
            Some(u64::from(self.status.as_u16())),
            "code must equal the HTTP status: {}",
            self.body
        );
        assert!(self.body["message"].is_string(), "{}", self.body);
        assert!(self.body.get("data").is_some(), "{}", self.body);
        if !self.status.is_success() {
            assert!(
                self.body["error"].is_string(),
                "refusal without error: {}",
                self.body
            );
        }
    }
}

/// A gateway with Redis and MySQL (migrated).
pub(crate) async fn spawn_app() -> TestApp {
    spawn_with(true, |_| {}).await
}

/// A gateway with Redis only (MySQL points at a closed port; the hot path never needs it).
pub(crate) async fn spawn_redis_only() -> TestApp {
    spawn_with(false, |_| {}).await
}

pub(crate) async fn spawn_with(with_db: bool, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    seckill_gateway::telemetry::init("warn");
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("join")
        .expect("redis-server with the module (run cargo build -p seckill-module)");
    let db_url = if with_db {
        let url = tokio::task::spawn_blocking(|| {
            seckill_testkit::mariadb::shared().and_then(|db| db.create_database())
        })
        .await
        .expect("join")
        .expect("MariaDB");
        Some(url)
    } else {
        None
    };
    let mut settings = Settings::default();
    settings.gateway.listen = "127.0.0.1:0".into();
    settings.gateway.run_migrations = with_db;
    settings.auth.jwt_secret = Some(Secret::new(SECRET));
    settings.redis.url = redis.url();
    settings.mysql.url = Secret::new(db_url.clone().unwrap_or_else(|| {
        format!(
            "mysql://root@127.0.0.1:{}/none",
            seckill_testkit::free_port()
        )
    }));
    // Every test client is 127.0.0.1: only the per-user limit is meaningful here.
    settings.rate_limit.per_ip_per_second = 1_000_000;
    settings.rate_limit.per_ip_burst = 1_000_000;
    tweak(&mut settings);
    if let Some(url) = &db_url {
        seed_admin(url, settings.gateway.dev_mode).await;
    }
    let app = Application::build(settings).await.expect("gateway builds");
    let addr = app.local_addr();
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    TestApp {
        addr,
        client,
        redis,
        db_url,
        state,
        jwt: Jwt::new(SECRET.as_bytes(), 3600),
        stop: Some(tx),
        worker: None,
    }
}

/// `admin_token()` is user 1 with the admin role; admin routes check the role in the
/// database, so user 1 must exist as an admin (dev mode seeds `admin` as user 1 itself).
async fn seed_admin(url: &str, dev_mode: bool) {
    if dev_mode {
        return;
    }
    let pool = sqlx::MySqlPool::connect(url).await.expect("mysql");
    seckill_db::pool::migrate(&pool).await.expect("migrations");
    sqlx::query(
        "INSERT IGNORE INTO users (id, username, password_hash, role) \
         VALUES (1, 'test-admin', 'not-a-hash', 'admin')",
    )
    .execute(&pool)
    .await
    .expect("seed the test admin");
}

impl TestApp {
    /// Polls `check` every 100 ms until it holds or `timeout` passes; whether it held.
    /// (Used by the edge tests, which share these helpers.)
    #[allow(dead_code)]
    pub(crate) async fn eventually<F, Fut>(&self, timeout: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn token(&self, user: &str, role: Role) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        self.jwt.issue(user, role, now).expect("token").0
    }

    pub(crate) fn admin_token(&self) -> String {
        self.token("1", Role::Admin)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request");
        let status = res.status();
        let bytes = res.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// Announces a body of `len` bytes but sends only its first KiB, then reads the reply: a
    /// server that refuses by Content-Length answers without reading the rest (what a real
    /// client sees; a client still streaming 10 MB may instead see the connection reset).
    pub(crate) async fn post_oversized(&self, path: &str, token: &str, len: usize) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        sock.write_all(head.as_bytes()).await.expect("write head");
        let _ = sock.write_all(&vec![b' '; 1024]).await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .expect("status line");
        let body = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// Buys like the storefront does: naming the product the activity sells (any product for
    /// an activity preheated without one, or one that does not exist).
    pub(crate) async fn reserve(&self, token: &str, activity: &str, qty: i64) -> Reply {
        let product = self
            .product_of(activity)
            .await
            .unwrap_or_else(|| "p1".into());
        let body =
            format!(r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":{qty}}}"#);
        self.post("/api/v1/seckill", Some(token), body).await
    }

    /// The product an activity sells per `SECKILL.STATUS`; `None` when it names none or
    /// Redis cannot say (tests of a dead Redis reserve too).
    async fn product_of(&self, activity: &str) -> Option<String> {
        let mut conn = self
            .redis
            .client()
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()?;
        let v: redis::Value = redis::cmd("SECKILL.STATUS")
            .arg(activity)
            .query_async(&mut conn)
            .await
            .ok()?;
        let redis::Value::Array(items) = v else {
            return None;
        };
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            redis::Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        items.chunks(2).find_map(|kv| match kv {
            [k, p] if text(k).as_deref() == Some("product") => text(p).filter(|p| !p.is_empty()),
            _ => None,
        })
    }

    pub(crate) async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        self.redis
            .client()
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    pub(crate) async fn redis(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let mut conn = self.redis_conn().await;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await
    }

    /// `SECKILL.STATUS` as a field -> value map of strings.
    pub(crate) async fn status(&self, activity: &str) -> std::collections::HashMap<String, String> {
        let v = self
            .redis(&["SECKILL.STATUS", activity])
            .await
            .expect("status");
        let mut out = std::collections::HashMap::new();
        if let redis::Value::Array(items) = v {
            for pair in items.chunks(2) {
                let s = |v: &redis::Value| match v {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    redis::Value::SimpleString(s) => s.clone(),
                    redis::Value::Int(i) => i.to_string(),
                    other => format!("{other:?}"),
                };
                out.insert(s(&pair[0]), s(&pair[1]));
            }
        }
        out
    }

    pub(crate) async fn xlen(&self, activity: &str) -> i64 {
        let key = format!("seckill:{{{activity}}}:stream");
        match self.redis(&["XLEN", &key]).await {
            Ok(redis::Value::Int(n)) => n,
            other => panic!("XLEN: {other:?}"),
        }
    }

    /// Creates an activity in Redis only (the hot path does not need MySQL).
    pub(crate) async fn preheat(&self, activity: &str, extra: &[&str]) {
        let mut args = vec!["SECKILL.CREATE", activity];
        args.extend_from_slice(extra);
        self.redis(&args).await.expect("SECKILL.CREATE");
    }

    /// Creates an activity through the admin API; returns its id.
    pub(crate) async fn create_activity(&self, stock: u64, extra: &str) -> String {
        let body = format!(
            r#"{{"title":"sale","product_name":"phone","price_cents":999,"stock":{stock}{extra}}}"#
        );
        let r = self
            .post("/api/v1/admin/activities", Some(&self.admin_token()), body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.data()["id"].as_u64().expect("id").to_string()
    }

    pub(crate) async fn pool(&self) -> sqlx::MySqlPool {
        sqlx::MySqlPool::connect(self.db_url.as_deref().expect("app without MySQL"))
            .await
            .expect("mysql")
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        let pool = self.pool().await;
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&pool)
            .await
            .expect("count")
    }

    /// Starts the real order worker binary against the same Redis and database.
    pub(crate) async fn start_worker(&mut self) {
        let bin = seckill_testkit::bin_path("seckill-worker").expect("worker binary");
        let child = std::process::Command::new(bin)
            .env("SECKILL_REDIS__URL", self.redis.url())
            .env(
                "SECKILL_MYSQL__URL",
                self.db_url.clone().expect("app without MySQL"),
            )
            .env("SECKILL_WORKER__METRICS_ADDR", "")
            .env("SECKILL_WORKER__BLOCK_MS", "200")
            .env("SECKILL_WORKER__DISCOVER_INTERVAL_MS", "200")
            .env("SECKILL_WORKER__SWEEPER__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("worker starts");
        self.worker = Some(seckill_testkit::ChildGuard::new(child));
    }

    /// Everything a request could change: every table's rows (sorted) and every Redis key
    /// (its `DUMP`; a stream's entries and groups), for "changes nothing" checks.
    pub(crate) async fn snapshot(&self) -> Snapshot {
        let mut keys = std::collections::BTreeMap::new();
        let mut conn = self.redis_conn().await;
        let names: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        for key in names {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("TYPE");
            let value = if kind == "stream" {
                // A stream's DUMP carries its consumers' last-seen times, which a running
                // worker's idle reads may bump (Redis 7.2+): compare the entries and each
                // group's delivery state instead.
                let entries = seckill_client::streams::read_stream(&mut conn, &key)
                    .await
                    .expect("XRANGE");
                let groups: Vec<std::collections::HashMap<String, redis::Value>> =
                    redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("XINFO GROUPS");
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        ["name", "pending", "last-delivered-id", "entries-read"]
                            .map(|f| format!("{f}={:?}", g.get(f)))
                            .join(" ")
                    })
                    .collect();
                format!("{entries:?} {groups:?}").into_bytes()
            } else {
                redis::cmd("DUMP")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("DUMP")
            };
            keys.insert(key, value);
        }
        let db = self
            .db_url
            .as_deref()
            .and_then(|u| u.rsplit('/').next())
            .expect("app without MySQL")
            .to_owned();
        let tables = tokio::task::spawn_blocking(move || {
            let server = seckill_testkit::mariadb::shared()?;
            let mut tables = std::collections::BTreeMap::new();
            let names = server.sql(&format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'"
            ))?;
            for table in names.lines().map(str::trim).filter(|t| !t.is_empty()) {
                let dump = server.sql(&format!("SELECT * FROM `{db}`.`{table}`"))?;
                let mut rows: Vec<String> = dump.lines().map(str::to_owned).collect();
                rows.sort();
                tables.insert(table.to_owned(), rows);
            }
            anyhow::Ok(tables)
        })
        .await
        .expect("join")
        .expect("MySQL rows");
        assert!(tables.contains_key("orders"), "no tables: {tables:?}");
        Snapshot { tables, keys }
    }

    /// Every entry of an activity's stream as (reservation id, user), in stream order.
    pub(crate) async fn stream_entries(&self, activity: &str) -> Vec<(String, String)> {
        let mut conn = self.redis_conn().await;
        let key = format!("seckill:{{{activity}}}:stream");
        seckill_client::streams::read_stream(&mut conn, &key)
            .await
            .expect("XRANGE")
            .into_iter()
            .map(|(id, fields)| {
                let user = fields
                    .iter()
                    .find(|(k, _)| k.as_slice() == b"user")
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                (id, user)
            })
            .collect()
    }

    /// Every order row as (activity, reservation id, user), sorted.
    pub(crate) async fn orders(&self) -> Vec<(u64, String, String)> {
        let mut rows: Vec<(u64, String, String)> =
            sqlx::query_as("SELECT activity_id, reservation_id, user_id FROM orders")
                .fetch_all(&self.pool().await)
                .await
                .expect("orders");
        rows.sort();
        rows
    }

    /// Waits until the worker's group has read and acknowledged every entry of every stream
    /// (lag 0 and nothing pending), so MySQL holds everything it ever will; panics with the
    /// last lag rows after `timeout`.
    pub(crate) async fn wait_drained(&self, timeout: Duration) {
        let mut conn = self.redis_conn().await;
        let deadline = Instant::now() + timeout;
        loop {
            let lags = seckill_client::lag::all_lags(&mut conn, "seckill-orders")
                .await
                .expect("lag");
            if !lags.is_empty() && lags.iter().all(|l| l.lag == Some(0) && l.pending == 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not drain within {timeout:?}: {lags:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
