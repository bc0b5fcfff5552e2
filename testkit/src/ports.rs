//! Free loopback ports and waiting for a server to accept connections.

use crate::process::ChildGuard;
use anyhow::bail;
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

/// Whether process `pid` itself holds a socket listening on TCP `port` (any local address),
/// read from `/proc` (Linux). Unlike [`wait_for_port`], a server that some other process
/// (another test's) runs on the same port does not count.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is cols[1] (`ADDR:PORT` in hex), st is cols[3] (0A = LISTEN),
            // inode is cols[9].
            if let (Some(local), Some(&"0A"), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            {
                if local.ends_with(&want) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Waits until `child` itself listens on `port`. Fails as soon as the child exits (a port
/// taken between [`free_port`] and the child's bind makes a server exit: the caller picks
/// another port, see [`retry_on_free_port`]) or after `timeout`.
pub fn wait_for_listener(
    child: &mut ChildGuard,
    port: u16,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if listens_on(child.pid(), port) {
            return Ok(());
        }
        if !child.is_running() {
            bail!("the process exited before listening on port {port} (taken?)");
        }
        if Instant::now() > deadline {
            bail!("the process did not listen on port {port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `start` with a port from [`free_port`] and returns what it returns; when it fails,
/// tries again with a new port (three retries): a port that was free a moment ago can be
/// taken by a parallel test before the server binds it. `start` must clean up after itself
/// when it fails (a [`ChildGuard`] dropped does).
pub fn retry_on_free_port<T>(
    what: &str,
    mut start: impl FnMut(u16) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut attempt = 0;
    loop {
        let port = free_port();
        match start(port) {
            Ok(started) => return Ok(started),
            Err(e) if attempt < 3 => {
                attempt += 1;
                eprintln!("{what} on port {port} failed to start, retrying on another: {e:#}");
            }
            Err(e) => return Err(e.context(format!("{what} failed to start four times"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_server_on_a_port_another_process_holds_is_not_taken_for_ours() {
        // Another process (this one, here) holds the port.
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        // The plain TCP probe is fooled by the other holder...
        assert!(wait_for_port(port, Duration::from_secs(1)));
        // ...the listener check is not: redis-server cannot bind, exits, and that is an error.
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut guard = ChildGuard::new(child);
        assert!(!listens_on(guard.pid(), port));
        let err = wait_for_listener(&mut guard, port, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("exited"), "{err}");
        drop(held);
        assert!(!listens_on(std::process::id(), port));
    }

    #[test]
    fn a_failed_start_is_retried_on_another_port() {
        let mut tried = Vec::new();
        let port = retry_on_free_port("test server", |port| {
            tried.push(port);
            if tried.len() < 3 {
                bail!("port {port} taken");
            }
            Ok(port)
        })
        .unwrap();
        assert_eq!(tried.len(), 3);
        assert_eq!(tried.last(), Some(&port));
        let always: anyhow::Result<()> = retry_on_free_port("test server", |_| bail!("no"));
        assert!(always.is_err());
    }
}
