//! Mirrors every key under an etcd prefix and reports the whole mirror after each change.
//!
//! [`watch_prefix`] reads the prefix, reports it, then follows a watch from the next revision.
//! When etcd is unreachable it logs a warning and retries with backoff; the last mirror stays
//! in force meanwhile (an etcd outage changes no setting). Each reconnection re-reads the
//! prefix, so nothing missed during the outage is lost.

use super::{connect, timed};
use crate::backoff::Backoff;
use crate::config::EtcdSettings;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Key (without the prefix) -> value, both UTF-8 (other keys are skipped).
pub type Mirror = BTreeMap<String, String>;

/// Follows `prefix` until `shutdown`, calling `on_change` with the full mirror after the
/// first read and after every change. Never fails.
pub async fn watch_prefix(
    etcd: EtcdSettings,
    prefix: String,
    mut on_change: impl FnMut(&Mirror) + Send,
    shutdown: CancellationToken,
) {
    if !etcd.enabled() {
        return;
    }
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        let r = tokio::select! {
            r = follow(&etcd, &prefix, &mut on_change) => r,
            _ = shutdown.cancelled() => return,
        };
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        let delay = backoff.next_delay(rand::random());
        tracing::warn!(
            prefix = %prefix, error = format!("{:#}", r.err().unwrap_or_else(|| anyhow::anyhow!("watch ended"))),
            retry_in_ms = delay.as_millis() as u64,
            "etcd watch interrupted; keeping the last settings, retrying in the background"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn follow(
    etcd: &EtcdSettings,
    prefix: &str,
    on_change: &mut (impl FnMut(&Mirror) + Send),
) -> anyhow::Result<()> {
    let mut client = connect(etcd).await?;
    let resp = timed(
        "get",
        client.get(prefix, Some(etcd_client::GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut mirror = Mirror::new();
    for kv in resp.kvs() {
        if let Some((k, v)) = decode(prefix, kv.key(), kv.value()) {
            mirror.insert(k, v);
        }
    }
    on_change(&mirror);
    let mut stream = timed(
        "watch",
        client.watch(
            prefix,
            Some(
                etcd_client::WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        ),
    )
    .await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            anyhow::bail!("watch cancelled by etcd: {}", resp.cancel_reason());
        }
        let mut changed = false;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let Some(key) = std::str::from_utf8(kv.key())
                .ok()
                .and_then(|k| k.strip_prefix(prefix))
            else {
                continue;
            };
            match ev.event_type() {
                etcd_client::EventType::Put => {
                    if let Some((k, v)) = decode(prefix, kv.key(), kv.value()) {
                        changed |= mirror.insert(k, v.clone()).as_ref() != Some(&v);
                    }
                }
                etcd_client::EventType::Delete => changed |= mirror.remove(key).is_some(),
            }
        }
        if changed {
            on_change(&mirror);
        }
    }
    anyhow::bail!("watch stream closed")
}

fn decode(prefix: &str, key: &[u8], value: &[u8]) -> Option<(String, String)> {
    let key = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    let value = std::str::from_utf8(value).ok()?;
    Some((key.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_lose_the_prefix_and_values_are_trimmed() {
        assert_eq!(
            decode(
                "/seckill/config/",
                b"/seckill/config/rate_limit.per_user_burst",
                b" 5\n"
            ),
            Some(("rate_limit.per_user_burst".into(), "5".into()))
        );
        assert_eq!(decode("/seckill/config/", b"/other/x", b"1"), None);
        assert_eq!(decode("/p/", b"/p/x", &[0xff]), None);
    }
}
