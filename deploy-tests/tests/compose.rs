//! `docker-compose.yml` and `docker-compose.prod.yml`, checked by `docker-compose config`
//! (no Docker engine needed), and the Dockerfile targets they build. Least privilege: each
//! service gets only its own credentials (Redis ACL user, MySQL application user or schema
//! owner), and the Redis image's start command, run here with the image's paths mapped to
//! the repository, renders the ACL users and starts redis-server with them.

mod support;

use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use support::*;

const COMPOSE: &str = "the Debian package `docker-compose` (or `pip install docker-compose`)";

/// Secrets the production override must demand.
const PROD_SECRETS: &[&str] = &[
    "SECKILL_AUTH__JWT_SECRET",
    "SECKILL_MYSQL_APP_PASSWORD",
    "SECKILL_MYSQL_MIGRATE_PASSWORD",
    "SECKILL_REDIS_GATEWAY_PASSWORD",
    "SECKILL_REDIS_WORKER_PASSWORD",
    "SECKILL_REDIS_CLI_PASSWORD",
    "SECKILL_REDIS_EXPORTER_PASSWORD",
    "SECKILL_REDIS_ADMIN_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
];

/// Services that must run for the stack to work (the one-shot `migrate` excluded).
const LONG_RUNNING: &[&str] = &[
    "redis",
    "mysql",
    "etcd",
    "gateway",
    "worker",
    "prometheus",
    "grafana",
    "jaeger",
];

