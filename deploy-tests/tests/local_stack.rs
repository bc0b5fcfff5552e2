//! `scripts/run-local.sh` (`make run`) as a new user runs it, from an empty state directory on
//! free ports: the stack comes up, a demo user logs in and reserves, the order reaches
//! MariaDB, `seckill lag` drains to 0, SIGTERM stops everything; a second run reuses the
//! state, and Ctrl-C (SIGINT to the process group, as a terminal sends it) stops it again.
//! After each stop no process of the stack is left. Each process writes its output to its own
//! file in `.state/logs/` (the console carries the banner and one line per process, never an
//! access-log line), and `make logs` follows those files.
//!
//! Least privilege: the stack's binaries log in as their own Redis ACL users and as the
//! MariaDB application user, whose passwords are generated per stack into
//! `.state/secrets/` (mode 600); that user cannot drop or delete, the gateway's Redis user
//! cannot flush or reconfigure, and no password appears in any log or on the console.

mod support;

use serde_json::Value as Json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

struct Ports {
    redis: u16,
    mysql: u16,
    etcd: u16,
    etcd_peer: u16,
    gateway: u16,
    worker_metrics: u16,
    /// `make run-cluster`'s first node (six consecutive ports, and their bus ports).
    cluster_base: Option<u16>,
}

impl Ports {
    fn all(&self) -> [u16; 6] {
        [
            self.redis,
            self.mysql,
            self.etcd,
            self.etcd_peer,
            self.gateway,
            self.worker_metrics,
        ]
    }

    fn free() -> Self {
        let p = seckill_testkit::free_port;
        Self {
            redis: p(),
            mysql: p(),
            etcd: p(),
            etcd_peer: p(),
            gateway: p(),
            worker_metrics: p(),
            cluster_base: None,
        }
    }

    fn free_with_cluster() -> Self {
        Self {
            cluster_base: Some(cluster_base_port()),
            ..Self::free()
        }
    }

    /// Other free ports of the same kind (after one of these was taken by another test).
    fn repick(&mut self) {
        *self = if self.cluster_base.is_some() {
            Self::free_with_cluster()
        } else {
            Self::free()
        };
    }
}

/// The stack's environment: its own state directory and ports, the binaries of this build.
fn stack_env(cmd: &mut Command, state: &Path, ports: &Ports) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SECKILL_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("SECKILL_STATE_DIR", state)
        .env("SECKILL_SKIP_SETUP", "1")
        .env("SECKILL_SKIP_BUILD", "1")
        .env("SECKILL_BIN_DIR", bin_dir())
        .env("SECKILL_STARTUP_TIMEOUT", "90")
        .env("SECKILL_REDIS_PORT", ports.redis.to_string())
        .env("SECKILL_MYSQL_PORT", ports.mysql.to_string())
        .env("SECKILL_ETCD_PORT", ports.etcd.to_string())
        .env("SECKILL_ETCD_PEER_PORT", ports.etcd_peer.to_string())
        .env("SECKILL_GATEWAY_PORT", ports.gateway.to_string())
        .env(
            "SECKILL_WORKER_METRICS_PORT",
            ports.worker_metrics.to_string(),
        );
    if let Some(base) = ports.cluster_base {
        cmd.env("SECKILL_REDIS_CLUSTER_PORT", base.to_string());
    }
}

/// Processes whose environment names this state directory: every process of the stack
/// (run-local.sh exports SECKILL_STACK_DIR before starting honcho).
fn stack_processes(state: &Path) -> Vec<(u32, String)> {
    let needle = format!("SECKILL_STACK_DIR={}", state.display());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            // Zombies have an empty cmdline and are already gone for our purposes.
            if !cmd.is_empty() {
                found.push((pid, cmd));
            }
        }
    }
    found
}

/// One `scripts/run-local.sh run` in its own process group; stopped and cleaned up on drop
/// even when an assertion fails.
struct Stack {
    child: Option<Child>,
    state: PathBuf,
    log: PathBuf,
}

impl Stack {
    fn start(state: &Path, ports: &mut Ports, log: PathBuf) -> Self {
        Self::start_with(state, ports, log, "run")
    }

