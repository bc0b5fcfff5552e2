//! `deployments/prometheus.yml` and `deployments/alerts.yml`: promtool accepts them, the
//! alerts fire as their unit tests say, every alert names a metric that exists, and a real
//! Prometheus scrapes a real gateway and worker with the scrape jobs of the file.

mod support;

use seckill_testkit::ports::{retry_on_free_port, wait_for_listener};
use seckill_testkit::ChildGuard;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const PROMTOOL: &str = "the Debian package `prometheus` (it provides promtool)";

fn deployments(file: &str) -> String {
    root().join("deployments").join(file).display().to_string()
}

#[test]
fn promtool_accepts_the_scrape_config() {
    require_tool("promtool", PROMTOOL);
    let out = run_ok(
        Command::new("promtool").args(["check", "config", &deployments("prometheus.yml")]),
        Duration::from_secs(60),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_accepts_the_alert_rules() {
    require_tool("promtool", PROMTOOL);
    let out = run_ok(
        Command::new("promtool").args(["check", "rules", &deployments("alerts.yml")]),
        Duration::from_secs(60),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// deployments/alerts_test.yml: lag is per activity (not summed over workers), any dead letter
/// fires, 5xx above 1% fires and refusals do not, Redis errors seen by the gateway, stalls.
#[test]
fn alert_rules_pass_their_unit_tests() {
    require_tool("promtool", PROMTOOL);
    run_ok(
        Command::new("promtool").args(["test", "rules", &deployments("alerts_test.yml")]),
        Duration::from_secs(120),
    );
}

fn alert_rules() -> Vec<(String, String)> {
    let y: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(deployments("alerts.yml")).unwrap()).unwrap();
    let mut rules = Vec::new();
    for g in y["groups"].as_sequence().expect("groups") {
        for r in g["rules"].as_sequence().expect("rules") {
            rules.push((
                r["alert"].as_str().expect("alert name").to_owned(),
                r["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    rules
}

/// An alert on a metric nobody exports never fires: each one must name real series.
#[test]
fn alert_rules_name_exported_metrics() {
    let mut known = exported_metrics();
    known.extend(PROMETHEUS_BUILTIN.iter().map(|s| s.to_string()));
    known.extend(EXTERNAL_EXPORTERS.iter().map(|(m, _)| m.to_string()));
    let rules = alert_rules();
    for wanted in [
        "SeckillWorkerLagHigh",
        "SeckillDeadLetters",
        "SeckillGateway5xxRate",
        "SeckillRedisDown",
    ] {
        assert!(
            rules.iter().any(|(a, _)| a == wanted),
            "alert {wanted} is missing"
        );
    }
    for (alert, expr) in &rules {
        let names = promql_metrics(expr);
        assert!(!names.is_empty(), "{alert}: no metric in {expr}");
        for n in names {
            assert!(
                is_known(&n, &known),
                "alert {alert} uses {n}, which no crate exports (known: {known:?})"
            );
        }
    }
}

/// Removes SECKILL_* variables of the developer's shell so only the test's settings count.
fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SECKILL_") {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// Starts the server `command(port)` builds on a free port, its output in `log`, and waits
/// until it listens there itself; a port taken before the server bound it makes it exit,
/// and it starts again on another.
fn spawn_on_free_port(
    what: &str,
    log: &Path,
    mut command: impl FnMut(u16) -> Command,
) -> (u16, ChildGuard) {
    retry_on_free_port(what, |port| {
        let f = std::fs::File::create(log)?;
        let mut cmd = command(port);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("failed to start {cmd:?}: {e}")))?;
        let mut guard = ChildGuard::new(child);
        wait_for_listener(&mut guard, port, Duration::from_secs(60))
            .map_err(|e| e.context(format!("its log:\n{}", log_of(log))))?;
        Ok((port, guard))
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The scrape config of the file with the targets moved to the processes of this test.
fn generated_config(gateway: u16, worker: u16) -> String {
    let mut y: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(deployments("prometheus.yml")).unwrap())
            .unwrap();
    // Scrape every second so the test does not wait for the production interval.
    y["global"]["scrape_interval"] = "1s".into();
    y["global"]["scrape_timeout"] = "1s".into();
    y["global"]["evaluation_interval"] = "1s".into();
    y["rule_files"] = Yaml::Sequence(vec![deployments("alerts.yml").into()]);
    let jobs = y["scrape_configs"].as_sequence().expect("scrape_configs");
    let mut kept = Vec::new();
    for (job, port) in [("seckill-gateway", gateway), ("seckill-worker", worker)] {
        let mut j = jobs
            .iter()
            .find(|j| j["job_name"].as_str() == Some(job))
            .unwrap_or_else(|| panic!("deployments/prometheus.yml has no job {job}"))
            .clone();
        j["static_configs"] =
            serde_yaml::from_str(&format!("[{{targets: [\"127.0.0.1:{port}\"]}}]")).unwrap();
        kept.push(j);
    }
    y["scrape_configs"] = Yaml::Sequence(kept);
    serde_yaml::to_string(&y).unwrap()
}

fn prom_query(port: u16, q: &str) -> Json {
    let (status, body) =
        get(port, &format!("/api/v1/query?query={}", urlencode(q))).expect("query Prometheus");
    let v: Json = serde_json::from_str(&body).unwrap_or(Json::Null);
    assert_eq!(status, 200, "query {q} failed: {body}");
    assert_eq!(v["status"], "success", "query {q}: {body}");
    v
}

/// Grafana's built-in variables replaced by what they mean to a plain query.
pub fn grafana_to_promql(expr: &str) -> String {
    let q = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$route", ".*");
    assert!(!q.contains('$'), "unknown Grafana variable in {expr}");
    q
}

#[test]
fn prometheus_scrapes_a_running_gateway_and_worker() {
    require_tool("prometheus", "the Debian package `prometheus`");
    let redis = seckill_testkit::RedisServer::start().expect("start redis-server with the module");
    let db = seckill_testkit::MariaDb::start().expect("start MariaDB");
    let db_url = db.create_database().expect("create a database");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let redis_url = format!("redis://127.0.0.1:{}/", redis.port);

    let (gw_port, _gateway) =
        spawn_on_free_port("seckill-gateway", &d.join("gateway.log"), |port| {
            let mut cmd = Command::new(built("seckill-gateway"));
            clean_env(&mut cmd)
                .current_dir(d)
                .arg("--run-migrations")
                .env("SECKILL_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
                .env("SECKILL_REDIS__URL", &redis_url)
                .env("SECKILL_MYSQL__URL", &db_url)
                .env(
                    "SECKILL_AUTH__JWT_SECRET",
                    "deploy-tests-jwt-secret-0123456789abcdef",
                );
            cmd
        });
    wait_for("the gateway's /health", Duration::from_secs(60), || {
        matches!(get(gw_port, "/health"), Ok((200, _))).then_some(())
    });
    let (wm_port, _worker) = spawn_on_free_port("seckill-worker", &d.join("worker.log"), |port| {
        let mut cmd = Command::new(built("seckill-worker"));
        clean_env(&mut cmd)
            .current_dir(d)
            .env("SECKILL_WORKER__METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("SECKILL_REDIS__URL", &redis_url)
            .env("SECKILL_MYSQL__URL", &db_url);
        cmd
    });
    wait_for("the worker's /metrics", Duration::from_secs(60), || {
        matches!(get(wm_port, "/metrics"), Ok((200, _))).then_some(())
    });

    let config = d.join("prometheus.yml");
    std::fs::write(&config, generated_config(gw_port, wm_port)).unwrap();
    run_ok(
        Command::new("promtool").args(["check", "config", &config.display().to_string()]),
        Duration::from_secs(60),
    );
    let (prom_port, _prometheus) =
        spawn_on_free_port("prometheus", &d.join("prometheus.log"), |port| {
            let mut cmd = Command::new("prometheus");
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn");
            cmd
        });
    wait_for("Prometheus to be ready", Duration::from_secs(60), || {
        matches!(get(prom_port, "/-/ready"), Ok((200, _))).then_some(())
    });

    // Some traffic, so request counters and histograms have series.
    for _ in 0..5 {
        let _ = get(gw_port, "/api/v1/activities");
    }

    let targets = wait_for(
        "both scrape targets to be up",
        Duration::from_secs(60),
        || {
            let (_, body) = get(prom_port, "/api/v1/targets").ok()?;
            let v: Json = serde_json::from_str(&body).ok()?;
            let active = v["data"]["activeTargets"].as_array()?.clone();
            let up = |job: &str| {
                active
                    .iter()
                    .any(|t| t["labels"]["job"] == job && t["health"] == "up")
            };
            (up("seckill-gateway") && up("seckill-worker")).then_some(active)
        },
    );
    assert_eq!(targets.len(), 2, "unexpected targets: {targets:?}");

    // The scraped series carry the names the dashboard and the alerts use.
    wait_for(
        "gateway request counters in Prometheus",
        Duration::from_secs(30),
        || {
            let v = prom_query(
                prom_port,
                r#"seckill_gateway_http_requests_total{job="seckill-gateway",route="activities"}"#,
            );
            (!v["data"]["result"].as_array()?.is_empty()).then_some(())
        },
    );
    let up = prom_query(prom_port, r#"up{job="seckill-worker"}"#);
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");

    // Every alert rule loads and evaluates without error against real series.
    let rules = wait_for(
        "the alert rules to be evaluated",
        Duration::from_secs(30),
        || {
            let (_, body) = get(prom_port, "/api/v1/rules").ok()?;
            let v: Json = serde_json::from_str(&body).ok()?;
            let rules: Vec<Json> = v["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            rules.iter().all(|r| r["health"] == "ok").then_some(rules)
        },
    );
    assert_eq!(
        rules.len(),
        alert_rules().len(),
        "not every rule was loaded"
    );

    // Every dashboard query is valid PromQL for this Prometheus.
    let dash: Json = serde_json::from_str(
        &std::fs::read_to_string(root().join("deployments/grafana/dashboards/seckill.json"))
            .unwrap(),
    )
    .unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            prom_query(prom_port, &grafana_to_promql(t["expr"].as_str().unwrap()));
        }
    }
    drop(db);
}