/// `docker-compose -f ... config` with a controlled environment: the variables of the
/// developer's shell that the files read are removed, `extra` added.
fn compose_config(files: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    require_tool("docker-compose", COMPOSE);
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(root());
    for f in files {
        cmd.args(["-f", f]);
    }
    cmd.arg("config");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SECKILL_")
            || k.starts_with("MYSQL_")
            || k.starts_with("GRAFANA_")
            || k.starts_with("COMPOSE_")
            || k == "RUST_LOG"
        {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run(&mut cmd, Duration::from_secs(60))
}

fn rendered(files: &[&str], extra: &[(&str, &str)]) -> Yaml {
    let out = compose_config(files, extra);
    assert!(
        out.status.success(),
        "docker-compose {files:?} config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout).expect("docker-compose config prints YAML")
}

/// A distinct value per secret, so a secret that ends up in the wrong place is seen.
fn prod_env() -> Vec<(&'static str, String)> {
    PROD_SECRETS
        .iter()
        .map(|k| {
            (
                *k,
                format!("test-value-{}-0123456789abcdef", k.to_lowercase()),
            )
        })
        .collect()
}

fn secret(name: &str) -> String {
    prod_env()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{name} is not a prod secret"))
}

fn env_of(svc: &Yaml) -> Vec<(String, String)> {
    svc["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or("").to_owned(),
                        match v {
                            Yaml::String(s) => s.clone(),
                            other => serde_yaml::to_string(other).unwrap_or_default(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_is_valid_and_complete() {
    let c = rendered(&["docker-compose.yml"], &[]);
    let services: BTreeSet<String> = c["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    for s in LONG_RUNNING.iter().chain(&["migrate"]) {
        assert!(services.contains(*s), "service {s} missing: {services:?}");
    }
    for s in LONG_RUNNING {
        assert!(
            c["services"][*s]["healthcheck"]["test"].is_sequence(),
            "service {s} has no healthcheck"
        );
    }
    // The gateway and the worker start only after the migrations succeeded.
    for s in ["gateway", "worker"] {
        assert_eq!(
            c["services"][s]["depends_on"]["migrate"]["condition"],
            "service_completed_successfully",
            "{s} must wait for migrate"
        );
    }
    // Redis runs the image with the module, and the config loads it.
    assert_eq!(c["services"]["redis"]["build"]["target"], "redis");
    assert_redis_loads_the_module(&c);
    // Least privilege in dev too: own Redis users, the MySQL application user, the schema
    // owner for migrations only (and the dev-mode gateway, which migrates at startup).
    let var = |svc: &str, k: &str| {
        env_of(&c["services"][svc])
            .into_iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    for (svc, user) in [("gateway", "seckill-gateway"), ("worker", "seckill-worker")] {
        assert_eq!(var(svc, "SECKILL_REDIS__USERNAME"), user);
        assert!(var(svc, "SECKILL_MYSQL__URL").starts_with("mysql://seckill_app:"));
    }
    assert!(var("migrate", "SECKILL_MYSQL__MIGRATE_URL").starts_with("mysql://seckill_migrate:"));
    assert_eq!(var("worker", "SECKILL_MYSQL__MIGRATE_URL"), "");
    assert_eq!(var("redis", "SECKILL_REDIS_MODE"), "dev");
    assert_eq!(var("redis-exporter", "REDIS_USER"), "seckill-exporter");
    assert_only_own_secrets(&c);
    assert_mysql_creates_the_users(&c);
    // Both processes export their spans to the compose Jaeger (OTLP/gRPC on 4317).
    for s in ["gateway", "worker"] {
        let env = env_of(&c["services"][s]);
        assert!(
            env.iter()
                .any(|(k, v)| k == "SECKILL_TELEMETRY__OTLP_ENDPOINT" && v == "http://jaeger:4317"),
            "{s} does not export spans to jaeger:4317: {env:?}"
        );
    }
}

#[test]
fn prod_override_refuses_to_render_without_secrets() {
    let out = compose_config(&["docker-compose.yml", "docker-compose.prod.yml"], &[]);
    assert!(
        !out.status.success(),
        "the prod override rendered without any secret set"
    );
    // docker-compose stops at the first missing one: drop them one at a time.
    let all = prod_env();
    for missing in PROD_SECRETS {
        let env: Vec<(&str, &str)> = all
            .iter()
            .filter(|(k, _)| k != missing)
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let out = compose_config(&["docker-compose.yml", "docker-compose.prod.yml"], &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(missing),
            "without {missing} the prod config must fail naming it; got: {err}"
        );
    }
}

#[test]
fn prod_override_has_no_default_secrets_and_bounded_services() {
    let env = prod_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let c = rendered(&["docker-compose.yml", "docker-compose.prod.yml"], &env);
    let text = serde_yaml::to_string(&c).unwrap();
    for dev in [
        "seckill-dev-password",
        "seckill-dev-root-password",
        "seckill-dev",
    ] {
        assert!(
            !text.contains(dev),
            "dev default {dev} survives in prod:\n{text}"
        );
    }
    let var = |svc: &str, k: &str| {
        env_of(&c["services"][svc])
            .into_iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{svc} has no {k}"))
    };
    // Each secret reaches exactly the places that need it, under its own name.
    let (jwt, app_pw, owner_pw) = (
        secret("SECKILL_AUTH__JWT_SECRET"),
        secret("SECKILL_MYSQL_APP_PASSWORD"),
        secret("SECKILL_MYSQL_MIGRATE_PASSWORD"),
    );
    let app_url = format!("mysql://seckill_app:{app_pw}@mysql:3306/seckill");
    let owner_url = format!("mysql://seckill_migrate:{owner_pw}@mysql:3306/seckill");
    for s in ["gateway", "worker", "migrate"] {
        assert_eq!(var(s, "SECKILL_AUTH__JWT_SECRET"), jwt, "{s}");
        assert_eq!(var(s, "SECKILL_REDIS__URL"), "redis://redis:6379/", "{s}");
        assert_eq!(
            var(s, "SECKILL_MYSQL__URL"),
            app_url,
            "{s}: the application user"
        );
    }
    // The schema owner's password goes to `migrate` only.
    assert_eq!(var("migrate", "SECKILL_MYSQL__MIGRATE_URL"), owner_url);
    assert_eq!(var("gateway", "SECKILL_MYSQL__MIGRATE_URL"), "");
    // Each binary logs in to Redis as its own ACL user, with its own password only.
    for (s, user) in [("gateway", "seckill-gateway"), ("worker", "seckill-worker")] {
        assert_eq!(var(s, "SECKILL_REDIS__USERNAME"), user);
        let pw = secret(&format!(
            "SECKILL_REDIS_{}_PASSWORD",
            s.to_ascii_uppercase()
        ));
        assert_eq!(var(s, "SECKILL_REDIS__PASSWORD"), pw, "{s}");
    }
    assert_only_own_secrets(&c);
    assert_eq!(var("gateway", "SECKILL_GATEWAY__DEV_MODE"), "false");
    assert_eq!(
        var("mysql", "MYSQL_ROOT_PASSWORD"),
        secret("MYSQL_ROOT_PASSWORD")
    );
    assert_eq!(var("mysql", "SECKILL_MYSQL_APP_PASSWORD"), app_pw);
    assert_eq!(var("mysql", "SECKILL_MYSQL_MIGRATE_PASSWORD"), owner_pw);
    assert_eq!(
        var("grafana", "GF_SECURITY_ADMIN_PASSWORD"),
        secret("GRAFANA_ADMIN_PASSWORD")
    );
    // Redis renders its ACL users (prod: `default` off) from these passwords, in the
    // image's start command (no `command` override, no password on any command line);
    // its healthcheck and the exporter log in as the exporter.
    assert_eq!(var("redis", "SECKILL_REDIS_MODE"), "prod");
    for user in ["GATEWAY", "WORKER", "CLI", "EXPORTER", "ADMIN"] {
        let k = format!("SECKILL_REDIS_{user}_PASSWORD");
        assert_eq!(var("redis", &k), secret(&k));
    }
    assert!(c["services"]["redis"]["command"].is_null());
    let health = serde_yaml::to_string(&c["services"]["redis"]["healthcheck"]["test"]).unwrap();
    assert!(
        health.contains("REDISCLI_AUTH") && health.contains("--user seckill-exporter"),
        "{health}"
    );
    assert_eq!(var("redis-exporter", "REDIS_USER"), "seckill-exporter");
    assert_eq!(
        var("redis-exporter", "REDIS_PASSWORD"),
        secret("SECKILL_REDIS_EXPORTER_PASSWORD")
    );
    assert_mysql_creates_the_users(&c);
    for (name, svc) in c["services"].as_mapping().unwrap() {
        let command = serde_yaml::to_string(&svc["command"]).unwrap();
        for (k, v) in prod_env() {
            assert!(
                !command.contains(&v),
                "{k} is on the command line of {name:?}: {command}"
            );
        }
    }
    assert_redis_loads_the_module(&c);
    for s in LONG_RUNNING {
        let svc = &c["services"][*s];
        assert_eq!(
            svc["restart"], "unless-stopped",
            "{s} needs a restart policy"
        );
        let limits = &svc["deploy"]["resources"]["limits"];
        assert!(
            !limits["memory"].is_null() && !limits["cpus"].is_null(),
            "{s} needs cpu and memory limits"
        );
    }
}

/// The Redis and MySQL passwords of one service are in no other's environment (the redis and
/// mysql containers, which create the users, excepted), and the exporter's password only
/// where the exporter logs in. A dev-mode gateway migrates at startup: it may hold the
/// schema owner's password, in dev mode only.
fn assert_only_own_secrets(c: &Yaml) {
    let env = |svc: &str| env_of(&c["services"][svc]);
    let value = |svc: &str, k: &str| {
        env(svc)
            .into_iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{svc} has no {k}"))
    };
    let passwords = [
        ("gateway", value("redis", "SECKILL_REDIS_GATEWAY_PASSWORD")),
        ("worker", value("redis", "SECKILL_REDIS_WORKER_PASSWORD")),
        ("cli", value("redis", "SECKILL_REDIS_CLI_PASSWORD")),
        (
            "exporter",
            value("redis", "SECKILL_REDIS_EXPORTER_PASSWORD"),
        ),
        ("admin", value("redis", "SECKILL_REDIS_ADMIN_PASSWORD")),
        ("migrate", value("mysql", "SECKILL_MYSQL_MIGRATE_PASSWORD")),
    ];
    let dev_gateway = value("gateway", "SECKILL_GATEWAY__DEV_MODE") == "true";
    for (name, svc) in c["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap_or("");
        if ["redis", "mysql"].contains(&name) {
            continue;
        }
        let text = serde_yaml::to_string(svc).unwrap();
        for (owner, pw) in &passwords {
            let allowed = match *owner {
                "migrate" => name == "migrate" || (dev_gateway && name == "gateway"),
                "gateway" | "worker" => name == *owner,
                "exporter" => name == "redis-exporter",
                _ => false,
            };
            assert!(
                allowed || !text.contains(pw.as_str()),
                "the {owner} password is in the environment of {name}"
            );
        }
    }
}

/// The mysql container runs scripts/mysql-users.sh on its first start (mounted into the
/// image's init directory), with the passwords it needs.
fn assert_mysql_creates_the_users(c: &Yaml) {
    let volumes = serde_yaml::to_string(&c["services"]["mysql"]["volumes"]).unwrap();
    assert!(
        volumes.contains("scripts/mysql-users.sh")
            && volumes.contains("/docker-entrypoint-initdb.d/"),
        "mysql does not create the seckill users: {volumes}"
    );
    let health = serde_yaml::to_string(&c["services"]["mysql"]["healthcheck"]["test"]).unwrap();
    assert!(health.contains("-u seckill_app"), "{health}");
    assert!(
        std::fs::metadata(root().join("scripts/mysql-users.sh"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false),
        "scripts/mysql-users.sh must be executable (the image sources it otherwise)"
    );
}

/// The Dockerfile's `redis` stage puts the module at a path, and whatever command the
/// rendered compose runs redis-server with (the image's CMD unless `command` overrides it)
/// loads it from there.
fn assert_redis_loads_the_module(c: &Yaml) {
    let df = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stage = df
        .split("\nFROM ")
        .find(|s| {
            s.lines()
                .next()
                .is_some_and(|l| l.trim_end().ends_with("AS redis"))
        })
        .expect("Dockerfile has a redis stage");
    let module = stage
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"COPY") && w.iter().any(|x| x.ends_with("libseckill_module.so")))
                .then(|| w.last().map(|p| p.to_string()))
                .flatten()
        })
        .expect("the redis stage copies libseckill_module.so");
    let cmd = stage
        .split("\nCMD ")
        .nth(1)
        .expect("the redis stage has a CMD")
        .replace(['\\', '\n', '"', ','], " ");
    let loads = |text: &str| {
        let w: Vec<&str> = text.split_whitespace().collect();
        w.windows(2).any(|p| p == ["--loadmodule", module.as_str()])
    };
    assert!(loads(&cmd), "the image's CMD does not load {module}: {cmd}");
    let svc = &c["services"]["redis"];
    if !svc["command"].is_null() {
        let command = serde_yaml::to_string(&svc["command"]).unwrap();
        assert!(
            loads(&command),
            "compose's redis command does not load {module}: {command}"
        );
    }
    assert!(
        svc["entrypoint"].is_null(),
        "an entrypoint override would bypass the image's redis-server: {:?}",
        svc["entrypoint"]
    );
}

/// Every build target compose asks for exists in the Dockerfile.
#[test]
fn dockerfile_has_the_targets_compose_builds() {
    let df = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let targets: BTreeSet<String> = df
        .lines()
        .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter()
                .position(|x| x.eq_ignore_ascii_case("AS"))
                .and_then(|i| w.get(i + 1))
                .map(|s| s.to_string())
        })
        .collect();
    for t in ["gateway", "worker", "redis"] {
        assert!(
            targets.contains(t),
            "Dockerfile lacks target {t}: {targets:?}"
        );
    }
    let c = rendered(&["docker-compose.yml"], &[]);
    for (name, svc) in c["services"].as_mapping().unwrap() {
        if let Some(t) = svc["build"]["target"].as_str() {
            assert!(
                targets.contains(t),
                "service {name:?} builds target {t}, which the Dockerfile lacks"
            );
        }
    }
    // The build context must not ship target/ (gigabytes) or local state.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for p in ["target/", ".state/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == p),
            ".dockerignore lacks {p}"
        );
    }
}

