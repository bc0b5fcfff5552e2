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

fn prod_env() -> Vec<(&'static str, &'static str)> {
    PROD_SECRETS
        .iter()
        .map(|k| (*k, "test-value-0123456789abcdef0123456789abcdef"))
        .collect()
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
        let env: Vec<_> = all.iter().filter(|(k, _)| k != missing).cloned().collect();
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
    let c = rendered(
        &["docker-compose.yml", "docker-compose.prod.yml"],
        &prod_env(),
    );
    let text = serde_yaml::to_string(&c).unwrap();
    for dev in ["seckill-dev-password", "seckill-dev-root-password"] {
        assert!(
            !text.contains(dev),
            "dev default {dev} survives in prod:\n{text}"
        );
    }
    let gw = env_of(&c["services"]["gateway"]);
    let get = |k: &str| {
        gw.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
    };
    assert_eq!(get("SECKILL_GATEWAY__DEV_MODE").as_deref(), Some("false"));
    assert!(get("SECKILL_AUTH__JWT_SECRET").is_some_and(|v| v.starts_with("test-value")));
    assert_eq!(
        c["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"],
        "test-value-0123456789abcdef0123456789abcdef"
    );
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
    // Redis requires a password, and the clients use it.
    let redis_url = get("SECKILL_REDIS__URL").unwrap_or_default();
    assert!(redis_url.contains(":test-value"), "{redis_url}");
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
