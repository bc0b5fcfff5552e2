//! The access log, priced for a flash sale: a JSON line per request costs more than the
//! request itself at tens of thousands of requests per second (formatting, a write, and in a
//! local stack a pipe to a supervisor), so:
//!
//! - every request that says something is wrong is logged: 5xx, and every 4xx except the
//!   sale's expected refusals;
//! - the rest (2xx, and the hot route's expected refusals: sold out, limit, not started,
//!   ended, rate limited) is sampled: one request in `gateway.access_log_sample_every`
//!   (0: none, 1: every one), changeable live through etcd;
//! - every `gateway.access_log_summary_secs` one `access summary` line gives the requests of
//!   the interval by route and status, with their latency, read from the Prometheus counters
//!   the hot path updates anyway (nothing extra per request).

use crate::metrics::Metrics;
use prometheus::proto::MetricFamily;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a request's line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logged {
    /// Something is wrong: always logged.
    Problem,
    /// One of every `sample_every` ordinary requests.
    Sampled,
}

/// The sampling state shared by every request.
pub(crate) struct AccessLog {
    sample_every: AtomicU64,
    ordinary: AtomicU64,
}

impl AccessLog {
    pub(crate) fn new(sample_every: u64) -> Self {
        Self {
            sample_every: AtomicU64::new(sample_every),
            ordinary: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_sample_every(&self, n: u64) {
        self.sample_every.store(n, Ordering::Relaxed);
    }

    /// Whether the request of `route` (metrics label) that ended in `status` gets a line.
    pub(crate) fn decide(&self, route: &str, status: u16) -> Option<Logged> {
        if !is_ordinary(route, status) {
            return Some(Logged::Problem);
        }
        let every = self.sample_every.load(Ordering::Relaxed);
        if every == 0 {
            return None;
        }
        // A counter, not a random draw: one relaxed add, and exactly 1/n of the lines.
        let n = self.ordinary.fetch_add(1, Ordering::Relaxed);
        n.is_multiple_of(every).then_some(Logged::Sampled)
    }
}

/// Successes, and the refusals a sale produces by the thousand when it works as designed
/// (on the hot route: sold out, limit, not started, ended; anywhere: rate limited, 304).
fn is_ordinary(route: &str, status: u16) -> bool {
    match status {
        200..=399 => true,
        429 => true,
        403 | 409 | 410 => route == "seckill",
        _ => false,
    }
}

/// Logs the `access summary` line every `every` until `shutdown`.
pub(crate) async fn summarize(
    metrics: std::sync::Arc<Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    let mut last = Snapshot::default();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = Snapshot::read(&metrics);
        let delta = now.since(&last);
        last = now;
        if delta.requests.is_empty() {
            continue;
        }
        let total: u64 = delta.requests.values().sum();
        let requests: BTreeMap<String, u64> = delta
            .requests
            .iter()
            .map(|((route, status), n)| (format!("{route} {status}"), *n))
            .collect();
        let latency_ms: BTreeMap<&str, String> = delta
            .latency
            .iter()
            .filter(|(_, h)| h.count > 0)
            .map(|(route, h)| {
                let q = |p| {
                    h.quantile(p)
                        .map_or("-".into(), |s| format!("{:.2}", s * 1e3))
                };
                (route.as_str(), format!("p50 {} p99 {}", q(0.5), q(0.99)))
            })
            .collect();
        tracing::info!(
            target: "access",
            interval_secs = every.as_secs(),
            total,
            requests = ?requests,
            latency_ms = ?latency_ms,
            "access summary"
        );
    }
}

/// A latency histogram's cumulative buckets (upper bound in seconds, count).
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
}

impl Histogram {
    /// The upper bound of the bucket holding the `p` quantile (`None` past the last bound).
    fn quantile(&self, p: f64) -> Option<f64> {
        let rank = (p * self.count as f64).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= rank.max(1))
            .map(|(le, _)| *le)
    }

    fn since(&self, before: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, c)| {
                let prev = before
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0, |(_, c)| *c);
                (*le, c.saturating_sub(prev))
            })
            .collect();
        Histogram {
            buckets,
            count: self.count.saturating_sub(before.count),
        }
    }
}