/// The `redis` image's start command, run here with the image's paths mapped to the
/// repository's files (no Docker engine): it renders `redis-users.conf` with the passwords
/// of the environment and starts redis-server with them. In prod mode a client that does
/// not log in is refused and each user gets its own commands; no password is on the command
/// line or in the rendered file (hashes only, mode 600). In dev mode `default` stays open.
#[test]
fn the_redis_image_starts_with_the_acl_users() {
    let df = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stage = df
        .split("\nFROM ")
        .find(|s| {
            s.lines()
                .next()
                .is_some_and(|l| l.trim_end().ends_with("AS redis"))
        })
        .expect("Dockerfile has a redis stage");
    for copy in [
        "COPY redis-users.conf /usr/local/etc/redis/users.conf",
        "COPY scripts/redis-users.sh /usr/local/bin/seckill-redis-users",
        "COPY redis.conf /usr/local/etc/redis/redis.conf",
    ] {
        assert!(stage.contains(copy), "the redis stage lacks `{copy}`");
    }
    let cmd_json = stage
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("the redis stage has a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd_json).expect("CMD in exec form");
    assert_eq!(&cmd[..2], ["sh", "-c"], "{cmd:?}");
    let module = bin_dir().join("libseckill_module.so");
    assert!(module.exists(), "build the module first");
    for mode in ["prod", "dev"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let port = seckill_testkit::free_port();
        let users = dir.path().join("users.conf");
        let script = cmd[2]
            .replace(
                "seckill-redis-users",
                &format!("sh {}", root().join("scripts/redis-users.sh").display()),
            )
            .replace(
                "/usr/local/etc/redis/users.conf",
                &root().join("redis-users.conf").display().to_string(),
            )
            .replace(
                "/usr/local/etc/redis/redis.conf",
                &root().join("redis.conf").display().to_string(),
            )
            .replace("/tmp/users.conf", &users.display().to_string())
            .replace(" /data ", &format!(" {} ", data.display()))
            .replace(
                "/usr/local/lib/redis/modules/libseckill_module.so",
                &module.display().to_string(),
            )
            .replace("chown redis:redis", "chown \"$(id -u):$(id -g)\"")
            .replace("docker-entrypoint.sh redis-server", "redis-server")
            .replace(
                "--bind 0.0.0.0",
                &format!("--bind 127.0.0.1 --port {port} --appendonly no --save ''"),
            );
        let passwords: Vec<(String, String)> = ["GATEWAY", "WORKER", "CLI", "EXPORTER", "ADMIN"]
            .iter()
            .map(|u| {
                (
                    format!("SECKILL_REDIS_{u}_PASSWORD"),
                    format!("image-test-{}-{port}", u.to_lowercase()),
                )
            })
            .collect();
        let mut sh = Command::new("sh");
        sh.args(["-c", &script])
            .env("SECKILL_REDIS_MODE", mode)
            .envs(passwords.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = Guard(sh.spawn().unwrap());
        let redis_cli = |args: &[&str], auth: Option<(&str, &str)>| {
            let mut c = Command::new("redis-cli");
            c.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((user, pw)) = auth {
                c.args(["--user", user, "--no-auth-warning"])
                    .env("REDISCLI_AUTH", pw);
            }
            String::from_utf8_lossy(&run(c.args(args), Duration::from_secs(10)).stdout).into_owned()
        };
        wait_for(
            "redis-server from the image's command",
            Duration::from_secs(20),
            || {
                let r = redis_cli(&["PING"], None);
                (r.contains("PONG") || r.contains("NOAUTH")).then_some(())
            },
        );
        let gateway = ("seckill-gateway", passwords[0].1.as_str());
        let anonymous = redis_cli(&["PING"], None);
        if mode == "prod" {
            assert!(anonymous.contains("NOAUTH"), "{mode}: {anonymous}");
        } else {
            assert!(anonymous.contains("PONG"), "{mode}: {anonymous}");
        }
        assert!(
            redis_cli(&["SECKILL.STATUS", "1"], Some(gateway)).contains("NOACTIVITY"),
            "{mode}: the gateway's user cannot run SECKILL.STATUS"
        );
        assert!(redis_cli(&["FLUSHALL"], Some(gateway)).contains("NOPERM"));
        // `exec`: the shell became redis-server; its command line and the rendered file
        // hold no password.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.0.id()))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        assert!(cmdline.contains("redis-server"), "{cmdline}");
        let rendered = std::fs::read_to_string(&users).unwrap();
        let file_mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&users).unwrap().permissions(),
        );
        assert_eq!(file_mode & 0o777, 0o600);
        for (k, v) in &passwords {
            assert!(!cmdline.contains(v), "{k} on redis-server's command line");
            assert!(!rendered.contains(v), "{k} in the rendered users file");
        }
        drop(child);
    }
}

