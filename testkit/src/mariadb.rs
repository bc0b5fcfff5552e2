//! A private MariaDB server (`mariadbd`) in a temporary data directory on a free loopback
//! port, for tests that need a real SQL database.
//!
//! Startup is about a second: `mariadb-install-db` writes the system tables, then `mariadbd`
//! starts with small buffers and relaxed flushing (test data need not survive power loss).
//! `root` has no password and is reachable on `127.0.0.1` only. A test binary may share one
//! server through [`shared`] and give each test its own database with
//! [`MariaDb::create_database`].

use crate::ports::{listens_on, retry_on_free_port};
use crate::process::ChildGuard;
use anyhow::{bail, Context};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running `mariadbd`; killed and its directory removed on drop.
pub struct MariaDb {
    pub port: u16,
    /// Holds the data directory, the socket and the error log.
    dir: tempfile::TempDir,
    /// `None` while stopped by [`MariaDb::stop`].
    guard: Option<ChildGuard>,
    /// Server options given to [`MariaDb::start_with_args`] (also used at bootstrap).
    extra_args: Vec<String>,
}

impl MariaDb {
    /// Initialises a data directory and starts the server.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_args(&[])
    }

    /// Like [`MariaDb::start`], with extra `mariadbd` options, which the bootstrap gets too
    /// (options that shape the data files, e.g. a capped system tablespace with
    /// `--innodb-file-per-table=0 --innodb-data-file-path=ibdata1:12M:autoextend:max:32M`,
    /// must be the same from the start).
    pub fn start_with_args(extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("seckill-mariadb-")
            .tempdir()
            .context("Failed to create a temp dir for MariaDB")?;
        let extra_args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        install(&dir.path().join("data"), &extra_args)?;
        let mut db = Self {
            port: 0,
            dir,
            guard: None,
            extra_args,
        };
        // A port that was free can be taken before mariadbd binds it (other tests pick ports
        // too): the server then exits, and starts again on another port.
        retry_on_free_port("mariadbd", |port| {
            db.port = port;
            db.start_again()
        })?;
        Ok(db)
    }

    /// `mysql://root@127.0.0.1:PORT` (no database selected).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a database with a fresh name and returns its full URL.
    pub fn create_database(&self) -> anyhow::Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        self.sql(&format!("CREATE DATABASE `{name}`"))?;
        Ok(format!("{}/{name}", self.url()))
    }

    /// Runs SQL through the `mariadb` command-line client and returns its stdout
    /// (tab-separated, no column names).
    pub fn sql(&self, statement: &str) -> anyhow::Result<String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root", "-N", "-B"])
            .arg(format!("--port={}", self.port))
            .args(["-e", statement])
            .stdin(Stdio::null())
            .output()
            .context("Failed to run the mariadb client")?;
        if !out.status.success() {
            bail!(
                "mariadb -e {statement:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGKILLs the server, as a crash would; the data directory and port are kept.
    pub fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.kill();
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Starts the server again on the same data directory and port (after [`MariaDb::stop`]).
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop();
        let d = self.dir.path();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .args([
                "--skip-log-bin",
                "--skip-name-resolve",
                // Small on purpose: a test run holds several servers at once and InnoDB
                // preallocates the whole redo log on disk.
                "--innodb-buffer-pool-size=128M",
                "--innodb-log-file-size=32M",
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=500",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("Failed to start mariadbd (install mariadb-server)")?;
        let mut guard = ChildGuard::new(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Our mariadbd itself must listen (another test's server on this port would answer
        // too), and accepting TCP is not enough (it may still be recovering): wait for a query.
        loop {
            if listens_on(guard.pid(), self.port) {
                self.guard = Some(guard);
                if self.sql("SELECT 1").is_ok() {
                    return Ok(());
                }
                guard = match self.guard.take() {
                    Some(g) => g,
                    None => bail!("MariaDB guard vanished"),
                };
            }
            if !guard.is_running() || Instant::now() > deadline {
                guard.kill();
                let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
                // errno 28 is ENOSPC; InnoDB only prints the number.
                let hint = if log.contains("error 28") {
                    "the disk is full (free space, e.g. `cargo clean`, then retry); "
                } else {
                    ""
                };
                bail!(
                    "mariadbd did not start on port {}: {hint}its log:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes the system tables, retrying once into a clean directory: under heavy load the
/// bootstrap server occasionally fails for reasons its log does not explain.
fn install(datadir: &Path, extra: &[String]) -> anyhow::Result<()> {
    let mut last = String::new();
    // A temp directory of its own: bootstraps running in parallel (tests) that share /tmp
    // can pick the same temporary table names there and fail, or crash.
    let tmpdir = tempfile::Builder::new()
        .prefix("seckill-mariadb-install-")
        .tempdir()
        .context("creating a temp directory for mariadb-install-db")?;
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(datadir);
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.path().display()))
            .args([
                "--auth-root-authentication-method=normal",
                // Same size as the server uses, so its first start does not resize it.
                "--innodb-log-file-size=32M",
                "--skip-test-db",
                "--user=root",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .context("Failed to run mariadb-install-db (install mariadb-server)")?;
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("mariadb-install-db failed three times; last output:\n{last}")
}

/// One server per test binary, started on first use and never stopped before the process
/// exits. Tests that stop the server must start their own instead.
///
/// The process exit does not run destructors of statics, so a small watchdog shell loop kills
/// the server and removes its directory once the test process is gone.
pub fn shared() -> anyhow::Result<&'static MariaDb> {
    static SHARED: OnceLock<Result<MariaDb, String>> = OnceLock::new();
    let db = SHARED.get_or_init(|| {
        let db = MariaDb::start().map_err(|e| format!("{e:#}"))?;
        if let Some(pid) = db.guard.as_ref().map(ChildGuard::pid) {
            reap_with_parent(pid, db.dir());
        }
        Ok(db)
    });
    match db {
        Ok(db) => Ok(db),
        Err(e) => bail!("shared MariaDB failed to start: {e}"),
    }
}

/// Starts a detached watchdog that kills `child` and removes `dir` once this process has
/// exited, so servers held in statics do not leak.
pub(crate) fn reap_with_parent(child: u32, dir: &Path) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 {child} 2>/dev/null; \
         sleep 1; rm -rf \"$1\""
    );
    let _ = Command::new("sh")
        .args(["-c", &script, "watchdog"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
