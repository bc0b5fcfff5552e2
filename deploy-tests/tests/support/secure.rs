//! seckill with least privilege on private servers, for `least_privilege.rs` and `tls.rs`:
//! redis-server with the repository's ACL users (`redis-users.conf` rendered by
//! `scripts/redis-users.sh`, `default` off), MariaDB with the application user and the schema
//! owner (`scripts/mysql-users.sh`), random passwords, optionally TLS to all three servers
//! (etcd included) with a CA made by the test; and the real binaries started as those users,
//! each with only its own credentials (as the compose files do), their output kept in files.
#![allow(dead_code)] // each test binary uses a different subset

use super::{built, root, run};
use seckill_testkit::{ChildGuard, Etcd, MariaDb, RedisOptions, RedisServer, RedisTls, TestPki};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// 24 random bytes as hex: URL-safe, as `make run` generates them.
pub fn random_password() -> String {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every password of one stack.
pub struct Passwords {
    pub gateway: String,
    pub worker: String,
    pub cli: String,
    pub exporter: String,
    pub admin: String,
    pub mysql_app: String,
    pub mysql_owner: String,
}

impl Passwords {
    fn random() -> Self {
        Self {
            gateway: random_password(),
            worker: random_password(),
            cli: random_password(),
            exporter: random_password(),
            admin: random_password(),
            mysql_app: random_password(),
            mysql_owner: random_password(),
        }
    }

    pub fn all(&self) -> [&str; 7] {
        [
            &self.gateway,
            &self.worker,
            &self.cli,
            &self.exporter,
            &self.admin,
            &self.mysql_app,
            &self.mysql_owner,
        ]
    }

    /// The Redis password of a binary (`gateway`, `worker`, `cli`).
    pub fn redis(&self, binary: &str) -> &str {
        match binary {
            "gateway" => &self.gateway,
            "worker" => &self.worker,
            "cli" => &self.cli,
            other => panic!("no Redis user for {other}"),
        }
    }
}

pub const APP_USER: &str = "seckill_app";
pub const OWNER_USER: &str = "seckill_migrate";

/// The servers, their users and (with TLS) the CA, in one temp dir.
pub struct Secure {
    pub dir: tempfile::TempDir,
    pub pw: Passwords,
    pub redis: RedisServer,
    pub db: MariaDb,
    pub db_name: String,
    pub etcd: Option<Etcd>,
    pub pki: Option<TestPki>,
}

impl Secure {
    /// Plain servers (etcd only with `with_etcd`).
    pub fn start(with_etcd: bool) -> Self {
        Self::start_with(None, with_etcd)
    }

    /// Every server speaks TLS only to the binaries (Redis on its TLS port and requiring a
    /// client certificate, MariaDB users `REQUIRE X509`, etcd `https://` with
    /// `--client-cert-auth`).
    pub fn start_tls() -> Self {
        let pki = TestPki::generate("seckill").expect("test CA");
        Self::start_with(Some(pki), true)
    }

    fn start_with(pki: Option<TestPki>, with_etcd: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("seckill-secure-")
            .tempdir()
            .unwrap();
        let pw = Passwords::random();
        // The ACL users, rendered by the repository's script from the repository's file.
        let users = dir.path().join("redis-users.conf");
        let out = run(
            Command::new("sh")
                .arg(root().join("scripts/redis-users.sh"))
                .arg(root().join("redis-users.conf"))
                .arg(&users)
                .arg("prod")
                .env("SECKILL_REDIS_GATEWAY_PASSWORD", &pw.gateway)
                .env("SECKILL_REDIS_WORKER_PASSWORD", &pw.worker)
                .env("SECKILL_REDIS_CLI_PASSWORD", &pw.cli)
                .env("SECKILL_REDIS_EXPORTER_PASSWORD", &pw.exporter)
                .env("SECKILL_REDIS_ADMIN_PASSWORD", &pw.admin),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "redis-users.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let redis = RedisServer::start_with(RedisOptions {
            args: vec!["--include".into(), users.display().to_string()],
            admin: Some(("seckill-admin".into(), pw.admin.clone())),
            tls: pki.as_ref().map(|p| RedisTls {
                cert: p.server_cert.clone(),
                key: p.server_key.clone(),
                ca: p.ca.clone(),
                require_client_cert: true,
            }),
            ..Default::default()
        })
        .expect("redis-server with the ACL users");
        let db = match &pki {
            Some(p) => MariaDb::start_with_args(&[
                &format!("--ssl-cert={}", p.server_cert.display()),
                &format!("--ssl-key={}", p.server_key.display()),
                &format!("--ssl-ca={}", p.ca.display()),
            ]),
            None => MariaDb::start(),
        }
        .expect("MariaDB");
        let db_name = "seckill".to_owned();
        // The two users, from the repository's script, as root.
        let out = run(
            Command::new("sh")
                .arg(root().join("scripts/mysql-users.sh"))
                .arg("sql")
                .env("SECKILL_MYSQL_DATABASE", &db_name)
                .env("SECKILL_MYSQL_APP_PASSWORD", &pw.mysql_app)
                .env("SECKILL_MYSQL_MIGRATE_PASSWORD", &pw.mysql_owner)
                .env(
                    "SECKILL_MYSQL_REQUIRE",
                    if pki.is_some() { "X509" } else { "NONE" },
                ),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "mysql-users.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        db.sql(&String::from_utf8_lossy(&out.stdout))
            .expect("create the MySQL users");
        let etcd = with_etcd.then(|| match &pki {
            Some(p) => Etcd::start_tls(p, true).expect("etcd over TLS"),
            None => Etcd::start().expect("etcd"),
        });
        Self {
            dir,
            pw,
            redis,
            db,
            db_name,
            etcd,
            pki,
        }
    }

    /// The Redis URL the binaries use (the TLS port with TLS), no credentials.
    pub fn redis_url(&self) -> String {
        self.redis.tls_url().unwrap_or_else(|| self.redis.url())
    }

    fn mysql_url(&self, user: &str, password: &str) -> String {
        let tls = if self.pki.is_some() {
            "?ssl-mode=verify_identity"
        } else {
            ""
        };
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/{}{tls}",
            self.db.port, self.db_name
        )
    }

    /// The application user's URL.
    pub fn app_url(&self) -> String {
        self.mysql_url(APP_USER, &self.pw.mysql_app)
    }

    /// The schema owner's URL.
    pub fn owner_url(&self) -> String {
        self.mysql_url(OWNER_USER, &self.pw.mysql_owner)
    }

    /// `binary` (`seckill-gateway`, `seckill-worker`, `seckill`) with the environment of
    /// `role` (`gateway`, `worker`, `cli`): its own Redis user, the application user's
    /// MySQL URL, etcd, and with TLS the CA and the client certificate for every server.
    /// Nothing from the developer's environment or any config file (it runs in the temp
    /// dir, with an empty state directory).
    pub fn command(&self, binary: &str, role: &str) -> Command {
        let mut cmd = Command::new(built(binary));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("SECKILL_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("SECKILL_STATE_DIR", self.dir.path().join("no-stack"))
            .env("NO_COLOR", "1")
            .env("SECKILL_REDIS__URL", self.redis_url())
            .env("SECKILL_REDIS__USERNAME", format!("seckill-{role}"))
            .env("SECKILL_REDIS__PASSWORD", self.pw.redis(role))
            .env("SECKILL_MYSQL__URL", self.app_url());
        if let Some(e) = &self.etcd {
            cmd.env("SECKILL_ETCD__ENDPOINTS", format!("[{}]", e.endpoint()));
        }
        if let Some(p) = &self.pki {
            for section in ["REDIS", "MYSQL", "ETCD"] {
                cmd.env(format!("SECKILL_{section}__TLS__CA_FILE"), &p.ca)
                    .env(format!("SECKILL_{section}__TLS__CERT_FILE"), &p.client_cert)
                    .env(format!("SECKILL_{section}__TLS__KEY_FILE"), &p.client_key);
            }
        }
        cmd
    }

    /// Runs the CLI as the `cli` user with `args`; `env` on top.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command("seckill", "cli");
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd, Duration::from_secs(60))
    }

    /// Applies the migrations as the schema owner (`seckill db migrate`).
    pub fn migrate(&self) {
        let out = self.cli(
            &["db", "migrate"],
            &[("SECKILL_MYSQL__MIGRATE_URL", &self.owner_url())],
        );
        assert!(out.status.success(), "db migrate: {}", text(&out));
    }

    /// Starts `binary` as `role` in the background, its output in `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, mut cmd: Command) -> Proc {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Proc {
            guard: ChildGuard::new(cmd.spawn().expect("spawn")),
            log,
        }
    }

    /// `redis-cli` on the plain port as `user` (password through the environment).
    pub fn redis_as(&self, user: &str, password: &str, args: &[&str]) -> String {
        let out = run(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.redis.port.to_string()])
                .args(["--user", user, "--no-auth-warning"])
                .env("REDISCLI_AUTH", password)
                .args(args),
            Duration::from_secs(10),
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The `mariadb` client as `user` on the plain protocol (no TLS), running `query`.
    pub fn sql_as(&self, user: &str, password: &str, query: &str) -> Output {
        run(
            Command::new("mariadb")
                .args(["--no-defaults", "-h", "127.0.0.1", "-N", "-B", "-u", user])
                .arg(format!("--port={}", self.db.port))
                .env("MYSQL_PWD", password)
                .args([&self.db_name, "-e", query]),
            Duration::from_secs(30),
        )
    }
}

/// A spawned binary (killed on drop) and the file its output goes to.
pub struct Proc {
    pub guard: ChildGuard,
    pub log: PathBuf,
}

impl Proc {
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself (a refused start) and returns its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        while self.guard.is_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.output()
    }
}

/// stdout and stderr of a finished command.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails when any of `secrets` appears in `text` (named `what`).
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "a password appears in {what}:\n{}",
            text.replace(s, "<THE PASSWORD>")
        );
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
