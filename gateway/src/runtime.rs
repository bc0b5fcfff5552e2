//! Runtime settings: values under `/seckill/config/` in etcd override the file's, while the
//! gateway runs, without a restart.
//!
//! | etcd key (under `/seckill/config/`) | overrides |
//! |---|---|
//! | `rate_limit.enabled` | `true` / `false` |
//! | `rate_limit.per_user_per_second`, `rate_limit.per_user_burst` | per-user GCRA limit (> 0) |
//! | `rate_limit.per_ip_per_second`, `rate_limit.per_ip_burst` | per-IP GCRA limit (> 0) |
//! | `rate_limit.auth_per_ip_per_minute`, `rate_limit.auth_per_ip_burst` | login/register per client (> 0) |
//! | `rate_limit.auth_per_username_per_minute`, `rate_limit.auth_per_username_burst` | login/register per username (> 0) |
//! | `gateway.sold_out_ttl_ms` | lifetime of the local sold-out flag (0 disables it) |
//! | `gateway.access_log_sample_every` | one access-log line per N ordinary requests (0: none) |
//! | `admission.required` | `true` / `false`: reservations need an admission token |
//! | `admission.difficulty` | proof-of-work bits of an admission, 0 to 28 (0: none) |
//! | `admission.window_ms` | the opening window of the lottery, 0 to 10000 (0: first come) |
//! | `admission.required.<activity>`, `admission.difficulty.<activity>` | the same, for one activity |
//!
//! A deleted key falls back to the file's value. A value that does not parse (or a zero
//! rate) is ignored with a warning, so a typo can never switch limiting off. While etcd is
//! unreachable the last values stay in force. Each change is logged with its old and new
//! value. The pure part ([`Runtime::with_overrides`]) is unit-tested; [`follow`] applies it.

use crate::admission::Policy;
use crate::config::{RateLimitSettings, Settings, MAX_WINDOW_MS};
use crate::state::State;
use seckill_core::admission::MAX_DIFFICULTY;
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
    "rate_limit.auth_per_ip_per_minute",
    "rate_limit.auth_per_ip_burst",
    "rate_limit.auth_per_username_per_minute",
    "rate_limit.auth_per_username_burst",
    "admission.required",
    "admission.difficulty",
    "admission.window_ms",
    "admission.required.<activity>",
    "admission.difficulty.<activity>",
];

/// The settings that can change at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Runtime {
    pub rate_limit: RateLimitSettings,
    pub sold_out_ttl_ms: u64,
    pub access_log_sample_every: u64,
    pub admission: Policy,
}