/// `docker-compose.cluster.yml`: the same stack on a Redis Cluster (six nodes with the
/// module in cluster mode, joined by a one-shot init), the gateway and the worker pointed at
/// it with `redis.min_replicas` 1, and otherwise configured as in `docker-compose.yml`.
#[test]
fn cluster_compose_file_is_valid_and_matches_the_standalone_one() {
    let c = rendered(&["docker-compose.cluster.yml"], &[]);
    let base = rendered(&["docker-compose.yml"], &[]);
    let services: BTreeSet<String> = c["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    let nodes: Vec<String> = (1..=6).map(|n| format!("redis-{n}")).collect();
    for s in LONG_RUNNING.iter().filter(|s| **s != "redis") {
        assert!(services.contains(*s), "service {s} missing: {services:?}");
        assert!(
            c["services"][*s]["healthcheck"]["test"].is_sequence(),
            "service {s} has no healthcheck"
        );
    }
    assert!(
        !services.contains("redis"),
        "no standalone redis in the cluster variant"
    );
    for n in &nodes {
        let svc = &c["services"][n.as_str()];
        assert_eq!(svc["build"]["target"], "redis", "{n}");
        let command = serde_yaml::to_string(&svc["command"]).unwrap();
        for want in [
            "--cluster-enabled",
            "--loadmodule",
            "/usr/local/lib/redis/modules/libseckill_module.so",
            "--cluster-require-full-coverage",
            // The ACL users, rendered as the image's own command does.
            "seckill-redis-users",
            "--include /tmp/users.conf",
        ] {
            assert!(command.contains(want), "{n} lacks {want}: {command}");
        }
        assert!(svc["healthcheck"]["test"].is_sequence(), "{n}");
        assert!(
            !svc["volumes"].is_null(),
            "{n} keeps its data (nodes.conf) in a volume"
        );
    }
    let init = &c["services"]["redis-cluster-init"];
    let command = serde_yaml::to_string(&init["command"]).unwrap();
    assert!(
        command.contains("--cluster create") && command.contains("--cluster-replicas 1"),
        "{command}"
    );
    for n in &nodes {
        assert_eq!(
            init["depends_on"][n.as_str()]["condition"],
            "service_healthy",
            "the init waits for {n}"
        );
    }
    let env = |c: &Yaml, s: &str| -> Vec<(String, String)> {
        let mut e = env_of(&c["services"][s]);
        e.sort();
        e
    };
    for s in ["gateway", "worker", "migrate"] {
        let e = env(&c, s);
        let get = |k: &str| {
            e.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_owned())
        };
        assert_eq!(
            get("SECKILL_REDIS__CLUSTER_NODES").as_deref(),
            Some("[redis-1:6379,redis-2:6379,redis-3:6379,redis-4:6379,redis-5:6379,redis-6:6379]"),
            "{s}"
        );
        assert_eq!(
            get("SECKILL_REDIS__MIN_REPLICAS").as_deref(),
            Some("1"),
            "{s}"
        );
        if s != "migrate" {
            assert_eq!(
                get("SECKILL_REDIS__USERNAME"),
                Some(format!("seckill-{s}")),
                "{s} logs in as its own ACL user"
            );
        }
        // Everything but where Redis is equals the standalone file's.
        let rest = |e: Vec<(String, String)>| -> Vec<(String, String)> {
            e.into_iter()
                .filter(|(k, _)| !k.starts_with("SECKILL_REDIS__"))
                .collect()
        };
        assert_eq!(
            rest(e.clone()),
            rest(env(&base, s)),
            "{s} drifted from docker-compose.yml"
        );
    }
    for s in ["gateway", "worker"] {
        assert_eq!(
            c["services"][s]["depends_on"]["redis-cluster-init"]["condition"],
            "service_completed_successfully",
            "{s} must wait for the cluster"
        );
        assert_eq!(
            c["services"][s]["depends_on"]["migrate"]["condition"],
            "service_completed_successfully",
            "{s} must wait for migrate"
        );
        for key in ["ports", "healthcheck", "stop_grace_period"] {
            assert_eq!(
                c["services"][s][key], base["services"][s][key],
                "{s}.{key} drifted from docker-compose.yml"
            );
        }
    }
}
