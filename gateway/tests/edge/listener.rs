//! The listener's limits: slow-header clients are cut off while the sale goes on,
//! connections over the cap are refused at once (not queued), a trickling body gets 408.

use crate::helpers::spawn_with;
use reqwest::StatusCode;
use seckill_gateway::auth::Role;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW_CLIENTS: usize = 500;

/// Sends `GET /health ...` one byte a second until the server closes the connection; returns
/// how long the connection lived (None: still open at `give_up`).
async fn slow_client(addr: std::net::SocketAddr, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sock = TcpStream::connect(addr).await.ok()?;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut buf = [0u8; 512];
    for byte in request.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if sock.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        // A second between bytes, watching for the server closing on us meanwhile.
        match tokio::time::timeout(Duration::from_secs(1), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // a reply (a 408 page): keep reading until the close
            Err(_) => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_and_the_sale_goes_on() {
    let app = spawn_with(false, |s| {
        s.gateway.header_read_timeout_ms = 2_000;
        s.gateway.max_connections = 2 * SLOW_CLIENTS;
    })
    .await;
    app.preheat("busy", &["STOCK", "100000"]).await;
    let addr = app.addr;
    let give_up = Duration::from_secs(20);
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(slow_client(addr, give_up)))
        .collect();

    // Meanwhile the sale goes on: 200 buyers, one after the other, while the slow clients
    // hold their connections.
    let mut worst = Duration::ZERO;
    for i in 0..200 {
        let t = app.token(&format!("buyer{i}"), Role::User);
        let started = Instant::now();
        let r = app.reserve(&t, "busy", 1).await;
        worst = worst.max(started.elapsed());
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("slowest reservation among the slow clients: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "the sale stalled: {worst:?}"
    );

    let mut lived = Vec::new();
    for s in slow {
        lived.push(s.await.expect("join"));
    }
    let open = lived.iter().filter(|l| l.is_none()).count();
    assert_eq!(open, 0, "{open} slow clients were never cut off");
    let longest = lived.iter().flatten().max().copied().unwrap_or_default();
    eprintln!("slow clients cut off after at most {longest:?}");
    assert!(
        longest < Duration::from_secs(6),
        "header timeout 2 s, cut off after {longest:?}"
    );
}

/// Reads what the server sends until it closes (or `within` passes).
async fn read_all(sock: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, sock.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_not_queued() {
    let app = spawn_with(false, |s| {
        s.gateway.max_connections = 50;
        s.gateway.header_read_timeout_ms = 3_000;
    })
    .await;
    // 50 idle connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The 51st is answered 503 and closed at once: never left waiting.
    let started = Instant::now();
    let mut extra = TcpStream::connect(app.addr).await.expect("connect");
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let reply = read_all(&mut extra, Duration::from_secs(2)).await;
    let reply = reply.expect("the connection over the cap was left hanging");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 503"),
        "over the cap: {reply:?}"
    );
    if !reply.is_empty() {
        assert!(
            reply.to_ascii_lowercase().contains("retry-after: 1"),
            "{reply}"
        );
    }
    // Once the idle ones are gone (the header timeout closes them), the slots come back.
    drop(idle);
    let served = app
        .eventually(Duration::from_secs(10), || async {
            app.client
                .get(app.url("/health"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
    assert!(served, "slots never came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_gets_408_within_the_request_deadline() {
    let app = spawn_with(false, |s| s.gateway.request_timeout_ms = 1_000).await;
    let t = app.token("u1", Role::User);
    let mut sock = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/seckill HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"activity"
    );
    sock.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .expect("no answer to a stalled body")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
