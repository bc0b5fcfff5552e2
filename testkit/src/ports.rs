//! Free loopback ports and waiting for a server to accept connections.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Returns a loopback port that was free a moment ago, below 50,000 and with `port + 10000`
/// free too (redis-server in cluster mode binds its bus there).
///
/// Picks are spread pseudo-randomly (process id, a counter, the clock) over 20,000..50,000 so
/// parallel test processes rarely try the same port; servers retry on a new port when one was
/// taken in between anyway.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(std::process::id()) << 32 | u64::from(nanos);
    loop {
        // xorshift mixes pid, time and counter into a spread-out candidate.
        x ^= u64::from(NEXT.fetch_add(1, Ordering::Relaxed)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let candidate = 20_000 + (x % 30_000) as u16;
        let free = |p: u16| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(candidate) && free(candidate + 10_000) {
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
