//! `docker-compose.yml` and `docker-compose.prod.yml`, checked by `docker-compose config`
//! (no Docker engine needed), and the Dockerfile targets they build.

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
    "SECKILL_MYSQL_PASSWORD",
    "SECKILL_REDIS_PASSWORD",
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
    let (jwt, redis_pw, mysql_pw) = (
        secret("SECKILL_AUTH__JWT_SECRET"),
        secret("SECKILL_REDIS_PASSWORD"),
        secret("SECKILL_MYSQL_PASSWORD"),
    );
    for s in ["gateway", "worker", "migrate"] {
        assert_eq!(var(s, "SECKILL_AUTH__JWT_SECRET"), jwt, "{s}");
        assert_eq!(
            var(s, "SECKILL_REDIS__URL"),
            format!("redis://:{redis_pw}@redis:6379/"),
            "{s} must authenticate to Redis"
        );
        assert_eq!(
            var(s, "SECKILL_MYSQL__URL"),
            format!("mysql://seckill:{mysql_pw}@mysql:3306/seckill"),
            "{s}"
        );
    }
    assert_eq!(var("gateway", "SECKILL_GATEWAY__DEV_MODE"), "false");
    assert_eq!(var("mysql", "MYSQL_PASSWORD"), mysql_pw);
    assert_eq!(
        var("mysql", "MYSQL_ROOT_PASSWORD"),
        secret("MYSQL_ROOT_PASSWORD")
    );
    assert_eq!(
        var("grafana", "GF_SECURITY_ADMIN_PASSWORD"),
        secret("GRAFANA_ADMIN_PASSWORD")
    );
    // Redis requires the password (written to a config include, not the command line), and
    // its exporter and healthcheck use it.
    assert_eq!(var("redis", "SECKILL_REDIS_PASSWORD"), redis_pw);
    let command = serde_yaml::to_string(&c["services"]["redis"]["command"]).unwrap();
    assert!(
        command.contains("requirepass") && command.contains("--include /tmp/auth.conf"),
        "redis must require the password: {command}"
    );
    assert!(
        !command.contains(&redis_pw),
        "the password is on the command line"
    );
    let health = serde_yaml::to_string(&c["services"]["redis"]["healthcheck"]["test"]).unwrap();
    assert!(health.contains("REDISCLI_AUTH"), "{health}");
    assert_eq!(var("redis-exporter", "REDIS_PASSWORD"), redis_pw);
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