/// The request counters and latency histograms at one moment.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// (route, status) -> requests.
    requests: BTreeMap<(String, String), u64>,
    /// route -> latency.
    latency: BTreeMap<String, Histogram>,
}

impl Snapshot {
    fn read(m: &Metrics) -> Self {
        let mut out = Snapshot::default();
        use prometheus::core::Collector;
        for family in m.requests.collect() {
            out.add_requests(&family);
        }
        for family in m.latency.collect() {
            out.add_latency(&family);
        }
        out
    }

    fn add_requests(&mut self, family: &MetricFamily) {
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            let n = metric.get_counter().get_value() as u64;
            self.requests.insert((label("route"), label("status")), n);
        }
    }

    fn add_latency(&mut self, family: &MetricFamily) {
        for metric in family.get_metric() {
            let route = metric
                .get_label()
                .iter()
                .find(|l| l.name() == "route")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            let h = metric.get_histogram();
            let buckets = h
                .get_bucket()
                .iter()
                .map(|b| (b.upper_bound(), b.cumulative_count()))
                .collect();
            self.latency.insert(
                route,
                Histogram {
                    buckets,
                    count: h.get_sample_count(),
                },
            );
        }
    }

    fn since(&self, before: &Snapshot) -> Snapshot {
        let requests = self
            .requests
            .iter()
            .filter_map(|(k, n)| {
                let d = n.saturating_sub(before.requests.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect();
        let latency = self
            .latency
            .iter()
            .map(|(route, h)| {
                let d = match before.latency.get(route) {
                    Some(prev) => h.since(prev),
                    None => h.clone(),
                };
                (route.clone(), d)
            })
            .collect();
        Snapshot { requests, latency }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_always_logged_ordinary_requests_sampled() {
        let log = AccessLog::new(4);
        for (route, status) in [
            ("seckill", 500),
            ("seckill", 503),
            ("seckill", 400),
            ("seckill", 401),
            ("login", 409),
            ("order_pay", 403),
            ("unmatched", 404),
        ] {
            assert_eq!(
                log.decide(route, status),
                Some(Logged::Problem),
                "{route} {status}"
            );
        }
        let sampled = (0..100)
            .filter(|i| {
                let status = [200, 409, 410, 403, 429][i % 5];
                log.decide("seckill", status).is_some()
            })
            .count();
        assert_eq!(sampled, 25, "one in four ordinary requests");
        log.set_sample_every(0);
        assert_eq!(log.decide("seckill", 200), None);
        assert_eq!(log.decide("seckill", 500), Some(Logged::Problem));
        log.set_sample_every(1);
        assert!((0..10).all(|_| log.decide("health", 200).is_some()));
    }

    #[test]
    fn summaries_count_what_happened_since_the_last_one() -> Result<(), Box<dyn std::error::Error>>
    {
        let m = Metrics::new()?;
        m.requests.with_label_values(&["seckill", "200"]).inc_by(5);
        m.latency.with_label_values(&["seckill"]).observe(0.0004);
        let first = Snapshot::read(&m);
        m.requests.with_label_values(&["seckill", "200"]).inc_by(3);
        m.requests.with_label_values(&["seckill", "409"]).inc();
        for _ in 0..99 {
            m.latency.with_label_values(&["seckill"]).observe(0.0008);
        }
        m.latency.with_label_values(&["seckill"]).observe(0.02);
        let d = Snapshot::read(&m).since(&first);
        assert_eq!(d.requests.get(&("seckill".into(), "200".into())), Some(&3));
        assert_eq!(d.requests.get(&("seckill".into(), "409".into())), Some(&1));
        let h = &d.latency["seckill"];
        assert_eq!(h.count, 100);
        assert_eq!(h.quantile(0.5), Some(0.001));
        assert_eq!(h.quantile(0.99), Some(0.001));
        assert_eq!(h.quantile(1.0), Some(0.025));
        Ok(())
    }
}
