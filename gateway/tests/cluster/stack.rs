//! A whole stack on a private Redis Cluster: 3 primaries + 3 replicas (the module on each,
//! `cluster-node-timeout` 1 s, `cluster-require-full-coverage no`), a fresh MariaDB database,
//! the gateway in-process configured with the cluster's seed nodes, the worker binary and
//! the CLI binary (`seckill audit`) configured the same way through `SECKILL_*` variables.

use reqwest::StatusCode;
use seckill_client::{shards, RedisConn, Target, Topology};
use seckill_core::ActivityId;
use seckill_gateway::auth::{Jwt, Role};
use seckill_gateway::config::{Secret, Settings};
use seckill_gateway::startup::Application;
use seckill_testkit::{ChildGuard, RedisCluster};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub(crate) const SECRET: &str = "integration-test-jwt-secret-0123456789";
pub(crate) const GROUP: &str = "seckill-orders";

/// Each binary logs in to every node as its own ACL user (the repository's
/// `redis-users.conf`), as shipped: a cluster command a user lacks fails these tests.
const GATEWAY_USER: (&str, &str) = ("seckill-gateway", "cluster-test-gateway");
const WORKER_USER: (&str, &str) = ("seckill-worker", "cluster-test-worker");
const CLI_USER: (&str, &str) = ("seckill-cli", "cluster-test-cli");

/// `redis-users.conf` rendered by `scripts/redis-users.sh` with the users above, in dev mode
/// (`default` stays open for the harness's own calls and the replicas).
fn render_acl_users(dir: &std::path::Path) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = dir.join("redis-users.conf");
    let status = std::process::Command::new("sh")
        .arg(root.join("scripts/redis-users.sh"))
        .arg(root.join("redis-users.conf"))
        .arg(&out)
        .arg("dev")
        .env("SECKILL_REDIS_GATEWAY_PASSWORD", GATEWAY_USER.1)
        .env("SECKILL_REDIS_WORKER_PASSWORD", WORKER_USER.1)
        .env("SECKILL_REDIS_CLI_PASSWORD", CLI_USER.1)
        .env("SECKILL_REDIS_EXPORTER_PASSWORD", "cluster-test-exporter")
        .env("SECKILL_REDIS_ADMIN_PASSWORD", "cluster-test-admin")
        .status()
        .expect("sh scripts/redis-users.sh");
    assert!(status.success(), "redis-users.sh failed");
    out
}

pub(crate) struct Stack {
    _acl_dir: tempfile::TempDir,
    /// Locked for the harness's own (blocking) calls: kill, restart, CLUSTER queries.
    pub cluster: std::sync::Mutex<RedisCluster>,
    pub db_url: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub target: Target,
    pub min_replicas: u32,
    jwt: Jwt,
    stop: Option<oneshot::Sender<()>>,
    worker: Option<ChildGuard>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.worker.take();
    }
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub(crate) fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// The cluster, a database, the gateway (`min_replicas`), the worker (same setting).
pub(crate) async fn start(min_replicas: u32) -> Stack {
    seckill_gateway::telemetry::init("warn");
    let acl_dir = tempfile::tempdir().expect("temp dir");
    let users = render_acl_users(acl_dir.path());
    let cluster = tokio::task::spawn_blocking(move || {
        RedisCluster::start_with(seckill_testkit::ClusterOptions {
            args: vec!["--include".into(), users.display().to_string()],
            ..Default::default()
        })
    })
    .await
    .expect("join")
    .expect("a 3+3 Redis Cluster with the module (cargo build -p seckill-module)");
    let db_url = tokio::task::spawn_blocking(|| {
        seckill_testkit::mariadb::shared().and_then(|db| db.create_database())
    })
    .await
    .expect("join")
    .expect("MariaDB");
    let mut settings = Settings::default();
    settings.gateway.listen = "127.0.0.1:0".into();
    settings.gateway.run_migrations = true;
    settings.auth.jwt_secret = Some(Secret::new(SECRET));
    // Nothing listens there: every command must go through the cluster.
    settings.redis.url = format!("redis://127.0.0.1:{}/", seckill_testkit::free_port());
    settings.redis.cluster_nodes = cluster.seeds();
    settings.redis.min_replicas = min_replicas;
    settings.redis.replica_ack_timeout_ms = 200;
    settings.redis.username = GATEWAY_USER.0.into();
    settings.redis.password = Secret::new(GATEWAY_USER.1);
    settings.mysql.url = Secret::new(db_url.clone());
    settings.rate_limit.enabled = false;
    let target = Target::new(&settings.redis.url, &settings.redis.cluster_nodes);
    let app = Application::build(settings)
        .await
        .expect("the gateway builds on the cluster");
    seed_admin(&db_url).await;
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let mut stack = Stack {
        _acl_dir: acl_dir,
        cluster: std::sync::Mutex::new(cluster),
        db_url,
        addr,
        http,
        target,
        min_replicas,
        jwt: Jwt::new(SECRET.as_bytes(), 3600),
        stop: Some(tx),
        worker: None,
    };
    stack.start_worker();
    stack
}

