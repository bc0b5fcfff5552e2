//! Free loopback ports and waiting for a server to accept connections.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Returns a loopback port that was free a moment ago.
///
/// Binding port 0 gives a free port, but two tests can be handed the same one after it is
/// released; a per-process counter spreads picks so parallel tests of one binary never
/// collide, and the bind check skips ports other processes hold.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 2_000) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let candidate = base.wrapping_add(offset);
        if !(20_000..=60_000).contains(&candidate) {
            continue;
        }
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, candidate)).is_ok() {
            return candidate;
        }
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
