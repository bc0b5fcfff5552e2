//! Shared helpers of the deployment tests: repository paths, required external tools, a
//! minimal HTTP client, guards for spawned processes, and PromQL metric-name extraction.
#![allow(dead_code)] // each test binary uses a different subset

use regex::Regex;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The repository root (this crate sits one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("deploy-tests has a parent directory")
        .to_path_buf()
}

/// `target/<profile>` of this build: the binaries and the module the tests run.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable sits in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary or of the module, failing clearly when it was not built.
pub fn built(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} does not exist: build the workspace first (`cargo build --workspace`; `make test` does)",
        p.display()
    );
    p
}

/// Fails (never skips) when an external tool is missing, naming what provides it.
pub fn require_tool(cmd: &str, provided_by: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{cmd}` is not installed: install {provided_by} (scripts/setup.sh should; CI needs it)"
    );
}

/// Runs a command to completion with a deadline; returns its output.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {shown}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{shown}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{shown} did not finish within {timeout:?}");
        }
    }
}

/// Runs a command and asserts that it succeeded, printing its output when it did not.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd, timeout);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A minimal HTTP/1.0 request on 127.0.0.1 (no client crate needed; servers answer 1.0
/// without chunked encoding and close the connection). Returns status and body.
pub fn http(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http("GET", port, path, &[], None)
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Percent-encoding of a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A spawned server killed (SIGKILL) when dropped, even when the test panics.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Metric names the crates export, harvested from the sources that build a prometheus
/// `Registry`: the registry's prefix (`Registry::new_custom(Some("seckill_gateway"))`) joined
/// to each metric constructor's name (`Opts::new("http_requests_total", "help")`).
pub fn exported_metrics() -> BTreeSet<String> {
    let prefix_re = Regex::new(r#"new_custom\(\s*Some\(\s*"([a-z_][a-z0-9_]*)""#).unwrap();
    let name_re = Regex::new(r#"\(\s*"([a-z_][a-z0-9_]*)"\s*,\s*""#).unwrap();
    let mut names = BTreeSet::new();
    for krate in ["gateway", "order-worker", "runtime"] {
        let mut files = Vec::new();
        collect_rs(&root().join(krate).join("src"), &mut files);
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            if !src.contains("Registry") {
                continue;
            }
            let prefix = prefix_re
                .captures(&src)
                .map(|c| format!("{}_", &c[1]))
                .unwrap_or_default();
            for c in name_re.captures_iter(&src) {
                names.insert(format!("{prefix}{}", &c[1]));
            }
            if src.contains("ProcessCollector") {
                for n in [
                    "process_cpu_seconds_total",
                    "process_resident_memory_bytes",
                    "process_virtual_memory_bytes",
                    "process_open_fds",
                    "process_max_fds",
                    "process_start_time_seconds",
                ] {
                    names.insert(n.to_owned());
                }
            }
        }
    }
    assert!(
        names.iter().any(|n| n.starts_with("seckill_gateway_"))
            && names.iter().any(|n| n.starts_with("seckill_worker_")),
        "found no gateway or worker metrics in the sources (did metrics.rs move?): {names:?}"
    );
    names
}

/// Series every Prometheus has without any exporter of ours.
pub const PROMETHEUS_BUILTIN: &[&str] = &["up", "ALERTS", "ALERTS_FOR_STATE"];

/// Metrics of third-party exporters that docker-compose runs next to ours.
pub const EXTERNAL_EXPORTERS: &[(&str, &str)] = &[("redis_up", "redis_exporter")];

/// Whether `name` (possibly with a histogram suffix) is one of `known`.
pub fn is_known(name: &str, known: &BTreeSet<String>) -> bool {
    let base = ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    known.contains(name) || known.contains(base)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The metric names a PromQL expression selects (functions, keywords, label matchers,
/// grouping clauses, ranges, strings and Grafana variables removed).
pub fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let strip = [
        r#""(?:[^"\\]|\\.)*""#,                                             // strings
        r"\{[^}]*\}",                                                       // label matchers
        r"\[[^\]]*\]",                                                      // ranges
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", // grouping
        r"\$\{?\w+\}?",                                                     // Grafana variables
    ];
    let mut s = expr.to_owned();
    for re in strip {
        s = Regex::new(re).unwrap().replace_all(&s, " ").into_owned();
    }
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    ];
    let ident = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?").unwrap();
    let mut out = BTreeSet::new();
    for m in ident.find_iter(&s) {
        let t = m.as_str();
        // Identifiers right after a digit are parts of numbers such as 1e3.
        let prev = s[..m.start()].chars().last();
        if t.ends_with('(') || prev.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        if KEYWORDS.contains(&t.to_ascii_lowercase().as_str()) {
            continue;
        }
        out.insert(t.to_owned());
    }
    out
}