impl Runtime {
    /// The values of the settings file (what applies without etcd).
    pub(crate) fn from_file(s: &Settings) -> Self {
        Self {
            rate_limit: s.rate_limit.clone(),
            sold_out_ttl_ms: s.gateway.sold_out_ttl_ms,
            access_log_sample_every: s.gateway.access_log_sample_every,
            admission: Policy::from_settings(&s.admission),
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
                "rate_limit.auth_per_ip_per_minute" => {
                    positive(raw).map(|v| r.auth_per_ip_per_minute = v)
                }
                "rate_limit.auth_per_ip_burst" => positive(raw).map(|v| r.auth_per_ip_burst = v),
                "rate_limit.auth_per_username_per_minute" => {
                    positive(raw).map(|v| r.auth_per_username_per_minute = v)
                }
                "rate_limit.auth_per_username_burst" => {
                    positive(raw).map(|v| r.auth_per_username_burst = v)
                }
                "admission.required" => parse_bool(raw).map(|v| out.admission.required = v),
                "admission.difficulty" => difficulty(raw).map(|v| out.admission.difficulty = v),
                "admission.window_ms" => match raw.parse::<u64>() {
                    Ok(v) if v <= MAX_WINDOW_MS => {
                        out.admission.window_ms = v;
                        Ok(())
                    }
                    _ => Err(format!("expected milliseconds from 0 to {MAX_WINDOW_MS}")),
                },
                other => match per_activity(other) {
                    Some(("required", id)) => parse_bool(raw).map(|v| {
                        out.admission
                            .activities
                            .entry(id.to_owned())
                            .or_default()
                            .required = Some(v)
                    }),
                    Some(("difficulty", id)) => difficulty(raw).map(|v| {
                        out.admission
                            .activities
                            .entry(id.to_owned())
                            .or_default()
                            .difficulty = Some(v)
                    }),
                    _ => Err(format!("unknown key (known: {})", KEYS.join(", "))),
                },
            };
            if let Err(why) = applied {
                warnings.push(format!("{PREFIX}{key} = {raw:?} ignored: {why}"));
            }
        }
        (out, warnings)
    }

    /// Every setting as `(key, value)`, per-activity ones included.
    fn entries(&self) -> Vec<(String, String)> {
        let r = &self.rate_limit;
        let a = &self.admission;
        let mut out: Vec<(String, String)> = [
            ("rate_limit.enabled", r.enabled.to_string()),
            (
                "rate_limit.per_user_per_second",
                r.per_user_per_second.to_string(),
            ),
            ("rate_limit.per_user_burst", r.per_user_burst.to_string()),
            (
                "rate_limit.per_ip_per_second",
                r.per_ip_per_second.to_string(),
            ),
            ("rate_limit.per_ip_burst", r.per_ip_burst.to_string()),
            ("gateway.sold_out_ttl_ms", self.sold_out_ttl_ms.to_string()),
            (
                "gateway.access_log_sample_every",
                self.access_log_sample_every.to_string(),
            ),
            (
                "rate_limit.auth_per_ip_per_minute",
                r.auth_per_ip_per_minute.to_string(),
            ),
            (
                "rate_limit.auth_per_ip_burst",
                r.auth_per_ip_burst.to_string(),
            ),
            (
                "rate_limit.auth_per_username_per_minute",
                r.auth_per_username_per_minute.to_string(),
            ),
            (
                "rate_limit.auth_per_username_burst",
                r.auth_per_username_burst.to_string(),
            ),
            ("admission.required", a.required.to_string()),
            ("admission.difficulty", a.difficulty.to_string()),
            ("admission.window_ms", a.window_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (id, o) in &a.activities {
            if let Some(v) = o.required {
                out.push((format!("admission.required.{id}"), v.to_string()));
            }
            if let Some(v) = o.difficulty {
                out.push((format!("admission.difficulty.{id}"), v.to_string()));
            }
        }
        out
    }

    /// `(key, old, new)` for every setting that differs ("-" for a per-activity value that
    /// is not set on one side).
    pub(crate) fn changes(&self, new: &Runtime) -> Vec<(String, String, String)> {
        let old: std::collections::BTreeMap<String, String> = self.entries().into_iter().collect();
        let new: std::collections::BTreeMap<String, String> = new.entries().into_iter().collect();
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        let unset = "-".to_owned();
        keys.into_iter()
            .filter_map(|k| {
                let (x, y) = (old.get(k).unwrap_or(&unset), new.get(k).unwrap_or(&unset));
                (x != y).then(|| (k.clone(), x.clone(), y.clone()))
            })
            .collect()
    }
}

/// `admission.required.<id>` → `("required", id)`, `admission.difficulty.<id>` → ...
fn per_activity(key: &str) -> Option<(&'static str, &str)> {
    let valid = |id: &str| seckill_core::ActivityId::parse(id).is_ok();
    if let Some(id) = key
        .strip_prefix("admission.required.")
        .filter(|id| valid(id))
    {
        return Some(("required", id));
    }
    key.strip_prefix("admission.difficulty.")
        .filter(|id| valid(id))
        .map(|id| ("difficulty", id))
}

fn difficulty(raw: &str) -> Result<u8, String> {
    match raw.parse::<u8>() {
        Ok(v) if v <= MAX_DIFFICULTY => Ok(v),
        _ => Err(format!("expected bits from 0 to {MAX_DIFFICULTY}")),
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
    state.admission.set_policy(new.admission.clone());
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
            ("rate_limit.auth_per_ip_burst", "3", true),
            ("rate_limit.auth_per_username_per_minute", "0", false),
            ("admission.required", "true", true),
            ("admission.required", "sometimes", false),
            ("admission.difficulty", "20", true),
            ("admission.difficulty", "29", false),
            ("admission.window_ms", "500", true),
            ("admission.window_ms", "10001", false),
            ("admission.required.42", "true", true),
            ("admission.difficulty.42", "8", true),
            ("admission.difficulty.a{b}", "8", false),
            ("admission.difficulty.", "8", false),
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
        assert!(changes.iter().any(|c| c.0 == "rate_limit.per_user_burst"));

        let (r, _) = file.with_overrides(&mirror(&[
            ("admission.difficulty.42", "12"),
            ("admission.required", "true"),
        ]));
        assert_eq!(r.admission.rules("42").difficulty, 12);
        assert_eq!(r.admission.rules("43").difficulty, 0);
        assert!(r.admission.rules("43").required);
        let changes = file.changes(&r);
        assert!(
            changes.contains(&("admission.difficulty.42".into(), "-".into(), "12".into())),
            "{changes:?}"
        );
    }
}
