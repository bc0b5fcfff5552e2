//! A private single-member etcd on free loopback ports, in a temporary data directory.

use crate::ports::{free_port, retry_on_free_port, wait_for_listener};
use crate::process::ChildGuard;
use crate::tls::TestPki;
use anyhow::{bail, Context};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running `etcd`; killed and its directory removed on drop.
pub struct Etcd {
    pub client_port: u16,
    /// Serving clients over TLS ([`Etcd::start_tls`]).
    tls: bool,
    /// Holds the data directory and the log.
    dir: tempfile::TempDir,
    guard: ChildGuard,
}

impl Etcd {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("seckill-etcd-")
            .tempdir()
            .context("Failed to create a temp dir for etcd")?;
        // Ports that were free can be taken before etcd binds them (other tests pick ports
        // too): etcd then exits, and starts again on other ports.
        let (client_port, guard) = retry_on_free_port("etcd", |client_port| {
            spawn(dir.path(), client_port, free_port(), None)
        })?;
        Ok(Self {
            client_port,
            tls: false,
            dir,
            guard,
        })
    }

    /// An etcd serving clients over TLS only (`https://`), with `pki`'s server certificate;
    /// with `client_cert_auth`, only clients with a certificate signed by `pki`'s CA get in.
    pub fn start_tls(pki: &TestPki, client_cert_auth: bool) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("seckill-etcd-")
            .tempdir()
            .context("Failed to create a temp dir for etcd")?;
        let (client_port, guard) = retry_on_free_port("etcd", |client_port| {
            spawn(
                dir.path(),
                client_port,
                free_port(),
                Some((pki, client_cert_auth)),
            )
        })?;
        Ok(Self {
            client_port,
            tls: true,
            dir,
            guard,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving TLS), for etcd clients.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// SIGKILLs etcd.
    pub fn kill(&mut self) {
        self.guard.kill();
    }
}

/// Starts etcd on `client_port` and `peer_port` and waits until it listens itself.
fn spawn(
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    tls: Option<(&TestPki, bool)>,
) -> anyhow::Result<(u16, ChildGuard)> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client = format!("{scheme}://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log =
        std::fs::File::create(dir.join("etcd.log")).context("Failed to create the etcd log")?;
    // A fresh data directory per attempt: a failed start may have written one.
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new("etcd");
    if let Some((pki, client_cert_auth)) = tls {
        cmd.arg(format!("--cert-file={}", pki.server_cert.display()))
            .arg(format!("--key-file={}", pki.server_key.display()));
        if client_cert_auth {
            cmd.arg(format!("--trusted-ca-file={}", pki.ca.display()))
                .arg("--client-cert-auth");
        }
    }
    let child = cmd
        .arg("--name=test")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=test={peer}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("Failed to start etcd (install etcd-server)")?;
    let mut guard = ChildGuard::new(child);
    if let Err(e) = wait_for_listener(&mut guard, client_port, Duration::from_secs(20)) {
        guard.kill();
        let log = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
        bail!("etcd did not start on port {client_port}: {e}; its log:\n{log}");
    }
    Ok((client_port, guard))
}
