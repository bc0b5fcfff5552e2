//! Prometheus metrics of the worker (served at `/metrics` by `seckill_runtime::metrics`).

use prometheus::{
    Counter, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
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
    /// Seconds from taking a connection to COMMIT of one batch insert (the wait for its turn
    /// among the process's consumers, `worker.concurrent_inserts`, included).
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
    /// `redis.min_replicas`: replicas that must hold an entry before it becomes an order.
    pub min_replicas: IntGauge,
    /// Batches whose WAIT counted fewer replicas than `redis.min_replicas` (retried).
    pub unreplicated_waits_total: IntCounter,
    /// Seconds the consumers waited for `worker.max_orders_per_sec` (0 while uncapped).
    pub paced_seconds_total: Counter,
    /// 1 while the pace is lifted (`worker.lift_pace_when_idle`, no reservation arriving).
    pub pace_lifted: IntGauge,
    /// Per activity and node: 1 on the primary that serves the activity's slot.
    pub activity_node: IntGaugeVec,
    /// Per primary (`node`): 1 when it could be read this poll.
    pub shard_up: IntGaugeVec,
    /// Per primary: replicas connected to it (`INFO replication`).
    pub shard_replicas: IntGaugeVec,
    /// Per primary: replicas online that acknowledged within 2 s (what WAIT can count).
    pub shard_replicas_acking: IntGaugeVec,
    /// Per primary and replica: bytes of the primary's replication stream not acknowledged.
    pub shard_replication_lag_bytes: IntGaugeVec,
    /// Per primary: entries not yet delivered / delivered and not acked, over its streams.
    pub shard_group_lag: IntGaugeVec,
    pub shard_group_pending: IntGaugeVec,
    /// Per primary: activity streams it serves.
    pub shard_streams: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new_custom(Some("seckill_worker".into()), None)?;
        let act = &["activity"];
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), act);
        let node_gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["node"]);
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
            min_replicas: IntGauge::new(
                "min_replicas",
                "redis.min_replicas: replicas that must hold an entry before it becomes an order",
            )?,
            paced_seconds_total: Counter::new(
                "paced_seconds_total",
                "Seconds consumers waited for the worker.max_orders_per_sec cap",
            )?,
            pace_lifted: IntGauge::new(
                "pace_lifted",
                "1 while worker.max_orders_per_sec is lifted (lift_pace_when_idle: no reservation arriving)",
            )?,
            unreplicated_waits_total: IntCounter::new(
                "unreplicated_waits_total",
                "Batches whose WAIT counted fewer replicas than redis.min_replicas (retried)",
            )?,
            activity_node: IntGaugeVec::new(
                Opts::new(
                    "activity_node",
                    "1 on the primary (node) that serves the activity's slot",
                ),
                &["activity", "node"],
            )?,
            shard_up: node_gauge("shard_up", "1 when the primary could be read")?,
            shard_replicas: node_gauge(
                "shard_replicas",
                "Replicas connected to the primary (INFO replication)",
            )?,
            shard_replicas_acking: node_gauge(
                "shard_replicas_acking",
                "Replicas online that acknowledged within 2 s (what WAIT can count)",
            )?,
            shard_replication_lag_bytes: IntGaugeVec::new(
                Opts::new(
                    "shard_replication_lag_bytes",
                    "Bytes of the primary's replication stream the replica has not acknowledged",
                ),
                &["node", "replica"],
            )?,
            shard_group_lag: node_gauge(
                "shard_group_lag",
                "Entries of the primary's streams not yet delivered to the consumer group",
            )?,
            shard_group_pending: node_gauge(
                "shard_group_pending",
                "Entries of the primary's streams delivered but not acknowledged",
            )?,
            shard_streams: node_gauge("shard_streams", "Activity streams the primary serves")?,
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
        r.register(Box::new(m.min_replicas.clone()))?;
        r.register(Box::new(m.unreplicated_waits_total.clone()))?;
        r.register(Box::new(m.paced_seconds_total.clone()))?;
        r.register(Box::new(m.pace_lifted.clone()))?;
        r.register(Box::new(m.activity_node.clone()))?;
        r.register(Box::new(m.shard_up.clone()))?;
        r.register(Box::new(m.shard_replicas.clone()))?;
        r.register(Box::new(m.shard_replicas_acking.clone()))?;
        r.register(Box::new(m.shard_replication_lag_bytes.clone()))?;
        r.register(Box::new(m.shard_group_lag.clone()))?;
        r.register(Box::new(m.shard_group_pending.clone()))?;
        r.register(Box::new(m.shard_streams.clone()))?;
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

    /// Sets the per-shard gauges from one poll of every primary; drops the series of nodes
    /// in `before` that are no longer primaries. Returns the nodes now exported.
    pub fn set_shards(
        &self,
        views: &[seckill_client::shards::ShardView],
        before: &std::collections::HashSet<String>,
    ) -> std::collections::HashSet<String> {
        let now: std::collections::HashSet<String> =
            views.iter().map(|v| v.shard.primary.clone()).collect();
        for gone in before.difference(&now) {
            for g in [
                &self.shard_up,
                &self.shard_replicas,
                &self.shard_replicas_acking,
                &self.shard_group_lag,
                &self.shard_group_pending,
                &self.shard_streams,
            ] {
                let _ = g.remove_label_values(&[gone]);
            }
        }
        self.activity_node.reset();
        self.shard_replication_lag_bytes.reset();
        for v in views {
            let node = v.shard.primary.as_str();
            let l = [node];
            self.shard_up
                .with_label_values(&l)
                .set(i64::from(v.error.is_none()));
            if let Some(r) = &v.replication {
                self.shard_replicas
                    .with_label_values(&l)
                    .set(r.replicas.len() as i64);
                self.shard_replicas_acking
                    .with_label_values(&l)
                    .set(r.acking() as i64);
                for replica in &r.replicas {
                    self.shard_replication_lag_bytes
                        .with_label_values(&[node, replica.addr.as_str()])
                        .set(i64::try_from(r.lag_bytes(replica)).unwrap_or(i64::MAX));
                }
            }
            let lag: u64 = v.streams.iter().map(|s| s.undelivered()).sum();
            let pending: u64 = v.streams.iter().map(|s| s.pending).sum();
            self.shard_group_lag
                .with_label_values(&l)
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
            self.shard_group_pending
                .with_label_values(&l)
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            self.shard_streams
                .with_label_values(&l)
                .set(v.streams.len() as i64);
            for s in &v.streams {
                self.activity_node
                    .with_label_values(&[s.activity.as_str(), node])
                    .set(1);
            }
        }
        now
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
