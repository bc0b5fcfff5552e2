//! The provisioned Grafana dashboard (`deployments/grafana/`): valid JSON, every panel has a
//! datasource that provisioning defines and queries that name metrics the crates export, the
//! panels the issue asks for exist, and the provisioning paths match docker-compose's mounts.

mod support;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use support::*;

/// Metrics the dashboard shows that the crates do not export yet, with who must add them.
/// The dashboard may name these; [`not_yet_exported_list_is_current`] fails as soon as one
/// is exported, so the entry gets removed and the strict check covers it from then on.
const NOT_YET_EXPORTED: &[(&str, &str)] = &[];

fn dashboard() -> Json {
    let path = root().join("deployments/grafana/dashboards/seckill.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(rel)).unwrap())
        .unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// (panel title, datasource uid, expressions) of every non-row panel.
fn panels() -> Vec<(String, String, Vec<String>)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("").to_owned();
        let uid = p["datasource"]["uid"].as_str().unwrap_or("").to_owned();
        let exprs = p["targets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        assert_eq!(
                            t["datasource"]["uid"].as_str(),
                            Some(uid.as_str()),
                            "panel {title}: target datasource differs from the panel's"
                        );
                        t["expr"].as_str().unwrap_or("").to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((title, uid, exprs));
    }
    out
}

#[test]
fn promql_metrics_finds_selectors_only() {
    let got = promql_metrics(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"$route"}[$__rate_interval]))) / on(x) b_total > 1e3 or absent(up{job="w"})"#,
    );
    let want: BTreeSet<String> = ["a_bucket", "b_total", "up"].map(String::from).into();
    assert_eq!(got, want);
}

#[test]
fn every_panel_has_a_provisioned_datasource_and_a_query() {
    let ds = yaml("deployments/grafana/provisioning/datasources/prometheus.yml");
    let uids: BTreeSet<String> = ds["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .filter(|d| d["type"] == "prometheus")
        .filter_map(|d| d["uid"].as_str().map(String::from))
        .collect();
    let d = dashboard();
    assert!(
        d["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "dashboard needs a uid"
    );
    let panels = panels();
    assert!(panels.len() >= 10, "only {} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        let g = &p["gridPos"];
        for k in ["x", "y", "w", "h"] {
            assert!(g[k].is_u64(), "panel {} lacks gridPos.{k}", p["title"]);
        }
    }
    for (title, uid, exprs) in panels {
        assert!(
            uids.contains(&uid),
            "panel {title}: datasource uid {uid:?} is not provisioned ({uids:?})"
        );
        assert!(!exprs.is_empty(), "panel {title} has no query");
        for e in exprs {
            assert!(!e.trim().is_empty(), "panel {title} has an empty query");
        }
    }
}

#[test]
fn dashboard_queries_name_exported_metrics() {
    let mut known = exported_metrics();
    known.extend(PROMETHEUS_BUILTIN.iter().map(|s| s.to_string()));
    known.extend(EXTERNAL_EXPORTERS.iter().map(|(m, _)| m.to_string()));
    let pending: BTreeSet<String> = NOT_YET_EXPORTED
        .iter()
        .map(|(m, _)| m.to_string())
        .collect();
    for (title, _, exprs) in panels() {
        for e in exprs {
            let names = promql_metrics(&e);
            assert!(!names.is_empty(), "panel {title}: no metric in {e}");
            for n in names {
                assert!(
                    is_known(&n, &known) || pending.contains(&n),
                    "panel {title} queries {n}, which no crate exports:\n{e}\nexported: {known:?}"
                );
            }
        }
    }
}

#[test]
fn not_yet_exported_list_is_current() {
    let known = exported_metrics();
    for (m, owner) in NOT_YET_EXPORTED {
        assert!(
            !known.contains(*m),
            "{m} is exported now ({owner}): remove it from NOT_YET_EXPORTED"
        );
    }
}

/// The panels issue 5 asks for, found by the metrics they query.
#[test]
fn dashboard_covers_the_required_views() {
    let all: Vec<(String, String)> = panels()
        .into_iter()
        .flat_map(|(t, _, es)| es.into_iter().map(move |e| (t.clone(), e)))
        .collect();
    let has = |what: &str, pred: &dyn Fn(&str) -> bool| {
        assert!(all.iter().any(|(_, e)| pred(e)), "no panel shows {what}");
    };
    has("QPS", &|e| {
        e.contains("rate(seckill_gateway_http_requests_total")
    });
    for q in ["0.5", "0.95", "0.99"] {
        has(&format!("latency quantile {q}"), &|e| {
            e.contains(&format!("histogram_quantile({q},"))
                && e.contains("seckill_gateway_http_request_duration_seconds_bucket")
        });
    }
    has("error rate by status code", &|e| {
        e.contains("seckill_gateway_http_requests_total") && e.contains("by (status)")
    });
    has("stock remaining", &|e| e.contains("stock_remaining"));
    has("stream lag", &|e| e.contains("seckill_worker_group_lag"));
    has("dead letters", &|e| {
        e.contains("seckill_worker_dead_letters")
    });
    has("process CPU", &|e| e.contains("process_cpu_seconds_total"));
    has("process memory", &|e| {
        e.contains("process_resident_memory_bytes")
    });
}

/// docker-compose mounts provisioning and dashboards where the provider looks for them.
#[test]
fn provisioning_matches_the_compose_mounts() {
    let provider = yaml("deployments/grafana/provisioning/dashboards/seckill.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path")
        .to_owned();
    let compose = yaml("docker-compose.yml");
    let vols: Vec<String> = compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .expect("grafana volumes")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let mounted =
        |src: &str, dst: &str| vols.iter().any(|v| v.starts_with(&format!("{src}:{dst}")));
    assert!(
        mounted("./deployments/grafana/dashboards", &path),
        "dashboards must be mounted at {path}: {vols:?}"
    );
    assert!(
        mounted(
            "./deployments/grafana/provisioning",
            "/etc/grafana/provisioning"
        ),
        "{vols:?}"
    );
    let ds = yaml("deployments/grafana/provisioning/datasources/prometheus.yml");
    let url = ds["datasources"][0]["url"].as_str().unwrap_or("");
    assert!(
        compose["services"]["prometheus"].is_mapping() && url.contains("prometheus:9090"),
        "the datasource must point at the compose service prometheus:9090, not {url}"
    );
}
