//! Prometheus metrics of the worker (served at `/metrics` by `seckill_runtime::metrics`).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::Arc;

pub struct Metrics {
    pub registry: Registry,
    /// CPU, memory, file descriptors of this process (unprefixed `process_*`).
    pub process: Registry,
    /// Per activity: units left in Redis (SECKILL.STATUS `remaining`).
    pub stock_remaining: IntGaugeVec,
    /// Per activity: entries in the stream.
    pub stream_length: IntGaugeVec,
    /// Per activity: entries not yet delivered to the consumer group.
    pub group_lag: IntGaugeVec,
    /// Per activity: entries delivered but not acked.
    pub group_pending: IntGaugeVec,
    /// Per activity: entries in the dead-letter stream.
    pub dead_letters: IntGaugeVec,
    /// Entries this process dead-lettered, by reason kind.
    pub dead_lettered_total: IntCounterVec,
    pub orders_inserted_total: IntCounter,
    /// Rows already present (redelivered entries): harmless, but worth watching.
    pub duplicates_total: IntCounter,
    /// Entries taken over from idle consumers.
    pub claimed_total: IntCounter,
    pub batch_size: Histogram,
    /// Seconds from BEGIN to COMMIT of one batch insert.
    pub commit_seconds: Histogram,
    /// Retries while MySQL or Redis was unreachable.
    pub retries_total: IntCounterVec,
    /// Consumers of this process whose batch in hand is failing on MySQL right now (they
    /// retry it with backoff, forever; nothing is dead-lettered for it).
    pub database_failing: IntGauge,
    /// Failed MySQL attempts of the consumers, by error code (`1146`, `1142`, `1114`,
    /// `io`, `pool`, `timeout`, ...).
    pub database_errors_total: IntCounterVec,
    /// Dead-lettered reservations whose stock SECKILL.RELEASE returned before the ack.
    pub dead_letter_releases_total: IntCounter,
    /// 1 while this process is the sweeper's leader.
    pub sweeper_leader: IntGauge,
    pub orders_expired_total: IntCounter,
    /// Orders whose stock SECKILL.RELEASE returned (expired or cancelled).
    pub orders_released_total: IntCounter,
    pub release_errors_total: IntCounter,
    /// Cancelled/expired orders whose release failed and is not done yet (backing off);
    /// set by the sweeper's leader.
    pub stuck_releases: IntGauge,
    /// Stream entries removed by SECKILL.TRIM (all final in MySQL).
    pub stream_trimmed_total: IntCounter,
    /// Trim passes over one activity that failed.
    pub trim_errors_total: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new_custom(Some("seckill_worker".into()), None)?;
        let act = &["activity"];
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), act);
        let m = Self {
            process: seckill_runtime::metrics::process_registry()?,
            stock_remaining: gauge(
                "stock_remaining",
                "Units left in Redis (SECKILL.STATUS remaining)",
            )?,
            stream_length: gauge(
                "stream_length",
                "Entries in the activity's reservation stream",
            )?,
            group_lag: gauge(
                "group_lag",
                "Entries not yet delivered to the consumer group",
            )?,
            group_pending: gauge("group_pending", "Entries delivered but not acknowledged")?,
            dead_letters: gauge(
                "dead_letters",
                "Entries in the activity's dead-letter stream",
            )?,
            dead_lettered_total: IntCounterVec::new(
                Opts::new(
                    "dead_lettered_total",
                    "Entries moved to a dead-letter stream",
                ),
                &["reason"],
            )?,
            orders_inserted_total: IntCounter::new("orders_inserted_total", "Order rows inserted")?,
            duplicates_total: IntCounter::new(
                "duplicates_total",
                "Entries whose order row already existed (redelivery)",
            )?,
            claimed_total: IntCounter::new("claimed_total", "Entries taken over with XAUTOCLAIM")?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("batch_size", "Entries per processed batch").buckets(vec![
                    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0,
                ]),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new("commit_seconds", "Duration of one batch transaction")
                    .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14)?),
            )?,
            retries_total: IntCounterVec::new(
                Opts::new("retries_total", "Retries after a failure, by dependency"),
                &["dependency"],
            )?,
            database_failing: IntGauge::new(
                "database_failing",
                "Consumers whose batch is failing on MySQL right now (retried, never dead-lettered)",
            )?,
            database_errors_total: IntCounterVec::new(
                Opts::new(
                    "database_errors_total",
                    "Failed MySQL attempts of the consumers, by error code",
                ),
                &["code"],
            )?,
            dead_letter_releases_total: IntCounter::new(
                "dead_letter_releases_total",
                "Dead-lettered reservations whose stock was returned with SECKILL.RELEASE",
            )?,
            sweeper_leader: IntGauge::new("sweeper_leader", "1 while this process sweeps")?,
            orders_expired_total: IntCounter::new(
                "orders_expired_total",
                "Pending orders expired by the sweeper",
            )?,
            orders_released_total: IntCounter::new(
                "orders_released_total",
                "Cancelled or expired orders whose stock was returned",
            )?,
            release_errors_total: IntCounter::new(
                "release_errors_total",
                "SECKILL.RELEASE calls that failed",
            )?,
            stuck_releases: IntGauge::new(
                "stuck_releases",
                "Cancelled/expired orders whose stock release keeps failing (backing off)",
            )?,
            stream_trimmed_total: IntCounter::new(
                "stream_trimmed_total",
                "Stream entries removed by SECKILL.TRIM once final in MySQL",
            )?,
            trim_errors_total: IntCounter::new(
                "trim_errors_total",
                "Trim passes over one activity that failed",
            )?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.stock_remaining.clone()))?;
        r.register(Box::new(m.stream_length.clone()))?;
        r.register(Box::new(m.group_lag.clone()))?;
        r.register(Box::new(m.group_pending.clone()))?;
        r.register(Box::new(m.dead_letters.clone()))?;
        r.register(Box::new(m.dead_lettered_total.clone()))?;
        r.register(Box::new(m.orders_inserted_total.clone()))?;
        r.register(Box::new(m.duplicates_total.clone()))?;
        r.register(Box::new(m.claimed_total.clone()))?;
        r.register(Box::new(m.batch_size.clone()))?;
        r.register(Box::new(m.commit_seconds.clone()))?;
        r.register(Box::new(m.retries_total.clone()))?;
        r.register(Box::new(m.sweeper_leader.clone()))?;
        r.register(Box::new(m.orders_expired_total.clone()))?;
        r.register(Box::new(m.orders_released_total.clone()))?;
        r.register(Box::new(m.release_errors_total.clone()))?;
        r.register(Box::new(m.database_failing.clone()))?;
        r.register(Box::new(m.database_errors_total.clone()))?;
        r.register(Box::new(m.dead_letter_releases_total.clone()))?;
        r.register(Box::new(m.stuck_releases.clone()))?;
        r.register(Box::new(m.stream_trimmed_total.clone()))?;
        r.register(Box::new(m.trim_errors_total.clone()))?;
        Ok(Arc::new(m))
    }

    /// Drops every per-activity series of `activity` (its stream is gone), so dashboards and
    /// alerts do not keep showing the last value of a deleted sale forever.
    pub fn forget_activity(&self, activity: &str) {
        let l = [activity];
        for g in [
            &self.stock_remaining,
            &self.stream_length,
            &self.group_lag,
            &self.group_pending,
            &self.dead_letters,
        ] {
            // Absent series are fine: not every gauge is set for every activity.
            let _ = g.remove_label_values(&l);
        }
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        seckill_runtime::metrics::render(&self.registry, &self.process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_an_activity_drops_only_its_series() -> Result<(), prometheus::Error> {
        let m = Metrics::new()?;
        for a in ["1", "2"] {
            m.stream_length.with_label_values(&[a]).set(5);
            m.group_lag.with_label_values(&[a]).set(0);
        }
        m.stock_remaining.with_label_values(&["1"]).set(3);
        m.forget_activity("1");
        m.forget_activity("never-seen");
        let text = m.render();
        assert!(!text.contains("activity=\"1\""), "{text}");
        assert!(text.contains("seckill_worker_stream_length{activity=\"2\"} 5"));
        Ok(())
    }
}
