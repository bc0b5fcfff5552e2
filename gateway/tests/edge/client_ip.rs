//! Per-client limits: behind a trusted proxy each forwarded client has its own bucket; a
//! forged `X-Forwarded-For` (from an untrusted peer, or left of the proxy's own entry) is
//! ignored; the addresses of one IPv6 /64 are one client (end to end over `::1`).

use crate::helpers::spawn_with;
use reqwest::StatusCode;

const BURST: u32 = 5;

/// `GET /health` as `forwarded_for` (through the test's "proxy", the loopback peer).
async fn as_client(app: &crate::helpers::TestApp, forwarded_for: &str) -> StatusCode {
    app.client
        .get(app.url("/health"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("request")
        .status()
}

/// Requests until the first 429; how many passed.
async fn passed_before_limit(app: &crate::helpers::TestApp, forwarded_for: &str) -> u32 {
    for n in 0..(BURST * 4) {
        if as_client(app, forwarded_for).await == StatusCode::TOO_MANY_REQUESTS {
            return n;
        }
    }
    BURST * 4
}

fn limited(s: &mut seckill_gateway::config::Settings) {
    // A low rate, so the bucket does not refill noticeably during the test.
    s.rate_limit.per_ip_per_second = 1;
    s.rate_limit.per_ip_burst = BURST;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket() {
    let app = spawn_with(false, |s| {
        limited(s);
        s.gateway.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let a = passed_before_limit(&app, "198.51.100.1").await;
    assert!((BURST..=BURST + 1).contains(&a), "client A passed {a}");
    // Another client behind the same proxy is not affected...
    assert_eq!(as_client(&app, "198.51.100.2").await, StatusCode::OK);
    // ...and client A cannot escape its bucket by writing another address on the left.
    assert_eq!(
        as_client(&app, "203.0.113.77, 198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxy: the header is the client's own words.
    let app = spawn_with(false, limited).await;
    let mut ok = 0;
    for i in 0..(BURST * 3) {
        if as_client(&app, &format!("198.51.100.{i}")).await == StatusCode::OK {
            ok += 1;
        }
    }
    assert!(
        (BURST..=BURST + 1).contains(&ok),
        "{ok} requests passed: the forged addresses were believed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_addresses_of_one_ipv6_64_share_one_bucket() {
    // Listening on ::1, the proxy being ::1 itself; 1,000 clients of 2001:db8:1:2::/64.
    let app = spawn_with(false, |s| {
        s.gateway.listen = "[::1]:0".into();
        s.gateway.trusted_proxies = vec!["::1".into()];
        s.rate_limit.per_ip_per_second = 1;
        s.rate_limit.per_ip_burst = 500;
    })
    .await;
    assert!(app.addr.is_ipv6());
    let mut ok = 0;
    for i in 0..1_000u32 {
        let addr = format!("2001:db8:1:2:{:x}:{:x}::{:x}", i * 7, i % 13, i);
        if as_client(&app, &addr).await == StatusCode::OK {
            ok += 1;
        }
    }
    // One bucket of 500 (plus what refills at 1/s while the test runs).
    assert!((500..=520).contains(&ok), "{ok} of 1,000 passed");
    // The next /64 is another client.
    assert_eq!(as_client(&app, "2001:db8:1:3::1").await, StatusCode::OK);

    // Without a trusted proxy, every request from ::1 is the same client too.
    let direct = spawn_with(false, |s| {
        s.gateway.listen = "[::1]:0".into();
        limited(s);
    })
    .await;
    let n = passed_before_limit(&direct, "2001:db8:9::1").await;
    assert!((BURST..=BURST + 1).contains(&n), "{n}");
}
