//! Settings of the worker, layered by `seckill_runtime::config`: `configs/config.yaml` (or
//! `--config FILE`), then environment variables `SECKILL_<SECTION>__<KEY>` (e.g.
//! `SECKILL_MYSQL__URL`), then flags. The worker reads `redis`, `mysql`, `etcd`,
//! `telemetry` (shared with the other binaries) and its own `worker` section.

use seckill_runtime::backoff::Backoff;
use seckill_runtime::config::ConfigError;
pub use seckill_runtime::{EtcdSettings, MysqlSettings, RedisSettings, TelemetrySettings};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Loads the worker's settings with `overrides` (flags) on top.
pub fn load<T: Serialize>(config: Option<&Path>, overrides: T) -> Result<Settings, ConfigError> {
    seckill_runtime::config::load(config, overrides)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    pub redis: RedisSettings,
    pub mysql: MysqlSettings,
    /// Also read by the sweeper's election: empty endpoints mean a MySQL advisory lock.
    pub etcd: EtcdSettings,
    pub worker: WorkerSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Consumer group shared by every worker on every activity stream.
    pub group: String,
    /// Consumer name prefix; empty means `<hostname>-<pid>`. Each consumer task appends `-<n>`.
    pub consumer: String,
    /// Consumer tasks in this process (each reads, inserts and acks on its own).
    pub consumers: usize,
    /// Batch inserts of this process's consumers that run at once (at least 1). Inserts into
    /// the one `orders` table do not go faster side by side (measured on MariaDB 10.11: two
    /// at once took as long as one after the other); with 1 a consumer reads, plans and acks
    /// while another one's insert runs, and the next insert starts as soon as it commits.
    pub concurrent_inserts: usize,
    /// Most entries read by one XREADGROUP and inserted by one multi-row INSERT. Each batch
    /// costs a few fixed round trips and fsyncs (XREADGROUP's and XACK's under `appendfsync
    /// always`, the COMMIT's): on a 2-core machine a backlog drained 1,000 at a time reached
    /// 0.81-0.85x of plain INSERTs, 2,000 at a time 0.84-0.92x, 3,000 at a time 0.90-0.97x
    /// (docs/benchmarks.md). Only an upper bound: a worker keeping up reads what is there.
    pub batch_size: usize,
    /// Most entries per batch while reservations arrive (a lag poll, `lag_interval_ms`, saw a
    /// stream grow, or a consumer read an entry appended after the last poll): each
    /// XREADGROUP and XACK holds Redis' one thread, 1.4-4.6 µs per entry by the machine
    /// (`bench/drain-reads.sh`), while the sale's reservations wait behind it. Measured in
    /// the local stack: reads of 3,000 during the sale put the reservations' p99 at 8.5-9.6
    /// ms, reads of 1,000 at 5.8-6.3 ms.
    pub batch_size_while_arriving: usize,
    /// Most orders this process writes to MySQL per second; 0: as fast as MySQL takes them.
    /// The backlog waits in the streams meanwhile (see `seckill lag`).
    pub max_orders_per_sec: u32,
    /// Hold `max_orders_per_sec` only while reservations arrive: once a lag poll
    /// (`lag_interval_ms`) finds that no stream grew since the one before, the backlog is
    /// written as fast as MySQL takes it, until a consumer reads an entry appended after that
    /// poll (the sale's first reservations, not its next poll, hold the pace again). For a
    /// machine that hosts the sale and MySQL side by side (the local stack); a database
    /// shared with other services wants the cap always (false).
    pub lift_pace_when_idle: bool,
    /// How long XREADGROUP blocks waiting for new entries.
    pub block_ms: u64,
    /// How often activity streams are discovered with SCAN.
    pub discover_interval_ms: u64,
    /// Entries pending this long in any consumer are taken over (XAUTOCLAIM).
    pub claim_idle_ms: u64,
    /// How often a consumer looks for such entries.
    pub claim_interval_ms: u64,
    /// An entry delivered more often than this goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Payment window used when the activity has no row in MySQL.
    pub payment_window_secs: u64,
    /// First and longest pause between retries while MySQL or Redis is unreachable.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// `host:port` of the Prometheus `/metrics` endpoint; empty disables it.
    pub metrics_addr: String,
    /// How often the per-activity lag gauges are refreshed.
    pub lag_interval_ms: u64,
    /// Redis Cluster: the pause between reads when every stream of a node is empty (streams
    /// of several slots cannot share one blocking XREADGROUP).
    pub cluster_poll_ms: u64,
    pub sweeper: SweeperSettings,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            group: "seckill-orders".into(),
            consumer: String::new(),
            consumers: 2,
            concurrent_inserts: 1,
            batch_size: 3_000,
            batch_size_while_arriving: 1_000,
            max_orders_per_sec: 0,
            lift_pace_when_idle: false,
            block_ms: 1_000,
            discover_interval_ms: 2_000,
            claim_idle_ms: 30_000,
            claim_interval_ms: 5_000,
            max_deliveries: 5,
            payment_window_secs: 900,
            backoff_initial_ms: 100,
            backoff_max_ms: 5_000,
            metrics_addr: "127.0.0.1:9101".into(),
            lag_interval_ms: 2_000,
            cluster_poll_ms: 20,
            sweeper: SweeperSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SweeperSettings {
    /// Run the payment-timeout sweeper (only the elected leader sweeps).
    pub enabled: bool,
    /// Pause between passes.
    pub interval_ms: u64,
    /// Most orders expired or repaired in one pass.
    pub batch: u32,
    /// Name of the election (etcd) or of the advisory lock (MySQL).
    pub lock_name: String,
    /// Lease of the etcd leader; a crashed leader is replaced after at most this long.
    pub lease_secs: i64,
    /// First wait before an order whose SECKILL.RELEASE failed is tried again; it doubles
    /// with each failure up to `release_backoff_max_ms`.
    pub release_backoff_initial_ms: u64,
    pub release_backoff_max_ms: u64,
    /// How often the leader trims every activity stream up to its final entries
    /// (SECKILL.TRIM); 0 disables trimming.
    pub trim_interval_ms: u64,
    /// Most stream entries one trim pass checks per activity.
    pub trim_scan_limit: usize,
}

impl Default for SweeperSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1_000,
            batch: 500,
            lock_name: "seckill-sweeper".into(),
            lease_secs: 10,
            release_backoff_initial_ms: 1_000,
            release_backoff_max_ms: 300_000,
            trim_interval_ms: 10_000,
            trim_scan_limit: 50_000,
        }
    }
}

impl WorkerSettings {
    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.backoff_initial_ms.max(1)),
            Duration::from_millis(self.backoff_max_ms.max(self.backoff_initial_ms.max(1))),
        )
    }
}
