//! etcd features end to end with the real binaries: `seckill-gateway` and `seckill-worker`
//! register, `seckill members` lists them, a SIGKILLed member's key expires with its lease, a
//! graceful stop deletes it at once, a per-user rate limit changed in etcd reaches a running
//! gateway without restart, and with etcd gone the gateway still sells.
//!
//! The gateway and worker binaries are taken from the same target directory as `seckill`
//! (`cargo test --workspace` builds them).

use seckill_core::auth::{sign, Claims, Role};
use seckill_testkit::ports::{retry_on_free_port, wait_for_listener};
use seckill_testkit::{mariadb, ChildGuard, Etcd, RedisServer};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "members-test-jwt-secret-0123456789abcdef";
/// Short lease so a crash shows within seconds.
const TTL_SECS: u64 = 3;

fn sibling_bin(name: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_BIN_EXE_seckill"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no target dir"))?;
    let p = dir.join(name);
    anyhow::ensure!(
        p.exists(),
        "{} missing: run `cargo build --workspace` (cargo test --workspace builds it)",
        p.display()
    );
    Ok(p)
}

struct Stack {
    dir: tempfile::TempDir,
    config: PathBuf,
    etcd: Etcd,
    redis: RedisServer,
}

impl Stack {
    fn seckill(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_seckill"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("SECKILL_AUTH__JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .output()?)
    }

    fn spawn(&self, bin: &str, log: &str, args: &[&str]) -> anyhow::Result<ChildGuard> {
        self.spawn_env(bin, log, args, &[])
    }

    fn spawn_env(
        &self,
        bin: &str,
        log: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<ChildGuard> {
        let log = std::fs::File::create(self.dir.path().join(log))?;
        let child = Command::new(sibling_bin(bin)?)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("SECKILL_AUTH__JWT_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(ChildGuard::new(child))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// `seckill members` rows, each as column name -> value (KIND, ID, ADDR, PID,
    /// STARTED, VERSION).
    fn member_rows(&self) -> anyhow::Result<Vec<HashMap<String, String>>> {
        let out = self.seckill(&["members"])?;
        anyhow::ensure!(
            out.status.success(),
            "seckill members failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        anyhow::ensure!(
            header == ["KIND", "ID", "ADDR", "PID", "STARTED", "VERSION"],
            "unexpected header: {text}"
        );
        lines
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                anyhow::ensure!(cols.len() == header.len(), "bad row {l:?} in\n{text}");
                Ok(header
                    .iter()
                    .zip(cols)
                    .map(|(h, c)| (h.to_string(), c.to_owned()))
                    .collect())
            })
            .collect()
    }

    /// `seckill members` rows as (kind, pid).
    fn members(&self) -> anyhow::Result<Vec<(String, u32)>> {
        Ok(self
            .member_rows()?
            .iter()
            .map(|r| (r["KIND"].clone(), r["PID"].parse().unwrap_or(0)))
            .collect())
    }

    /// Starts a gateway listening on a free port, retried on another port when the one
    /// picked was taken before the gateway bound it; returns the port and the process.
    fn spawn_gateway(&self, log: &str, env: &[(&str, &str)]) -> anyhow::Result<(u16, ChildGuard)> {
        retry_on_free_port("seckill-gateway", |port| {
            let listen = format!("127.0.0.1:{port}");
            let mut gw = self.spawn_env("seckill-gateway", log, &["--listen", &listen], env)?;
            wait_for_listener(&mut gw, port, Duration::from_secs(30))
                .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log(log)))?;
            Ok((port, gw))
        })
    }

    fn etcdctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.etcd.endpoint()))
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// Polls `cond` every 100 ms; returns how long it took, or None after `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn has(stack: &Stack, kind: &str, pid: u32) -> bool {
    stack
        .members()
        .map(|m| m.iter().any(|(k, p)| k == kind && *p == pid))
        .unwrap_or(false)
}

fn sigterm(pid: u32) -> anyhow::Result<()> {
    let s = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    anyhow::ensure!(s.success(), "kill -TERM {pid}");
    Ok(())
}

/// One HTTP request over a fresh connection; returns the status code and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status line: {reply:?}"))?;
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((status, body))
}

fn token(user: u64) -> anyhow::Result<String> {
    let now = u64::try_from(chrono::Utc::now().timestamp())?;
    Ok(sign(
        SECRET.as_bytes(),
        &Claims::new(user, Role::User, now, 3600),
    )?)
}

