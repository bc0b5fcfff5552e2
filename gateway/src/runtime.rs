//! Runtime settings: values under `/seckill/config/` in etcd override the file's, while the
//! gateway runs, without a restart.
//!
//! | etcd key (under `/seckill/config/`) | overrides |
//! |---|---|
//! | `rate_limit.enabled` | `true` / `false` |
//! | `rate_limit.per_user_per_second`, `rate_limit.per_user_burst` | per-user GCRA limit (> 0) |
//! | `rate_limit.per_ip_per_second`, `rate_limit.per_ip_burst` | per-IP GCRA limit (> 0) |
//! | `gateway.sold_out_ttl_ms` | lifetime of the local sold-out flag (0 disables it) |
//! | `gateway.access_log_sample_every` | one access-log line per N ordinary requests (0: none) |
//!
//! A deleted key falls back to the file's value. A value that does not parse (or a zero
//! rate) is ignored with a warning, so a typo can never switch limiting off. While etcd is
//! unreachable the last values stay in force. Each change is logged with its old and new
//! value. The pure part ([`Runtime::with_overrides`]) is unit-tested; [`follow`] applies it.

use crate::config::{RateLimitSettings, Settings};
use crate::state::State;
use seckill_runtime::etcd::watch::{watch_prefix, Mirror};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the runtime settings live in etcd.
pub(crate) const PREFIX: &str = "/seckill/config/";

/// Every key the gateway reads (others are reported once per change as unknown).
pub(crate) const KEYS: &[&str] = &[
    "rate_limit.enabled",
    "rate_limit.per_user_per_second",
    "rate_limit.per_user_burst",
    "rate_limit.per_ip_per_second",
    "rate_limit.per_ip_burst",
    "gateway.sold_out_ttl_ms",
    "gateway.access_log_sample_every",
];

/// The settings that can change at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Runtime {
    pub rate_limit: RateLimitSettings,
    pub sold_out_ttl_ms: u64,
    pub access_log_sample_every: u64,
}

impl Runtime {
    /// The values of the settings file (what applies without etcd).
    pub(crate) fn from_file(s: &Settings) -> Self {
        Self {
            rate_limit: s.rate_limit.clone(),
            sold_out_ttl_ms: s.gateway.sold_out_ttl_ms,
            access_log_sample_every: s.gateway.access_log_sample_every,
        }
    }

    /// `self` (the file's values) with the etcd values of `mirror` on top; also returns one
    /// warning per key that was ignored.
    pub(crate) fn with_overrides(&self, mirror: &Mirror) -> (Runtime, Vec<String>) {
        let mut out = self.clone();
        let mut warnings = Vec::new();
        for (key, raw) in mirror {
            let r = &mut out.rate_limit;
            let applied = match key.as_str() {
                "rate_limit.enabled" => parse_bool(raw).map(|v| r.enabled = v),
                "rate_limit.per_user_per_second" => {
                    positive(raw).map(|v| r.per_user_per_second = v)
                }
                "rate_limit.per_user_burst" => positive(raw).map(|v| r.per_user_burst = v),
                "rate_limit.per_ip_per_second" => positive(raw).map(|v| r.per_ip_per_second = v),
                "rate_limit.per_ip_burst" => positive(raw).map(|v| r.per_ip_burst = v),
                "gateway.sold_out_ttl_ms" => raw
                    .parse::<u64>()
                    .map(|v| out.sold_out_ttl_ms = v)
                    .map_err(|_| "expected milliseconds (0 disables the flag)".to_owned()),
                "gateway.access_log_sample_every" => raw
                    .parse::<u64>()
                    .map(|v| out.access_log_sample_every = v)
                    .map_err(|_| "expected a whole number (0: no sampled lines)".to_owned()),
                _ => Err(format!("unknown key (known: {})", KEYS.join(", "))),
            };
            if let Err(why) = applied {
                warnings.push(format!("{PREFIX}{key} = {raw:?} ignored: {why}"));
            }
        }
        (out, warnings)
    }

