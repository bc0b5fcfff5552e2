//! 2,000 concurrent logins with wrong passwords against the gateway binary (its own process,
//! so its memory is measured alone): password hashing stays bounded (peak RSS under
//! [`RSS_BOUND_MIB`]), the excess is refused at once with 503/429 and `Retry-After`, and the
//! sale's `POST /api/v1/seckill` keeps a p99 under 50 ms meanwhile.

use crate::helpers::SECRET;
use futures::StreamExt;
use reqwest::StatusCode;
use seckill_gateway::auth::{Jwt, Role};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOGINS: usize = 2_000;
/// argon2 needs ~19 MiB per hash in flight; unbounded, 2,000 logins would ask for gigabytes.
const RSS_BOUND_MIB: u64 = 256;

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_bounded_and_the_sale_goes_on() {
    let redis = tokio::task::spawn_blocking(seckill_testkit::RedisServer::start)
        .await
        .expect("join")
        .expect("redis-server with the module");
    let db = tokio::task::spawn_blocking(|| {
        seckill_testkit::mariadb::shared().and_then(|db| db.create_database())
    })
    .await
    .expect("join")
    .expect("MariaDB");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "# the environment sets everything\n").expect("config");
    let port = seckill_testkit::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_seckill-gateway"))
        .arg("--config")
        .arg(&config)
        .arg("--run-migrations")
        .env("SECKILL_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
        .env("SECKILL_REDIS__URL", redis.url())
        .env("SECKILL_MYSQL__URL", &db)
        .env("SECKILL_AUTH__JWT_SECRET", SECRET)
        // Every client is 127.0.0.1 here: lift the per-client limits, so what bounds the
        // flood is the hashing pool itself (the per-client limits have their own tests).
        .env("SECKILL_RATE_LIMIT__PER_IP_PER_SECOND", "1000000")
        .env("SECKILL_RATE_LIMIT__PER_IP_BURST", "1000000")
        .env("SECKILL_RATE_LIMIT__AUTH_PER_IP_PER_MINUTE", "1000000")
        .env("SECKILL_RATE_LIMIT__AUTH_PER_IP_BURST", "1000000")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("gateway binary");
    let pid = child.id();
    let _gateway = seckill_testkit::ChildGuard::new(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis
        .cli(&["SECKILL.CREATE", "flood", "STOCK", "1000000"])
        .expect("preheat");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let rss_before = status_kib(pid, "VmRSS:");

    // The sale, measured while the flood runs: 4 buyers in a loop, each request a new user.
    let flooding = Arc::new(AtomicBool::new(true));
    let buyers: Vec<_> = (0..4)
        .map(|b| {
            let (client, base, flooding) = (client.clone(), base.clone(), flooding.clone());
            let jwt = Jwt::new(SECRET.as_bytes(), 3600);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while flooding.load(Ordering::Relaxed) {
                    let (token, _) = jwt.issue(&format!("b{b}-{i}"), Role::User, now).expect("jwt");
                    i += 1;
                    let started = Instant::now();
                    let r = client
                        .post(format!("{base}/api/v1/seckill"))
                        .bearer_auth(token)
                        .json(&serde_json::json!({"activity_id":"flood","product_id":"p","quantity":1}))
                        .send()
                        .await
                        .expect("reserve");
                    latencies.push((started, started.elapsed()));
                    assert_eq!(r.status(), StatusCode::OK);
                }
                latencies
            })
        })
        .collect();

    // The flood: 2,000 logins at once, each on its own connection.
    let flood_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let started = Instant::now();
    let replies: Vec<(StatusCode, bool)> = futures::stream::iter(0..LOGINS)
        .map(|i| {
            let (client, base) = (flood_client.clone(), base.clone());
            async move {
                let r = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&serde_json::json!({"username": format!("nobody{i}"), "password": "wrong-password"}))
                    .send()
                    .await
                    .expect("login");
                (r.status(), r.headers().contains_key("retry-after"))
            }
        })
        .buffer_unordered(LOGINS)
        .collect()
        .await;
    let flood_took = started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let mut timed: Vec<(Instant, Duration)> = Vec::new();
    for b in buyers {
        timed.extend(b.await.expect("buyer"));
    }
    if std::env::var_os("SECKILL_TRACE_FLOOD").is_some() {
        let mut slow: Vec<_> = timed
            .iter()
            .filter(|(_, l)| *l > Duration::from_millis(20))
            .map(|(at, l)| {
                (
                    at.saturating_duration_since(started).as_millis(),
                    l.as_millis(),
                )
            })
            .collect();
        slow.sort();
        eprintln!("slow reservations (ms since the flood began, ms): {slow:?}");
        let m = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        for l in m
            .lines()
            .filter(|l| l.contains("route=\"seckill\"") && l.contains("duration"))
        {
            eprintln!("{l}");
        }
    }
    let mut latencies: Vec<Duration> = timed.into_iter().map(|(_, l)| l).collect();
    let peak_mib = status_kib(pid, "VmHWM:") / 1024;

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (s, _) in &replies {
        *by_status.entry(s.as_u16()).or_default() += 1;
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "{LOGINS} logins in {flood_took:?}: {by_status:?}; gateway RSS {} MiB before, peak {peak_mib} MiB; \
         {} reservations meanwhile, p50 {:?}, p99 {p99:?}",
        rss_before / 1024,
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    let refused = replies
        .iter()
        .filter(|(s, _)| {
            *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::TOO_MANY_REQUESTS
        })
        .count();
    assert!(
        refused > LOGINS / 2,
        "the excess must be refused: {by_status:?}"
    );
    assert!(
        replies
            .iter()
            .all(|(s, retry)| *s == StatusCode::UNAUTHORIZED || *retry),
        "every refusal says when to retry: {by_status:?}"
    );
    assert!(
        replies
            .iter()
            .all(|(s, _)| matches!(s.as_u16(), 401 | 429 | 503)),
        "{by_status:?}"
    );
    assert!(peak_mib < RSS_BOUND_MIB, "peak RSS {peak_mib} MiB");
    assert!(
        latencies.len() >= 50,
        "too few reservations measured: {}",
        latencies.len()
    );
    assert!(
        p99 < Duration::from_millis(50),
        "sale p99 {p99:?} during the flood"
    );
}
