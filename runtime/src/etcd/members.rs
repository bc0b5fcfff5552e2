//! Service registry: each process keeps `/seckill/members/<kind>/<id>` alive under a lease.
//!
//! The key is written with a lease of `ttl` seconds and kept alive every `ttl / 3`; if the
//! process dies the keep-alives stop and etcd deletes the key when the lease expires. On
//! graceful shutdown the key is deleted and the lease revoked at once. Whenever etcd is
//! unreachable or the lease is lost, [`register`] logs a warning and starts over with backoff:
//! the process keeps serving meanwhile.

use super::{connect, timed};
use crate::backoff::Backoff;
use crate::config::EtcdSettings;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every member key starts with this.
pub const PREFIX: &str = "/seckill/members/";

/// The JSON value of a member key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `gateway` or `worker`.
    pub kind: String,
    /// Unique among live members of a kind: `<hostname>-<pid>`.
    pub id: String,
    /// Where to reach it: the gateway's HTTP listen address, the worker's metrics address
    /// (empty when it has none).
    pub addr: String,
    pub pid: u32,
    /// Version of the binary.
    pub version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
}

impl Member {
    /// This process as a member of `kind`, reachable at `addr`.
    pub fn this_process(kind: &str, addr: String, version: &str) -> Self {
        let pid = std::process::id();
        Self {
            kind: kind.to_owned(),
            id: format!("{}-{pid}", hostname()),
            addr,
            pid,
            version: version.to_owned(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// `/seckill/members/<kind>/<id>`.
    pub fn key(&self) -> String {
        format!("{PREFIX}{}/{}", self.kind, self.id)
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Keeps `member` registered until `shutdown`, then deletes its key. Never fails: errors are
/// logged and retried with backoff. Spawn it; it completes shortly after `shutdown` fires.
pub async fn register(
    etcd: EtcdSettings,
    member: Member,
    ttl_secs: i64,
    shutdown: CancellationToken,
) {
    if !etcd.enabled() {
        return;
    }
    let key = member.key();
    let value = match serde_json::to_string(&member) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the member record; not registering");
            return;
        }
    };
    let ttl_secs = ttl_secs.max(2);
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        match hold(&etcd, &key, &value, ttl_secs, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                // A registration that held for a while retries fast again.
                if started.elapsed() > Duration::from_secs(ttl_secs as u64) {
                    backoff.reset();
                }
                let delay = backoff.next_delay(rand::random());
                tracing::warn!(
                    key = %key, error = format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
                    "etcd registration failed; serving on, retrying in the background"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// One registration: lease, put, keep-alive until shutdown (Ok, key deleted) or until the
/// lease or the connection is lost (Err).
async fn hold(
    etcd: &EtcdSettings,
    key: &str,
    value: &str,
    ttl_secs: i64,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut client = connect(etcd).await?;
    let lease = timed("lease grant", client.lease_grant(ttl_secs, None))
        .await?
        .id();
    timed(
        "put",
        client.put(
            key,
            value,
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    tracing::info!(key = %key, lease, ttl_secs, "registered in etcd");
    let (mut keeper, mut responses) =
        timed("lease keep-alive", client.lease_keep_alive(lease)).await?;
    let period = Duration::from_millis(ttl_secs as u64 * 1000 / 3);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.cancelled() => {
                // Best effort: if etcd is away now, the lease expires the key anyway.
                let deleted = timed("delete", client.delete(key, None)).await;
                let _ = timed("lease revoke", client.lease_revoke(lease)).await;
                match deleted {
                    Ok(_) => tracing::info!(key = %key, "deregistered from etcd"),
                    Err(e) => tracing::warn!(key = %key, error = format!("{e:#}"), "deregistration failed; the lease will expire the key"),
                }
                return Ok(());
            }
        }
        timed("lease keep-alive", keeper.keep_alive()).await?;
        let reply = tokio::time::timeout(super::CALL_TIMEOUT, responses.message()).await;
        match reply {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {}
            Ok(Ok(Some(_))) => anyhow::bail!("lease {lease} expired"),
            Ok(Ok(None)) => anyhow::bail!("keep-alive stream closed"),
            Ok(Err(e)) => return Err(anyhow::Error::new(e).context("keep-alive failed")),
            Err(_) => anyhow::bail!("keep-alive timed out"),
        }
    }
}

/// Every live member, sorted by kind then id. Values that are not member records are
/// skipped with a warning.
pub async fn list(etcd: &EtcdSettings) -> anyhow::Result<Vec<Member>> {
    let mut client = connect(etcd).await?;
    let resp = timed(
        "get",
        client.get(PREFIX, Some(etcd_client::GetOptions::new().with_prefix())),
    )
    .await?;
    let mut members = Vec::new();
    for kv in resp.kvs() {
        match serde_json::from_slice::<Member>(kv.value()) {
            Ok(m) => members.push(m),
            Err(e) => tracing::warn!(
                key = %String::from_utf8_lossy(kv.key()), error = %e,
                "not a member record; skipped"
            ),
        }
    }
    members.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_json_shape() {
        let m = Member::this_process("gateway", "127.0.0.1:8080".into(), "0.1.0");
        assert!(m.key().starts_with("/seckill/members/gateway/"));
        assert!(m.id.ends_with(&format!("-{}", std::process::id())));
        let v: serde_json::Value = serde_json::to_value(&m).expect("json");
        for field in ["kind", "id", "addr", "pid", "version", "started_at"] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        assert!(chrono::DateTime::parse_from_rfc3339(&m.started_at).is_ok());
    }
}
