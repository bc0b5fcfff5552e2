//! A private single-member etcd on free loopback ports, in a temporary data directory.

use crate::ports::{free_port, wait_for_port};
use crate::process::ChildGuard;
use anyhow::{bail, Context};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running `etcd`; killed and its directory removed on drop.
pub struct Etcd {
    pub client_port: u16,
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
        let client_port = free_port();
        let peer_port = free_port();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))
            .context("Failed to create the etcd log")?;
        let child = Command::new("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
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
        if !wait_for_port(client_port, Duration::from_secs(20)) {
            guard.kill();
            let log = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
            bail!("etcd did not start on port {client_port}; its log:\n{log}");
        }
        Ok(Self {
            client_port,
            dir,
            guard,
        })
    }

    /// `http://127.0.0.1:PORT`, for etcd clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// SIGKILLs etcd.
    pub fn kill(&mut self) {
        self.guard.kill();
    }
}
