//! A private `redis-server` with the seckill module loaded.

use crate::ports::{free_port, retry_on_free_port, wait_for_listener};
use crate::process::ChildGuard;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Path of the module built by `cargo build` (debug unless `SECKILL_MODULE` says otherwise).
///
/// Integration tests run after the workspace is built, so the cdylib is next to the test
/// binary's `deps/` directory.
pub fn module_path() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("SECKILL_MODULE") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("Failed to find the test executable")?;
    // target/<profile>/deps/test-binary -> target/<profile>/libseckill_module.so
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target/<profile> parent")?;
    let candidate = profile_dir.join("libseckill_module.so");
    if !candidate.exists() {
        bail!(
            "{} does not exist: run `cargo build -p seckill-module` first (make test does)",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// The repository's `redis.conf`: what `make run` and the deployments start redis with.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../redis.conf")
}

#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// A configuration file to start from (e.g. the repository's `redis.conf`, see
    /// [`shipped_config`]); the harness's own options (port, bind, directory, log file)
    /// override it, and its snapshot rules stay.
    pub config: Option<PathBuf>,
    /// Append-only file with this fsync policy (`always`, `everysec`, `no`).
    pub appendfsync: Option<&'static str>,
    /// Start as a replica of this port.
    pub replica_of: Option<u16>,
    /// `cluster-enabled yes` (for `CLUSTER KEYSLOT`).
    pub cluster: bool,
    /// Load no module (for baselines).
    pub without_module: bool,
    /// Extra redis-server arguments, e.g. `--include <ACL users file>`.
    pub args: Vec<String>,
    /// The ACL user (name, password) the harness itself logs in as (readiness, [`client`],
    /// [`cli`]) when the `default` user is off.
    ///
    /// [`client`]: RedisServer::client
    /// [`cli`]: RedisServer::cli
    pub admin: Option<(String, String)>,
    /// Also serve TLS, on [`RedisServer::tls_port`] (the plain port stays, for the harness).
    pub tls: Option<RedisTls>,
}

/// TLS files of a test redis-server (see [`crate::tls::TestPki`]).
#[derive(Debug, Clone)]
pub struct RedisTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA of the client certificates.
    pub ca: PathBuf,
    /// Refuse clients without a certificate signed by `ca` (`tls-auth-clients yes`).
    pub require_client_cert: bool,
}

/// A running `redis-server`; killed and its directory removed on drop.
pub struct RedisServer {
    pub port: u16,
    /// The TLS port, when [`RedisOptions::tls`] was given.
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
    options: RedisOptions,
    guard: ChildGuard,
}

impl RedisServer {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(RedisOptions::default())
    }

    pub fn start_with(options: RedisOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("seckill-redis-")
            .tempdir()
            .context("Failed to create a temp dir for redis-server")?;
        // A port that was free can be taken before redis-server binds it (other tests pick
        // ports too), so a failed start is retried on a new port.
        let (port, (tls_port, guard)) = retry_on_free_port("redis-server", |port| {
            let tls_port = options.tls.as_ref().map(|_| free_port());
            spawn(dir.path(), port, tls_port, &options).map(|guard| (port, (tls_port, guard)))
        })?;
        Ok(Self {
            port,
            tls_port,
            dir,
            options,
            guard,
        })
    }

    /// `redis://127.0.0.1:PORT/`: the plain port, no credentials.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://127.0.0.1:TLS_PORT/`, when the server serves TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://127.0.0.1:{p}/"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client on the plain port, as the harness's user ([`RedisOptions::admin`]).
    pub fn client(&self) -> anyhow::Result<redis::Client> {
        redis::Client::open(admin_url(self.port, &self.options))
            .context("Failed to build a redis client")
    }

    pub fn connection(&self) -> anyhow::Result<redis::Connection> {
        self.client()?
            .get_connection()
            .with_context(|| format!("Failed to connect to redis-server on port {}", self.port))
    }

    /// SIGKILL, as a crash or power loss of the process would.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// Starts the server again on the same port and directory (it reloads RDB/AOF).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.guard.kill();
        self.guard = spawn(self.dir.path(), self.port, self.tls_port, &self.options)?;
        Ok(())
    }

    /// Whether the process is still running (not killed).
    pub fn is_running(&mut self) -> bool {
        self.guard.is_running()
    }

    /// The process id (0 once killed).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Runs `redis-cli` against this server and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((user, password)) = &self.options.admin {
            // The password through the environment, never on the command line.
            cmd.args(["--user", user, "--no-auth-warning"])
                .env("REDISCLI_AUTH", password);
        }
        let out = cmd
            .args(args)
            .output()
            .context("Failed to run redis-cli (install redis-tools)")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The harness's URL: the plain port, as [`RedisOptions::admin`] when set.
fn admin_url(port: u16, options: &RedisOptions) -> String {
    match &options.admin {
        Some((user, password)) => format!("redis://{user}:{password}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    }
}

fn spawn(
    dir: &Path,
    port: u16,
    tls_port: Option<u16>,
    options: &RedisOptions,
) -> anyhow::Result<ChildGuard> {
    let mut cmd = Command::new("redis-server");
    match &options.config {
        Some(file) => {
            cmd.arg(file);
        }
        None => {
            cmd.args(["--save", ""]);
        }
    }
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .args(["--enable-debug-command", "local"])
        .arg("--dir")
        .arg(dir)
        .args(["--logfile", "redis.log"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !options.without_module {
        cmd.arg("--loadmodule").arg(module_path()?);
    }
    if let Some(policy) = options.appendfsync {
        cmd.args(["--appendonly", "yes", "--appendfsync", policy]);
    }
    if let Some(primary) = options.replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
    }
    if options.cluster {
        cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(dir.join("nodes.conf"));
    }
    if let (Some(tls), Some(tls_port)) = (&options.tls, tls_port) {
        cmd.args(["--tls-port", &tls_port.to_string()])
            .arg("--tls-cert-file")
            .arg(&tls.cert)
            .arg("--tls-key-file")
            .arg(&tls.key)
            .arg("--tls-ca-cert-file")
            .arg(&tls.ca)
            .args([
                "--tls-auth-clients",
                if tls.require_client_cert { "yes" } else { "no" },
            ]);
    }
    cmd.args(&options.args);
    let child = cmd
        .spawn()
        .context("Failed to start redis-server (is it installed? run scripts/setup.sh)")?;
    let mut guard = ChildGuard::new(child);
    // Our redis-server itself must listen: another test's server on the same port answers
    // PING too.
    let listening =
        wait_for_listener(&mut guard, port, Duration::from_secs(10)).and_then(
            |()| match tls_port {
                Some(p) => wait_for_listener(&mut guard, p, Duration::from_secs(10)),
                None => Ok(()),
            },
        );
    if let Err(e) = listening {
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        guard.kill();
        bail!("redis-server did not start on port {port}: {e}; its log:\n{log}");
    }
    wait_until_loaded(&admin_url(port, options), port)?;
    Ok(guard)
}

/// Waits until the server answers PING (it answers LOADING while it replays RDB/AOF).
fn wait_until_loaded(url: &str, port: u16) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match client
            .get_connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("redis-server on port {port} never finished loading: {last}")
}