    /// `(key, old, new)` for every setting that differs.
    pub(crate) fn changes(&self, new: &Runtime) -> Vec<(&'static str, String, String)> {
        let (a, b) = (&self.rate_limit, &new.rate_limit);
        let mut out = Vec::new();
        let mut cmp = |k: &'static str, x: String, y: String| {
            if x != y {
                out.push((k, x, y));
            }
        };
        cmp(KEYS[0], a.enabled.to_string(), b.enabled.to_string());
        cmp(
            KEYS[1],
            a.per_user_per_second.to_string(),
            b.per_user_per_second.to_string(),
        );
        cmp(
            KEYS[2],
            a.per_user_burst.to_string(),
            b.per_user_burst.to_string(),
        );
        cmp(
            KEYS[3],
            a.per_ip_per_second.to_string(),
            b.per_ip_per_second.to_string(),
        );
        cmp(
            KEYS[4],
            a.per_ip_burst.to_string(),
            b.per_ip_burst.to_string(),
        );
        cmp(
            KEYS[5],
            self.sold_out_ttl_ms.to_string(),
            new.sold_out_ttl_ms.to_string(),
        );
        cmp(
            KEYS[6],
            self.access_log_sample_every.to_string(),
            new.access_log_sample_every.to_string(),
        );
        out
    }
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn positive(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err("expected a positive integer".into()),
    }
}

/// Puts `new` in force on the shared state and logs what changed.
pub(crate) fn apply(state: &State, current: &Runtime, new: &Runtime) {
    for (key, old, value) in current.changes(new) {
        tracing::info!(setting = key, old = %old, new = %value, "runtime setting changed");
    }
    state.limits.apply(&new.rate_limit);
    state
        .sold_out
        .set_ttl(Duration::from_millis(new.sold_out_ttl_ms));
    state
        .access_log
        .set_sample_every(new.access_log_sample_every);
}

/// Follows `/seckill/config/` until `shutdown` (nothing when etcd is not configured).
pub(crate) async fn follow(state: State, shutdown: CancellationToken) {
    let etcd = &state.settings.etcd;
    if !etcd.enabled() {
        return;
    }
    let file = Runtime::from_file(&state.settings);
    let mut current = file.clone();
    let on_change = {
        let state = state.clone();
        move |mirror: &Mirror| {
            let (new, warnings) = file.with_overrides(mirror);
            for w in warnings {
                tracing::warn!("{w}");
            }
            if new != current {
                apply(&state, &current, &new);
                current = new;
            }
        }
    };
    tracing::info!(prefix = PREFIX, "following runtime settings in etcd");
    watch_prefix(etcd.clone(), PREFIX.into(), on_change, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(pairs: &[(&str, &str)]) -> Mirror {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn etcd_values_override_the_file_and_bad_ones_are_ignored() {
        let file = Runtime::from_file(&Settings::default());
        let (r, w) = file.with_overrides(&mirror(&[]));
        assert_eq!(r, file, "no key: the file's values");
        assert!(w.is_empty());

        let cases: &[(&str, &str, bool)] = &[
            ("rate_limit.per_user_burst", "1", true),
            ("rate_limit.per_user_burst", "0", false),
            ("rate_limit.per_user_burst", "-3", false),
            ("rate_limit.per_user_burst", "many", false),
            ("rate_limit.per_user_per_second", "7", true),
            ("rate_limit.per_ip_per_second", "9", true),
            ("rate_limit.per_ip_burst", "10", true),
            ("rate_limit.enabled", "false", true),
            ("rate_limit.enabled", "maybe", false),
            ("gateway.sold_out_ttl_ms", "0", true),
            ("gateway.sold_out_ttl_ms", "1s", false),
            ("gateway.access_log_sample_every", "1", true),
            ("gateway.access_log_sample_every", "-1", false),
            ("gateway.unknown", "1", false),
        ];
        for (key, value, ok) in cases {
            let (r, w) = file.with_overrides(&mirror(&[(key, value)]));
            assert_eq!(w.is_empty(), *ok, "{key}={value}: {w:?}");
            assert_eq!(r != file, *ok, "{key}={value} changed {r:?}");
        }
        let (r, _) = file.with_overrides(&mirror(&[
            ("rate_limit.per_user_burst", "1"),
            ("gateway.sold_out_ttl_ms", "250"),
        ]));
        assert_eq!(r.rate_limit.per_user_burst, 1);
        assert_eq!(r.sold_out_ttl_ms, 250);
        assert_eq!(
            r.rate_limit.per_user_per_second,
            file.rate_limit.per_user_per_second
        );
        let changes = file.changes(&r);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].0, "rate_limit.per_user_burst");
    }
}