impl Stack {
    /// The `SECKILL_*` variables that point a binary at this stack, logged in as `user`.
    pub(crate) fn env_as(&self, user: (&str, &str)) -> Vec<(String, String)> {
        vec![
            ("SECKILL_REDIS__USERNAME".into(), user.0.into()),
            ("SECKILL_REDIS__PASSWORD".into(), user.1.into()),
            (
                "SECKILL_REDIS__URL".into(),
                format!("redis://127.0.0.1:{}/", seckill_testkit::free_port()),
            ),
            (
                "SECKILL_REDIS__CLUSTER_NODES".into(),
                format!("[{}]", self.cluster().seeds().join(",")),
            ),
            (
                "SECKILL_REDIS__MIN_REPLICAS".into(),
                self.min_replicas.to_string(),
            ),
            ("SECKILL_REDIS__REPLICA_ACK_TIMEOUT_MS".into(), "200".into()),
            ("SECKILL_MYSQL__URL".into(), self.db_url.clone()),
        ]
    }

    /// The worker binary: fast polling, entries of a lost consumer claimed after 1.5 s.
    pub(crate) fn start_worker(&mut self) {
        let bin = seckill_testkit::bin_path("seckill-worker").expect("worker binary");
        let child = std::process::Command::new(bin)
            .envs(self.env_as(WORKER_USER))
            .env("SECKILL_WORKER__METRICS_ADDR", "")
            .env("SECKILL_WORKER__BLOCK_MS", "200")
            .env("SECKILL_WORKER__DISCOVER_INTERVAL_MS", "200")
            .env("SECKILL_WORKER__CLAIM_IDLE_MS", "1500")
            .env("SECKILL_WORKER__CLAIM_INTERVAL_MS", "500")
            .env("SECKILL_WORKER__BACKOFF_MAX_MS", "500")
            .env("SECKILL_WORKER__SWEEPER__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("worker starts");
        self.worker = Some(ChildGuard::new(child));
    }

    pub(crate) fn cluster(&self) -> std::sync::MutexGuard<'_, RedisCluster> {
        match self.cluster.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
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

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        match req.send().await {
            Ok(res) => {
                let status = res.status();
                let bytes = res.bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Reply { status, body }
            }
            Err(e) => panic!("the gateway did not answer: {e}"),
        }
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: String) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/json")
                .bearer_auth(token)
                .body(body),
        )
        .await
    }

    /// Creates an activity through the admin API (MySQL row, preheated into the cluster);
    /// returns its id and product.
    pub(crate) async fn create_activity(&self, stock: u64) -> (String, String) {
        let body = format!(
            r#"{{"title":"sale","product_name":"phone","price_cents":999,"stock":{stock}}}"#
        );
        let r = self
            .post(
                "/api/v1/admin/activities",
                &self.token("1", Role::Admin),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.data()["id"].as_u64().expect("id").to_string();
        let product = r.data()["product_id"]
            .as_u64()
            .map(|p| p.to_string())
            .or_else(|| r.data()["product_id"].as_str().map(str::to_owned))
            .expect("product id");
        (id, product)
    }

    pub(crate) async fn reserve(&self, user: &str, activity: &str, product: &str) -> Reply {
        let body =
            format!(r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":1}}"#);
        self.post("/api/v1/seckill", &self.token(user, Role::User), body)
            .await
    }

    /// A routed connection to the cluster (each command to its activity's node).
    pub(crate) async fn redis(&self) -> RedisConn {
        seckill_client::cluster::connect(&self.target, Duration::from_secs(5))
            .await
            .expect("cluster connection")
    }

    pub(crate) async fn topology(&self) -> Topology {
        self.redis()
            .await
            .topology(&self.target)
            .await
            .expect("CLUSTER NODES")
    }

    /// The reservation ids and users in an activity's stream on the node that serves it.
    pub(crate) async fn stream(&self, activity: &str) -> Vec<(String, String)> {
        let mut conn = self.redis().await;
        let key = seckill_core::keys::stream(&act(activity));
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

    pub(crate) async fn status(&self, activity: &str) -> seckill_client::Status {
        let mut conn = self.redis().await;
        seckill_client::sale::status(&mut conn, &act(activity))
            .await
            .expect("SECKILL.STATUS")
            .expect("the activity exists")
    }

    pub(crate) async fn pool(&self) -> sqlx::MySqlPool {
        sqlx::MySqlPool::connect(&self.db_url).await.expect("mysql")
    }

    /// `(reservation id, user)` of every order of `activity`.
    pub(crate) async fn orders(&self, activity: &str) -> BTreeSet<(String, String)> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT reservation_id, user_id FROM orders WHERE activity_id = ?")
                .bind(activity.parse::<u64>().expect("numeric"))
                .fetch_all(&self.pool().await)
                .await
                .expect("orders");
        rows.into_iter().collect()
    }

    /// Waits until every stream on every primary is read and acknowledged (lag 0, nothing
    /// pending) and holds `expected` entries in all.
    pub(crate) async fn wait_drained(&self, expected: Option<usize>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let topology = self.topology().await;
            let views =
                shards::shard_views(&self.target, &topology, GROUP, Duration::from_secs(5)).await;
            let rows: Vec<_> = views.iter().flat_map(|v| v.streams.iter()).collect();
            let entries: u64 = rows.iter().map(|r| r.length).sum();
            let done = views.iter().all(|v| v.error.is_none())
                && !rows.is_empty()
                && rows.iter().all(|r| r.lag == Some(0) && r.pending == 0)
                && expected.is_none_or(|n| entries as usize == n);
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not drained within {timeout:?}: {:?}",
                views
                    .iter()
                    .map(|v| (&v.shard.primary, &v.error, &v.streams))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `seckill audit <activity>` (the CLI binary): its exit status and output.
    pub(crate) async fn audit(&self, activity: &str) -> (bool, String) {
        let bin = seckill_testkit::bin_path("seckill").expect("CLI binary");
        let out = tokio::process::Command::new(bin)
            .envs(self.env_as(CLI_USER))
            .arg("audit")
            .arg(activity)
            .output()
            .await
            .expect("seckill audit runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `seckill lag` (the CLI binary).
    pub(crate) async fn lag(&self) -> (bool, String) {
        let bin = seckill_testkit::bin_path("seckill").expect("CLI binary");
        let out = tokio::process::Command::new(bin)
            .envs(self.env_as(CLI_USER))
            .arg("lag")
            .output()
            .await
            .expect("seckill lag runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The port of the primary that serves `activity`.
    pub(crate) async fn primary_port(&self, activity: &str) -> u16 {
        let t = self.topology().await;
        let node = t.primary_for(&act(activity)).expect("served").to_owned();
        node.rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("host:port")
    }
}

pub(crate) fn act(id: &str) -> ActivityId {
    ActivityId::parse(id).expect("valid id")
}

/// User 1, the admin of `create_activity`'s token: admin routes check the role in the
/// database.
async fn seed_admin(db_url: &str) {
    let pool = sqlx::MySqlPool::connect(db_url).await.expect("mysql");
    sqlx::query(
        "INSERT IGNORE INTO users (id, username, password_hash, role) \
         VALUES (1, 'test-admin', 'not-a-hash', 'admin')",
    )
    .execute(&pool)
    .await
    .expect("seed the test admin");
    pool.close().await;
}