#[test]
fn registry_runtime_settings_and_etcd_outage() -> anyhow::Result<()> {
    let etcd = Etcd::start()?;
    let redis = RedisServer::start()?;
    let db_url = mariadb::shared()?.create_database()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "redis:\n  url: {redis}\nmysql:\n  url: {db}\netcd:\n  endpoints: [{etcd}]\n  \
             member_ttl_secs: {TTL_SECS}\n\
             worker:\n  metrics_addr: 127.0.0.1:0\n  block_ms: 200\n  sweeper:\n    enabled: false\n",
            redis = redis.url(),
            db = db_url,
            etcd = etcd.endpoint(),
        ),
    )?;
    let stack = Stack {
        dir,
        config,
        etcd,
        redis,
    };
    let out = stack.seckill(&["db", "migrate"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 1. Both binaries register; `seckill members` lists exactly them: kind, id, the
    // address each serves on, pid, start time and version.
    let registering = chrono::Utc::now();
    let (gw_port, mut gateway) = stack.spawn_gateway("gateway.log", &[])?;
    let mut worker = stack.spawn("seckill-worker", "worker.log", &[])?;
    let (gw_pid, wk_pid) = (gateway.pid(), worker.pid());
    let listed = wait_until(Duration::from_secs(30), || {
        has(&stack, "gateway", gw_pid) && has(&stack, "worker", wk_pid)
    });
    assert!(
        listed.is_some(),
        "members: {:?}\ngateway log:\n{}\nworker log:\n{}",
        stack.members(),
        stack.log("gateway.log"),
        stack.log("worker.log")
    );
    let rows = stack.member_rows()?;
    assert_eq!(rows.len(), 2, "exactly the two members: {rows:?}");
    for (kind, pid) in [("gateway", gw_pid), ("worker", wk_pid)] {
        let row = rows
            .iter()
            .find(|r| r["KIND"] == kind)
            .unwrap_or_else(|| panic!("no {kind} row: {rows:?}"));
        assert_eq!(row["PID"], pid.to_string(), "{kind}: {row:?}");
        assert!(row["ID"].ends_with(&format!("-{pid}")), "{kind}: {row:?}");
        assert_eq!(row["VERSION"], env!("CARGO_PKG_VERSION"), "{kind}: {row:?}");
        let started = chrono::DateTime::parse_from_rfc3339(&row["STARTED"])?;
        // RFC 3339 to the second: the start lies between this test's spawn (rounded down)
        // and now.
        assert!(
            started.timestamp() >= registering.timestamp() && started <= chrono::Utc::now(),
            "{kind} started at {started}, spawned at {registering}: {row:?}"
        );
    }
    // The addresses are where each one really serves: the gateway's API, the worker's
    // metrics (its configured 127.0.0.1:0 resolved to the bound port).
    let addr = |kind: &str| {
        rows.iter()
            .find(|r| r["KIND"] == kind)
            .map(|r| r["ADDR"].clone())
            .unwrap_or_default()
    };
    assert_eq!(addr("gateway"), format!("127.0.0.1:{gw_port}"));
    let (status, health) = http(gw_port, "GET", "/health", "", "")?;
    assert_eq!(status, 200, "{health}");
    let wk_port: u16 = addr("worker")
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("worker addr {:?}", addr("worker")))?;
    assert_ne!(
        wk_port, 0,
        "the worker registered its configured port, not the bound one"
    );
    assert!(seckill_testkit::ports::listens_on(wk_pid, wk_port));
    let (status, metrics) = http(wk_port, "GET", "/metrics", "", "")?;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("seckill_worker_"), "{metrics}");

    // 2. A runtime change of the per-user limit reaches the running gateway, and back.
    // Unknown activity: the handler answers 404 unless the limiter answers 429 first.
    let body = r#"{"activity_id":"999999","product_id":"1","quantity":1}"#;
    let t1 = token(101)?;
    for _ in 0..3 {
        let (status, b) = http(gw_port, "POST", "/api/v1/seckill", &t1, body)?;
        assert_ne!(
            status, 429,
            "file limits (burst 40) allow 3 quick requests: {b}"
        );
    }
    stack.etcdctl(&["put", "/seckill/config/rate_limit.per_user_per_second", "1"])?;
    stack.etcdctl(&["put", "/seckill/config/rate_limit.per_user_burst", "1"])?;
    let t2 = token(102)?;
    let limited = wait_until(Duration::from_secs(10), || {
        let a = http(gw_port, "POST", "/api/v1/seckill", &t2, body).map(|r| r.0);
        let b = http(gw_port, "POST", "/api/v1/seckill", &t2, body).map(|r| r.0);
        matches!(b, Ok(429)) && a.is_ok()
    });
    assert!(
        limited.is_some(),
        "burst 1 from etcd never gave 429\n{}",
        stack.log("gateway.log")
    );
    eprintln!("etcd rate limit reached the gateway after {limited:?}");
    assert!(stack.log("gateway.log").contains("runtime setting changed"));
    stack.etcdctl(&["del", "/seckill/config/", "--prefix"])?;
    let t3 = token(103)?;
    let restored = wait_until(Duration::from_secs(10), || {
        (0..5).all(|_| matches!(http(gw_port, "POST", "/api/v1/seckill", &t3, body), Ok((s, _)) if s != 429))
    });
    assert!(
        restored.is_some(),
        "deleting the keys did not restore the file's burst"
    );

    // 3. SIGKILL: the worker's key vanishes with its lease (TTL + margin), the gateway stays.
    worker.kill();
    let gone = wait_until(Duration::from_secs(TTL_SECS + 5), || {
        !has(&stack, "worker", wk_pid)
    });
    assert!(
        gone.is_some(),
        "killed worker still listed: {:?}",
        stack.members()
    );
    eprintln!("SIGKILLed worker left the registry after {gone:?}");
    // Nobody deleted it: only the lease can, so not at once.
    assert!(gone >= Some(Duration::from_millis(500)), "{gone:?}");
    assert!(has(&stack, "gateway", gw_pid));

    // 4. Graceful stop deletes the key at once: with a 60 s lease here, a key gone within
    // 3 s was deleted, not expired.
    let long_lease = [("SECKILL_ETCD__MEMBER_TTL_SECS", "60")];
    let mut worker2 = stack.spawn_env("seckill-worker", "worker2.log", &[], &long_lease)?;
    let (_, mut gateway2) = stack.spawn_gateway("gateway2.log", &long_lease)?;
    let (wk2, gw2) = (worker2.pid(), gateway2.pid());
    assert!(
        wait_until(Duration::from_secs(30), || has(&stack, "worker", wk2)
            && has(&stack, "gateway", gw2))
        .is_some(),
        "second pair never registered: {:?}",
        stack.members()
    );
    sigterm(wk2)?;
    sigterm(gw2)?;
    let took = wait_until(Duration::from_secs(TTL_SECS), || {
        !has(&stack, "worker", wk2) && !has(&stack, "gateway", gw2)
    });
    assert!(
        took.is_some(),
        "graceful stop left keys: {:?}",
        stack.members()
    );
    eprintln!("gracefully stopped members left the registry after {took:?}");
    assert!(
        wait_until(Duration::from_secs(15), || !worker2.is_running()
            && !gateway2.is_running())
        .is_some(),
        "processes did not exit after SIGTERM"
    );

    // 5. etcd gone: the gateway still sells.
    let out = stack.seckill(&["activity", "create", "--stock", "5"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let activity = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut stack = stack;
    let interrupted = |s: &Stack| {
        s.log("gateway.log")
            .matches("etcd watch interrupted")
            .count()
    };
    let before = interrupted(&stack);
    stack.etcd.kill();
    // Sell only once the gateway has seen etcd go (its settings watch broke).
    assert!(
        wait_until(Duration::from_secs(15), || interrupted(&stack) > before).is_some(),
        "the gateway never noticed etcd was gone:\n{}",
        stack.log("gateway.log")
    );
    // The product is the one the CLI created for the activity (the module checks it).
    let (status, page) = http(
        gw_port,
        "GET",
        &format!("/api/v1/activities/{activity}"),
        "",
        "",
    )?;
    assert_eq!(status, 200, "{page}");
    let product = serde_json::from_str::<serde_json::Value>(&page)?["data"]["product_id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no product_id in {page}"))?;
    let body = format!(r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":1}}"#);
    let mut sold = Vec::new();
    for user in 200..203u64 {
        let (status, b) = http(gw_port, "POST", "/api/v1/seckill", &token(user)?, &body)?;
        assert_eq!(
            status,
            200,
            "reservation with etcd down: {b}\n{}",
            stack.log("gateway.log")
        );
        let reply: serde_json::Value = serde_json::from_str(&b)?;
        let rid = reply["data"]["reservation_id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no reservation_id in {b}"))?;
        sold.push((rid.to_owned(), user.to_string()));
    }
    assert!(gateway.is_running(), "gateway died with etcd");
    // Those sales really happened in Redis: three units gone to those three users, and the
    // stream holds exactly the ids the gateway answered, under their users.
    let mut con = stack.redis.connection()?;
    let status: HashMap<String, String> = redis::cmd("SECKILL.STATUS")
        .arg(&activity)
        .query::<Vec<String>>(&mut con)?
        .chunks(2)
        .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
        .collect();
    let field = |k: &str| status.get(k).map(String::as_str);
    assert_eq!(
        (field("total"), field("remaining"), field("buyers")),
        (Some("5"), Some("2"), Some("3")),
        "{status:?}"
    );
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(format!("seckill:{{{activity}}}:stream"))
        .arg("-")
        .arg("+")
        .query(&mut con)?;
    let in_stream: Vec<(String, String)> = entries
        .into_iter()
        .map(|(id, fields)| {
            let user = fields
                .chunks(2)
                .find(|kv| kv[0] == "user")
                .and_then(|kv| kv.get(1).cloned())
                .unwrap_or_default();
            (id, user)
        })
        .collect();
    assert_eq!(in_stream, sold, "the stream holds what the gateway sold");
    // `seckill members` says clearly that etcd is unreachable (non-zero exit).
    let out = stack.seckill(&["members"])?;
    assert!(!out.status.success());
    // And a graceful stop still ends promptly although etcd is gone.
    sigterm(gw_pid)?;
    assert!(
        wait_until(Duration::from_secs(15), || !gateway.is_running()).is_some(),
        "gateway did not stop with etcd down"
    );
    Ok(())
}

#[test]
fn members_without_etcd_is_a_clear_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "etcd:\n  endpoints: []\n")?;
    let out = Command::new(env!("CARGO_BIN_EXE_seckill"))
        .arg("--config")
        .arg(&config)
        .arg("members")
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etcd is not configured"), "{err}");
    Ok(())
}
