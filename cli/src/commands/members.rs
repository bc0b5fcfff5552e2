//! `seckill members`: live gateways and workers registered in etcd.

use crate::settings::Settings;
use anyhow::{bail, Context};
use seckill_runtime::Member;
use std::process::ExitCode;

/// One row per live member key under `/seckill/members/`.
pub(crate) async fn list(s: &Settings) -> anyhow::Result<ExitCode> {
    if !s.etcd.enabled() {
        bail!(
            "etcd is not configured: set etcd.endpoints in the config file \
             (or SECKILL_ETCD__ENDPOINTS='[http://127.0.0.1:2379]')"
        );
    }
    let members = seckill_runtime::etcd::members::list(&s.etcd)
        .await
        .with_context(|| {
            format!(
                "Failed to read members from etcd {}",
                s.etcd.redacted_endpoints()
            )
        })?;
    print!("{}", table(&members));
    if members.is_empty() {
        eprintln!("no live members");
    }
    Ok(ExitCode::SUCCESS)
}

/// The `seckill members` table: KIND, ID, ADDR, PID, STARTED, VERSION.
fn table(members: &[Member]) -> String {
    let header = ["KIND", "ID", "ADDR", "PID", "STARTED", "VERSION"].map(str::to_owned);
    let rows: Vec<[String; 6]> = members
        .iter()
        .map(|m| {
            [
                m.kind.clone(),
                m.id.clone(),
                if m.addr.is_empty() {
                    "-".into()
                } else {
                    m.addr.clone()
                },
                m.pid.to_string(),
                m.started_at.clone(),
                m.version.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let m = Member {
            kind: "gateway".into(),
            id: "host-12".into(),
            addr: "127.0.0.1:8080".into(),
            pid: 12,
            version: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        let t = table(&[m]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("KIND     ID       ADDR"), "{t}");
        assert!(
            lines[1].starts_with("gateway  host-12  127.0.0.1:8080  12"),
            "{t}"
        );
    }
}