    /// `scripts/run-local.sh <command>` (`run` or `run-cluster`). When run-local.sh finds
    /// one of `ports` taken (by a test running in parallel, between the pick and the start),
    /// it is started again on other ports, which `ports` then holds.
    fn start_with(state: &Path, ports: &mut Ports, log: PathBuf, command: &str) -> Self {
        require_tool(
            "python3",
            "the Debian packages `python3` and `python3-venv`",
        );
        for (tool, pkg) in [
            ("redis-server", "redis-server"),
            ("redis-cli", "redis-tools"),
            ("mariadbd", "mariadb-server"),
            ("mariadb", "mariadb-client"),
            ("etcd", "etcd-server"),
            ("curl", "curl"),
        ] {
            require_tool(tool, &format!("the Debian package `{pkg}`"));
        }
        built("libseckill_module.so");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let logged_before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
            let mut cmd = Command::new("bash");
            cmd.arg(root().join("scripts/run-local.sh"))
                .arg(command)
                .current_dir(root())
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                // Its own process group, like a job in a terminal: SIGINT can go to the group.
                .process_group(0);
            stack_env(&mut cmd, state, ports);
            let child = cmd.spawn().expect("start scripts/run-local.sh");
            let mut s = Self {
                child: Some(child),
                state: state.to_path_buf(),
                log: log.clone(),
            };
            match s.wait_for_banner() {
                Ok(()) => return s,
                Err(status) => {
                    let this_run = s.log().get(logged_before..).unwrap_or_default().to_owned();
                    if attempt < 4 && this_run.contains("is already in use") {
                        eprintln!("a port was taken in between; starting again on others");
                        s.child = None;
                        ports.repick();
                        continue;
                    }
                    panic!(
                        "run-local.sh exited ({status}) before the stack was up:\n{}",
                        s.tail()
                    );
                }
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Waits for the whole banner; the exit status when run-local.sh exits first.
    fn wait_for_banner(&mut self) -> Result<(), std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(240);
        // The banner's last line, so the whole banner is there once this returns.
        const END: &str = "Ctrl-C stops everything.";
        let runs = self.log().matches(END).count();
        loop {
            if self.log().matches(END).count() > runs {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(status);
            }
            assert!(
                Instant::now() < deadline,
                "the stack was not up after 240 s:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Sends `signal` (to the process group when `group`), waits for run-local.sh to exit
    /// and returns its exit code.
    fn stop(&mut self, signal: &str, group: bool) -> i32 {
        let mut child = self.child.take().expect("stack running");
        let target = if group {
            format!("-{}", child.id())
        } else {
            child.id().to_string()
        };
        Command::new("kill")
            .args([&format!("-{signal}"), "--", &target])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "run-local.sh did not stop within 45 s of SIG{signal}:\n{}",
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// No process of the stack is left (redis-server overwrites its environment with its
    /// title, so every port being closed is checked too).
    fn assert_nothing_left(&self, ports: &Ports) {
        self.assert_nothing_left_on(&ports.all());
    }

    fn assert_nothing_left_on(&self, ports: &[u16]) {
        // honcho SIGKILLs stragglers 5 s after SIGTERM; allow for that and a little more.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = stack_processes(&self.state);
            let open: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .collect();
            if left.is_empty() && open.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline || !left.is_empty(),
                "ports {open:?} still accept connections after the stack stopped:\n{}",
                self.tail()
            );
            if Instant::now() > deadline {
                for (pid, _) in &left {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                panic!(
                    "processes left behind after the stack stopped: {left:#?}\n{}",
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // The script's own clean-up finds redis-server and mariadbd by their pid files too.
        let _ = run(
            Command::new("bash")
                .arg(root().join("scripts/run-local.sh"))
                .arg("stop")
                .env("SECKILL_STATE_DIR", &self.state),
            Duration::from_secs(60),
        );
    }
}

/// What `scripts/run-local.sh logs` (`make logs`, which follows the logs until stopped) prints
/// in its first two seconds.
fn follow_logs(state: &Path) -> String {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("bash")
        .arg(root().join("scripts/run-local.sh"))
        .arg("logs")
        .env("SECKILL_STATE_DIR", state)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start scripts/run-local.sh logs");
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(out.path()).unwrap_or_default()
}

fn json(body: &str) -> Json {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn login(port: u16, user: &str, password: &str) -> String {
    let (status, body) = http(
        "POST",
        port,
        "/api/v1/auth/login",
        &[],
        Some(&format!(
            r#"{{"username":"{user}","password":"{password}"}}"#
        )),
    )
    .unwrap();
    assert_eq!(status, 200, "login {user}: {body}");
    json(&body)["data"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn reserve(port: u16, token: &str, activity: &str, product: &str) -> (u16, Json) {
    let auth = format!("Bearer {token}");
    let (status, body) = http(
        "POST",
        port,
        "/api/v1/seckill",
        &[("Authorization", &auth)],
        Some(&format!(
            r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":1}}"#
        )),
    )
    .unwrap();
    (status, json(&body))
}

fn sql(state: &Path, query: &str) -> String {
    run_ok(
        Command::new("mariadb")
            .arg(format!(
                "--defaults-file={}",
                state.join("my.cnf").display()
            ))
            .args(["-N", "-B", "seckill", "-e", query]),
        Duration::from_secs(30),
    )
    .trim()
    .to_owned()
}

#[test]
fn run_local_serves_a_sale_and_stops_without_leftovers() {
    let state_dir = tempfile::Builder::new()
        .prefix("seckill-stack-")
        .tempdir()
        .unwrap();
    let state = state_dir.path().join("state");
    let log = state_dir.path().join("run-local.log");
    let mut ports = Ports::free();

    // ---- first run, from nothing
    let mut stack = Stack::start(&state, &mut ports, log.clone());
    let first = stack.log();
    for want in [
        "admin / admin",
        "alice bob carol / demo-password",
        &format!("http://127.0.0.1:{}/api/v1/activities", ports.gateway),
    ] {
        assert!(
            first.contains(want),
            "banner lacks {want:?}:\n{}",
            stack.tail()
        );
    }
    let activity = std::fs::read_to_string(state.join("demo-activity"))
        .expect("the demo activity id is kept in the state directory")
        .trim()
        .to_owned();
    let (status, body) = get(ports.gateway, &format!("/api/v1/activities/{activity}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let product = json(&body)["data"]["product_id"]
        .to_string()
        .trim_matches('"')
        .to_owned();

    let token = login(ports.gateway, "alice", "demo-password");
    login(ports.gateway, "admin", "admin");
    let (status, reply) = reserve(ports.gateway, &token, &activity, &product);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["data"]["status"], "queued", "{reply}");

    let auth = format!("Bearer {token}");
    let order_id = wait_for(
        "the order of the reservation",
        Duration::from_secs(30),
        || {
            let (_, body) = http(
                "GET",
                ports.gateway,
                &format!("/api/v1/seckill/result?activity_id={activity}"),
                &[("Authorization", &auth)],
                None,
            )
            .ok()?;
            let v = json(&body);
            (v["data"]["status"] == "success").then(|| v["data"]["order_id"].to_string())
        },
    );
    assert_eq!(
        sql(
            &state,
            &format!(
                "SELECT COUNT(*) FROM orders o JOIN users u ON u.id = o.user_id \
                 WHERE u.username = 'alice' AND o.activity_id = {activity} AND o.id = {order_id}"
            )
        ),
        "1",
        "alice's order is in MariaDB"
    );
    // The CLI finds the stack it runs next to: no address flags or SECKILL_<SECTION>__*
    // variables, only where the state is (here a temp dir; `.state/` by default). It reads
    // the stack's `stack.yaml` (addresses and the dev-mode token key).
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(built("seckill"));
        cmd.current_dir(root())
            .env("SECKILL_STATE_DIR", &state)
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("SECKILL_") && k.contains("__") {
                cmd.env_remove(k);
            }
        }
        cmd
    };
    // `seckill lag`: the stream is drained (LAG and PENDING 0).
    wait_for("seckill lag to show 0", Duration::from_secs(20), || {
        let out = run_ok(&mut cli(&["lag"]), Duration::from_secs(30));
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(activity.as_str()))?
            .to_owned();
        let cols: Vec<&str> = row.split_whitespace().collect();
        // ACTIVITY LENGTH LAG PENDING DEAD CONSUMERS
        (cols.get(2) == Some(&"0") && cols.get(3) == Some(&"0") && cols.get(4) == Some(&"0"))
            .then_some(())
    });
    // `seckill users seed` signs tokens the stack's gateway accepts.
    let tokens = state.join("seeded-tokens.txt");
    run_ok(
        &mut cli(&[
            "users",
            "seed",
            "--count",
            "10",
            "--tokens",
            &tokens.to_string_lossy(),
        ]),
        Duration::from_secs(60),
    );
    let seeded = std::fs::read_to_string(&tokens).unwrap();
    assert_eq!(seeded.lines().count(), 10);
    let (status, reply) = reserve(
        ports.gateway,
        seeded.lines().next().unwrap(),
        &activity,
        &product,
    );
    assert_eq!(status, 200, "a seeded token must buy: {reply}");
    // `seckill members` lists the stack's gateway and worker (etcd from stack.yaml).
    let members = wait_for("both members in etcd", Duration::from_secs(20), || {
        let out = run_ok(&mut cli(&["members"]), Duration::from_secs(30));
        let kinds: Vec<&str> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        (kinds.contains(&"gateway") && kinds.contains(&"worker")).then_some(out)
    });
    assert!(
        members.contains(&format!("127.0.0.1:{}", ports.gateway)),
        "{members}"
    );
    // `make health` agrees.
    let mut health = Command::new("bash");
    health
        .arg(root().join("scripts/run-local.sh"))
        .arg("health")
        .current_dir(root());
    stack_env(&mut health, &state, &ports);
    let report = run_ok(&mut health, Duration::from_secs(60));
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok")).count(),
        6,
        "{report}"
    );

    // Every process's output is in its own file, not on the console: access-log lines are in
    // gateway.log only, and the console names each log file.
    let logs = state.join("logs");
    for name in ["redis", "mysql", "etcd", "gateway", "worker"] {
        let file = logs.join(format!("{name}.log"));
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} is missing or empty", file.display());
        assert!(
            stack
                .log()
                .contains(&format!("output in {}", file.display())),
            "the console does not say where {name}'s output goes:\n{}",
            stack.tail()
        );
    }
    let gateway_log = std::fs::read_to_string(logs.join("gateway.log")).unwrap();
    // The access log is sampled (one ordinary request in 100; the first is always among
    // them) with a periodic summary: at least one access line is in gateway.log.
    assert!(
        gateway_log
            .lines()
            .any(|l| l.contains(r#""target":"access""#)),
        "gateway.log has no access-log line"
    );
    assert!(
        !stack.log().contains(r#""target":"access""#),
        "access-log lines reached the console (they must go to gateway.log only):\n{}",
        stack.tail()
    );
    // `make logs` follows those files.
    let follow = follow_logs(&state);
    assert!(
        follow.contains("gateway.log <==") && follow.contains("worker.log <=="),
        "make logs did not show the processes' logs:\n{follow}"
    );

    assert_least_privilege(&state, &ports, &stack.log());

    // SIGTERM to run-local.sh alone (as `kill` or `timeout` would): everything stops.
    let code = stack.stop("TERM", false);
    assert_eq!(code, 0, "exit status after SIGTERM:\n{}", stack.tail());
    assert!(
        stack.log().contains("run-local: stopped"),
        "{}",
        stack.tail()
    );
    stack.assert_nothing_left(&ports);
    drop(stack);

    // ---- second run: same state, nothing re-created
    let mut stack = Stack::start(&state, &mut ports, log);
    assert!(
        stack
            .log()
            .contains(&format!("demo activity {activity} reused")),
        "the demo activity was not reused:\n{}",
        stack.tail()
    );
    let token = login(ports.gateway, "alice", "demo-password");
    // Redis remembers that alice already bought her one unit.
    let (status, reply) = reserve(ports.gateway, &token, &activity, &product);
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"], "LIMIT_EXCEEDED", "{reply}");
    // alice's order and the seeded user's, nothing more.
    assert_eq!(
        sql(
            &state,
            &format!("SELECT COUNT(*) FROM orders WHERE activity_id = {activity}")
        ),
        "2"
    );

    // Ctrl-C: SIGINT to the whole foreground process group.
    let code = stack.stop("INT", true);
    assert_eq!(code, 0, "exit status after Ctrl-C:\n{}", stack.tail());
    stack.assert_nothing_left(&ports);
}

/// The stack runs with least privilege, with passwords of its own that never reach a log.
fn assert_least_privilege(state: &Path, ports: &Ports, console: &str) {
    use std::os::unix::fs::PermissionsExt;
    let secrets = state.join("secrets");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o700, "{}", secrets.display());
    let secret = |name: &str| {
        let file = secrets.join(name);
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        let s = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        assert!(s.len() >= 32, "{} is too short", file.display());
        s
    };
    // The binaries are configured with the application user and their own Redis users.
    let stack_yaml = std::fs::read_to_string(state.join("stack.yaml")).unwrap();
    let app = secret("mysql-app");
    assert!(
        stack_yaml.contains(&format!(
            "url: 'mysql://seckill_app:{app}@127.0.0.1:{}/seckill'",
            ports.mysql
        )),
        "stack.yaml does not point the binaries at the application user"
    );
    assert!(stack_yaml.contains("migrate_url: 'mysql://seckill_migrate:"));
    assert!(!stack_yaml.contains("mysql://root"), "root in stack.yaml");
    for user in ["gateway", "worker", "cli"] {
        assert!(
            stack_yaml.contains(&format!(
                "{user}: {{username: seckill-{user}, password: '{}'}}",
                secret(&format!("redis-{user}"))
            )),
            "stack.yaml lacks the Redis user of the {user}"
        );
    }
    // The application user reads and writes rows, nothing more.
    let as_app = |query: &str| {
        run(
            Command::new("mariadb")
                .args([
                    "--no-defaults",
                    "-h",
                    "127.0.0.1",
                    "-u",
                    "seckill_app",
                    "-N",
                    "-B",
                ])
                .arg(format!("--port={}", ports.mysql))
                .env("MYSQL_PWD", &app)
                .args(["seckill", "-e", query]),
            Duration::from_secs(30),
        )
    };
    let before = sql(state, "SELECT COUNT(*) FROM orders");
    for refused in [
        "DROP TABLE orders",
        "DELETE FROM orders",
        "ALTER TABLE orders ADD COLUMN x INT",
        "CREATE TABLE x (y INT)",
    ] {
        let out = as_app(refused);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("denied"),
            "the application user could run {refused}: {err}"
        );
    }
    let out = as_app("SELECT COUNT(*) FROM orders");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), before);
    // The gateway's Redis user cannot flush, reconfigure, script or replay.
    let gateway_pw = secret("redis-gateway");
    for refused in [
        &["FLUSHALL"][..],
        &["CONFIG", "GET", "maxmemory"],
        &["EVAL", "return 1", "0"],
        &["SECKILL.APPLY", "1", "1-1", "u", "1", "1", "1", "1"],
    ] {
        let out = run(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &ports.redis.to_string()])
                .args(["--user", "seckill-gateway", "--no-auth-warning"])
                .env("REDISCLI_AUTH", &gateway_pw)
                .args(refused),
            Duration::from_secs(10),
        );
        let reply = String::from_utf8_lossy(&out.stdout);
        assert!(
            reply.contains("NOPERM"),
            "seckill-gateway ran {refused:?}: {reply}"
        );
    }
    // No password in any log or on the console.
    let mut texts = vec![("console".to_owned(), console.to_owned())];
    for e in std::fs::read_dir(state.join("logs")).unwrap().flatten() {
        texts.push((
            e.path().display().to_string(),
            std::fs::read_to_string(e.path()).unwrap_or_default(),
        ));
    }
    for e in std::fs::read_dir(&secrets).unwrap().flatten() {
        let pw = std::fs::read_to_string(e.path()).unwrap().trim().to_owned();
        for (name, text) in &texts {
            assert!(
                !text.contains(&pw),
                "the password in {} appears in {name}",
                e.path().display()
            );
        }
    }
}

/// The shell scripts (the local stack, its shared library, the benchmarks) are checked by
/// shellcheck, following what they source (quoting and error handling mistakes).
/// Six consecutive free ports whose cluster bus ports (+10000) are free too, all below the
/// ephemeral range (32768..): a bus port there may be held by an outgoing connection.
fn cluster_base_port() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    for n in 0..2_000u32 {
        let base = 20_000 + ((std::process::id().wrapping_mul(7919) + n * 131) % 2_700) as u16;
        if (base..base + 6).all(|p| free(p) && free(p + 10_000)) {
            return base;
        }
    }
    panic!("no six consecutive free ports");
}

/// `make run-cluster`: the same stack on a 3-primary, 3-replica Redis Cluster with
/// `redis.min_replicas` 1: a reservation is acknowledged once its shard's replica holds it,
/// its order reaches MariaDB, the CLI finds the cluster through `stack.yaml` (`seckill lag`
/// per shard, `seckill audit` names the node), and SIGTERM leaves no process or port behind.
#[test]
fn run_cluster_serves_a_sale_on_a_redis_cluster_and_stops_without_leftovers() {
    let state_dir = tempfile::Builder::new()
        .prefix("seckill-cluster-stack-")
        .tempdir()
        .unwrap();
    let state = state_dir.path().join("state");
    let log = state_dir.path().join("run-cluster.log");
    let mut ports = Ports::free_with_cluster();
    let mut stack = Stack::start_with(&state, &mut ports, log, "run-cluster");
    let base = ports.cluster_base.expect("cluster ports");
    let banner = stack.log();
    for want in [
        "Redis Cluster".to_owned(),
        format!("redis-cli -c -p {base}"),
        "redis.min_replicas 1".to_owned(),
        "admin / admin".to_owned(),
    ] {
        assert!(
            banner.contains(&want),
            "banner lacks {want:?}:\n{}",
            stack.tail()
        );
    }
    let stack_file = std::fs::read_to_string(state.join("stack.yaml")).unwrap();
    assert!(
        stack_file.contains(&format!("127.0.0.1:{base}")) && stack_file.contains("cluster_nodes"),
        "{stack_file}"
    );
    let activity = std::fs::read_to_string(state.join("demo-activity"))
        .expect("the demo activity")
        .trim()
        .to_owned();
    let (status, body) = get(ports.gateway, &format!("/api/v1/activities/{activity}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let product = json(&body)["data"]["product_id"]
        .to_string()
        .trim_matches('"')
        .to_owned();
    let token = login(ports.gateway, "alice", "demo-password");
    let (status, reply) = reserve(ports.gateway, &token, &activity, &product);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["data"]["status"], "queued", "{reply}");
    let auth = format!("Bearer {token}");
    wait_for(
        "the order of the reservation",
        Duration::from_secs(30),
        || {
            let (_, body) = http(
                "GET",
                ports.gateway,
                &format!("/api/v1/seckill/result?activity_id={activity}"),
                &[("Authorization", &auth)],
                None,
            )
            .ok()?;
            (json(&body)["data"]["status"] == "success").then_some(())
        },
    );
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(built("seckill"));
        cmd.current_dir(root())
            .env("SECKILL_STATE_DIR", &state)
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("SECKILL_") && k.contains("__") {
                cmd.env_remove(k);
            }
        }
        cmd
    };
    let lag = run_ok(&mut cli(&["lag"]), Duration::from_secs(30));
    assert_eq!(lag.matches("shard 127.0.0.1:").count(), 3, "{lag}");
    assert!(lag.contains("1 acknowledging"), "{lag}");
    assert!(lag.contains(&activity), "{lag}");
    let audit = run_ok(&mut cli(&["audit", &activity]), Duration::from_secs(30));
    assert!(
        audit.contains("served by 127.0.0.1:") && audit.contains("OK"),
        "{audit}"
    );
    let health = run_ok(
        Command::new("bash")
            .arg(root().join("scripts/run-local.sh"))
            .arg("health")
            .env("SECKILL_STATE_DIR", &state)
            .env("SECKILL_REDIS_CLUSTER_PORT", base.to_string())
            .env("SECKILL_GATEWAY_PORT", ports.gateway.to_string())
            .env(
                "SECKILL_WORKER_METRICS_PORT",
                ports.worker_metrics.to_string(),
            )
            .env("SECKILL_MYSQL_PORT", ports.mysql.to_string())
            .env("SECKILL_ETCD_PORT", ports.etcd.to_string()),
        Duration::from_secs(30),
    );
    assert!(health.contains("cluster_state:ok"), "{health}");

    assert!(matches!(stack.stop("TERM", false), 0 | 130 | 143));
    let mut all: Vec<u16> = ports.all().to_vec();
    all.extend((base..base + 6).flat_map(|p| [p, p + 10_000]));
    stack.assert_nothing_left_on(&all);
}

#[test]
fn scripts_pass_shellcheck() {
    require_tool("shellcheck", "the Debian package `shellcheck`");
    let mut scripts = Vec::new();
    for dir in ["scripts", "bench"] {
        shell_scripts(&root().join(dir), &mut scripts);
    }
    scripts.sort();
    assert!(
        scripts.iter().any(|p| p.ends_with("scripts/run-local.sh"))
            && scripts.iter().any(|p| p.ends_with("scripts/lib/stack.sh")),
        "scripts/run-local.sh or scripts/lib/stack.sh not found: {scripts:?}"
    );
    run_ok(
        Command::new("shellcheck")
            .current_dir(root())
            .arg("--external-sources")
            .args(&scripts),
        Duration::from_secs(120),
    );
}

fn shell_scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            shell_scripts(&p, out);
        } else if p.extension().is_some_and(|x| x == "sh") {
            out.push(p);
        }
    }
}
