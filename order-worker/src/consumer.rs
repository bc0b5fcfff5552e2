//! One consumer of the group: a loop around [`Consumer::try_process_batch`].
//!
//! A batch is read (claims of idle entries first, then new entries of every stream), planned
//! ([`crate::plan`]), its dead letters moved away (stock returned), its rows inserted with
//! one multi-row insert in one transaction, and only then acked.
//!
//! The database being unwell never dead-letters anything (SPEC invariant 8). The one
//! refusal that is provably a row's own is the one `INSERT IGNORE` reports without failing
//! the batch: the row skipped because the user already holds another live order in the
//! activity (shown by that order, `seckill_db::orders::insert_batch`); that row is
//! dead-lettered. Every field of a row was checked against the schema when it was planned
//! ([`crate::plan`]), so a data error from the database ([`DbError::is_about_the_data`]:
//! NULL, range, truncation, foreign key, CHECK) cannot be a planned row's fault: it means
//! the schema is not the one the worker was written for, and is retried like everything
//! else — MySQL or Redis unreachable, a table missing, privileges revoked, a full disk, a
//! read-only server, rows skipped without a cause, unknown errors. The batch stays in
//! hand and is retried whole with exponential backoff, forever, while
//! `seckill_worker_database_failing` says so. Meanwhile the consumer keeps
//! its entries' idle time low (`XCLAIM ... JUSTID`, which counts no delivery), so another
//! consumer's `XAUTOCLAIM` cannot take them over and push their delivery count to the
//! dead-letter limit during a long outage. On shutdown the batch in hand is finished (or,
//! if the database stays down, left pending for another worker to claim).
//!
//! A consumer reads from one node (the standalone server, or one primary of a Redis Cluster,
//! see [`crate::shards`]) over a connection to that node. With `redis.min_replicas` > 0 a
//! batch becomes orders only once that many replicas hold it: after the read, `SET` of a
//! fence key in the slot of one of its streams and `WAIT <n> <timeout>` on the same
//! connection (the fence is written after everything the node held, so `WAIT` covers the
//! batch). Unconfirmed, the batch stays in hand and is retried; so a failover cannot leave an
//! order in MySQL whose reservation the new primary lacks. In a cluster, XREADGROUP cannot
//! name streams of two slots: the streams are read one slot at a time, pipelined, without
//! BLOCK (a short pause when all are empty). A stream whose slot moved away (`MOVED`/`ASK`)
//! drops out until the next discovery; a batch in hand whose stream moved is let go (its
//! entries stay pending, now on the node that serves them, where they are claimed).

use crate::arrivals::LastIds;
use crate::config::WorkerSettings;
use crate::metrics::Metrics;
use crate::pace::Pace;
use crate::plan::{holds_stock, order_key, plan_batch, refused, DeadReason, RawEntry, Windows};
use crate::read_size::ReadSize;
use redis::aio::ConnectionManager;
use seckill_client::reader::StreamReader;
use seckill_client::{sale, streams, ClientError};
use seckill_core::{ActivityId, Refusal};
use seckill_db::orders::{self, MAX_ROWS_PER_INSERT};
use seckill_db::{activities, DbError, MySqlPool};
use seckill_runtime::backoff::Backoff;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumeError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{acked} of the {wanted} replicas required confirmed the batch")]
    NotReplicated { acked: u32, wanted: u32 },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("SECKILL.RELEASE of a dead-lettered reservation failed: {0}")]
    Release(#[from] ClientError),
}

impl ConsumeError {
    fn dependency(&self) -> &'static str {
        match self {
            ConsumeError::Redis(_) | ConsumeError::Release(_) => "redis",
            ConsumeError::NotReplicated { .. } => "replicas",
            ConsumeError::Db(_) => "mysql",
        }
    }

    /// The MySQL error code, when the database failed.
    fn db_code(&self) -> Option<String> {
        match self {
            ConsumeError::Db(e) => Some(e.code()),
            ConsumeError::Redis(_)
            | ConsumeError::Release(_)
            | ConsumeError::NotReplicated { .. } => None,
        }
    }

    /// The slot of a stream moved to another node (`MOVED`/`ASK`, also on a release).
    fn moved(&self) -> bool {
        match self {
            ConsumeError::Redis(e) => seckill_client::shards::is_elsewhere(e),
            ConsumeError::Release(ClientError::Unavailable(m)) => {
                m.starts_with("MOVED") || m.starts_with("ASK")
            }
            _ => false,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Outcome {
    pub read: usize,
    pub inserted: u64,
    pub duplicates: u64,
    pub dead: usize,
}

/// A batch read but not yet fully acked; kept across retries so nothing is read twice,
/// dead-lettered twice or released twice.
struct InHand {
    /// Shared with the keep-alive that refreshes their idle time while they are retried.
    entries: Arc<[RawEntry]>,
    /// Entries delivered too often whose order row exists (the commit happened, the acks
    /// did not): done, acked without a dead letter. `None` until looked up.
    already_orders: Option<HashSet<usize>>,
    /// Indexes already dead-lettered (acked with the rest of the batch).
    dead_done: HashSet<usize>,
    /// Dead-lettered indexes whose stock was returned (or that hold none).
    released: HashSet<usize>,
    /// Whether the rows are committed (only dead-lettering `refused` and the ack are left).
    committed: bool,
    /// Whether the batch's rows were admitted by the pace (once, not again on a retry).
    paced: bool,
    /// Whether `min_replicas` replicas confirmed the batch (always, when none are required).
    replicated: bool,
    /// Rows the committed insert refused (another live order of the user): they must reach
    /// the dead-letter stream even when the batch is retried after the commit.
    refused: Vec<(usize, DeadReason)>,
    outcome: Outcome,
}

/// What a batch must reach before it becomes orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replicas {
    /// Replicas that must hold the batch (`redis.min_replicas`); 0: none.
    pub(crate) min: u32,
    /// `WAIT`'s timeout.
    pub(crate) timeout: Duration,
}

/// The database the consumers write to, and their turns to run a batch insert there
/// (`worker.concurrent_inserts` permits, shared by the process's consumers).
#[derive(Clone)]
pub(crate) struct Database {
    pub(crate) pool: MySqlPool,
    pub(crate) inserts: Arc<Semaphore>,
    /// The process's cap on orders written per second (`worker.max_orders_per_sec`).
    pub(crate) pace: Option<Arc<Pace>>,
    /// How many entries to read at once (smaller while reservations arrive).
    pub(crate) read_size: Arc<ReadSize>,
    /// Each stream's last id at the last lag poll: a read above it is an arrival.
    pub(crate) last_ids: Arc<LastIds>,
}

pub(crate) struct Consumer {
    /// A connection to the node this consumer drains.
    redis: ConnectionManager,
    /// A second connection to it for `XREADGROUP` alone, whose replies decode at a fraction
    /// of redis-rs' cost (`seckill_client::reader`); `None` over TLS or a Unix socket.
    reader: Option<StreamReader>,
    pool: MySqlPool,
    settings: WorkerSettings,
    replicas: Replicas,
    /// The node is in a Redis Cluster (streams read one slot at a time).
    cluster: bool,
    /// Permits to run a batch insert, shared by the process's consumers
    /// (`worker.concurrent_inserts`).
    inserts: Arc<Semaphore>,
    pace: Option<Arc<Pace>>,
    read_size: Arc<ReadSize>,
    last_ids: Arc<LastIds>,
    pub name: String,
    metrics: Arc<Metrics>,
    streams: Vec<(String, ActivityId)>,
    windows: Windows,
    last_discover: Option<Instant>,
    last_claim: Option<Instant>,
    in_hand: Option<InHand>,
    /// Streams that returned entries in the last non-empty read: XREADGROUP's COUNT is per
    /// stream, so it is `batch_size / active_streams` to keep a batch near `batch_size`.
    /// `None` before the first such read: every known stream is assumed to have entries, as
    /// they do when a worker starts on a backlog (assuming one would make the first batch
    /// `batch_size` times the number of streams, inserted in the slowest statements).
    active_streams: Option<usize>,
}

impl Consumer {
    pub(crate) fn new(
        redis: ConnectionManager,
        db: Database,
        settings: WorkerSettings,
        name: String,
        metrics: Arc<Metrics>,
        replicas: Replicas,
        cluster: bool,
    ) -> Self {
        let windows = Windows {
            by_activity: Default::default(),
            default_secs: settings.payment_window_secs,
        };
        let Database {
            pool,
            inserts,
            pace,
            read_size,
            last_ids,
        } = db;
        Self {
            redis,
            reader: None,
            pool,
            settings,
            replicas,
            cluster,
            inserts,
            pace,
            read_size,
            last_ids,
            name,
            metrics,
            streams: Vec::new(),
            windows,
            last_discover: None,
            last_claim: None,
            in_hand: None,
            active_streams: None,
        }
    }

    /// Reads new entries through `reader` (see the field) instead of the redis-rs connection.
    pub(crate) fn with_reader(mut self, reader: Option<StreamReader>) -> Self {
        self.reader = reader;
        self
    }

    /// Runs until `shutdown`, then finishes the batch in hand.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff: Backoff = self.settings.backoff();
        // Whether this consumer counts in `database_failing` (its last attempt failed on
        // MySQL and none has succeeded since).
        let mut db_failing = false;
        tracing::info!(consumer = %self.name, group = %self.settings.group, "consumer started");
        loop {
            if shutdown.is_cancelled() && self.in_hand.is_none() {
                break;
            }
            // One span per batch: its XREADGROUP, INSERT and XACK spans sit inside, so an
            // exported trace (telemetry.otlp_endpoint) shows a whole batch. Idle polls that
            // read nothing show up as short batches with entries = 0.
            let span = tracing::info_span!(
                "worker.batch",
                consumer = %self.name,
                entries = tracing::field::Empty,
                inserted = tracing::field::Empty,
            );
            let result = self
                .try_process_batch(!shutdown.is_cancelled())
                .instrument(span.clone())
                .await;
            if let Ok(o) = &result {
                span.record("entries", o.read);
                span.record("inserted", o.inserted);
            }
            drop(span);
            match result {
                Ok(_) => {
                    backoff.reset();
                    if db_failing {
                        db_failing = false;
                        self.metrics.database_failing.dec();
                        tracing::info!(consumer = %self.name, "mysql accepts the batches again");
                    }
                }
                Err(e) if e.moved() => {
                    // The stream's slot is served elsewhere now (resharding): its entries
                    // are pending there under this consumer's name and get claimed there;
                    // this node's view of the streams is read again.
                    tracing::info!(consumer = %self.name, error = %e,
                        "a stream moved to another node; letting the batch in hand go");
                    self.in_hand = None;
                    self.streams.clear();
                    self.last_discover = None;
                }
                Err(e) => {
                    self.metrics
                        .retries_total
                        .with_label_values(&[e.dependency()])
                        .inc();
                    if let ConsumeError::NotReplicated { .. } = e {
                        self.metrics.unreplicated_waits_total.inc();
                    }
                    if let Some(code) = e.db_code() {
                        self.metrics
                            .database_errors_total
                            .with_label_values(&[&code])
                            .inc();
                        if !db_failing {
                            db_failing = true;
                            self.metrics.database_failing.inc();
                        }
                    }
                    let delay = backoff.next_delay(rand::random());
                    tracing::warn!(
                        consumer = %self.name, error = %e, attempt = backoff.attempts(),
                        delay_ms = delay.as_millis() as u64,
                        in_hand = self.in_hand.as_ref().map_or(0, |h| h.entries.len()),
                        "batch failed, retrying"
                    );
                    if shutdown.is_cancelled() && backoff.attempts() >= 3 {
                        tracing::warn!(consumer = %self.name, "giving up the batch in hand at shutdown; it stays pending for another worker");
                        break;
                    }
                    // While it waits, the batch in hand stays this consumer's: its idle
                    // time is refreshed so no XAUTOCLAIM takes it (and counts a delivery).
                    let held = self.in_hand.as_ref().map(|h| Arc::clone(&h.entries));
                    let mut keeper = self.redis.clone();
                    let keep = async {
                        match &held {
                            Some(entries) => {
                                keep_alive(
                                    &mut keeper,
                                    &self.settings.group,
                                    &self.name,
                                    entries,
                                    self.keep_every(),
                                    true,
                                )
                                .await
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled(), if held.is_none() => {}
                        never = keep => match never {},
                    }
                }
            }
        }
        if db_failing {
            self.metrics.database_failing.dec();
        }
        tracing::info!(consumer = %self.name, "consumer stopped");
    }

    /// How often the idle time of a batch in hand is refreshed: well within
    /// `claim_idle_ms`, even when one refresh comes late.
    fn keep_every(&self) -> Duration {
        Duration::from_millis((self.settings.claim_idle_ms / 4).max(10))
    }

    /// Discovers new streams (when due), then finishes the batch in hand or reads a new one
    /// (when `read_more`) and processes it.
    pub(crate) async fn try_process_batch(
        &mut self,
        read_more: bool,
    ) -> Result<Outcome, ConsumeError> {
        if self.in_hand.is_none() {
            if !read_more {
                return Ok(Outcome::default());
            }
            self.discover_if_due().await?;
            let entries = self.read().await?;
            if entries.is_empty() {
                return Ok(Outcome::default());
            }
            self.note_arrivals(&entries);
            self.in_hand = Some(InHand {
                outcome: Outcome {
                    read: entries.len(),
                    ..Outcome::default()
                },
                entries: entries.into(),
                already_orders: None,
                dead_done: HashSet::new(),
                released: HashSet::new(),
                committed: false,
                paced: false,
                replicated: self.replicas.min == 0,
                refused: Vec::new(),
            });
        }
        // A slow attempt (a hung database) must not let the entries go idle either.
        let held = self.in_hand.as_ref().map(|h| Arc::clone(&h.entries));
        let (group, name, every) = (
            self.settings.group.clone(),
            self.name.clone(),
            self.keep_every(),
        );
        let mut keeper = self.redis.clone();
        let work = self.process_in_hand();
        match held {
            None => work.await,
            Some(entries) => tokio::select! {
                r = work => r,
                never = keep_alive(&mut keeper, &group, &name, &entries, every, false) => match never {},
            },
        }
    }

    /// Reservations appended since the last lag poll are arriving now: the pace holds and
    /// reads get smaller at once, not at the next poll (`crate::arrivals`).
    fn note_arrivals(&self, entries: &[RawEntry]) {
        let read = entries.iter().map(|e| (e.activity.as_str(), e.id.as_str()));
        if !self.last_ids.any_after(read) {
            return;
        }
        self.read_size.observe(true);
        if let Some(pace) = &self.pace {
            self.metrics.pace_lifted.set(i64::from(pace.observe(true)));
        }
    }

    /// Most entries in the next batch (`crate::read_size`).
    fn batch_size(&self) -> usize {
        self.read_size.current()
    }

    /// XREADGROUP's COUNT for the next read (see `active_streams`).
    fn per_stream_count(&self) -> usize {
        let active = self.active_streams.unwrap_or(self.streams.len());
        per_stream_count(self.batch_size(), active)
    }

    async fn discover_if_due(&mut self) -> Result<(), ConsumeError> {
        let due = self.last_discover.is_none_or(|t| {
            t.elapsed() >= Duration::from_millis(self.settings.discover_interval_ms)
        });
        if !due {
            return Ok(());
        }
        let found = streams::discover(&mut self.redis).await?;
        let known: HashSet<&String> = self.streams.iter().map(|(k, _)| k).collect();
        let new: Vec<(String, ActivityId)> = found
            .into_iter()
            .filter(|(k, _)| !known.contains(k))
            .collect();
        if !new.is_empty() {
            let ids: Vec<u64> = new
                .iter()
                .filter_map(|(_, a)| a.as_str().parse().ok())
                .collect();
            // The payment window must be known before the first row of an activity is
            // written, so a stream joins only once the lookup succeeded.
            let found = activities::payment_windows(&self.pool, &ids).await?;
            let mut served = Vec::with_capacity(new.len());
            for (key, activity) in new {
                match streams::ensure_group(&mut self.redis, &key, &self.settings.group).await {
                    Ok(()) => served.push((key, activity)),
                    // Its slot is being imported (or moved): the node that serves it reads it.
                    Err(e) if seckill_client::shards::is_elsewhere(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.windows.by_activity.extend(found);
            if !served.is_empty() {
                tracing::info!(consumer = %self.name, streams = served.len(), "discovered activity streams");
            }
            self.streams.extend(served);
        }
        self.last_discover = Some(Instant::now());
        Ok(())
    }

    async fn read(&mut self) -> Result<Vec<RawEntry>, ConsumeError> {
        let claim_due = self
            .last_claim
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(self.settings.claim_interval_ms));
        if claim_due {
            self.last_claim = Some(Instant::now());
            let mut claimed = Vec::new();
            let mut stale: Vec<String> = Vec::new();
            for (key, activity) in &self.streams {
                let room = self.batch_size().saturating_sub(claimed.len());
                if room == 0 {
                    break;
                }
                let got = streams::claim_idle(
                    &mut self.redis,
                    key,
                    activity,
                    &self.settings.group,
                    &self.name,
                    self.settings.claim_idle_ms,
                    room,
                )
                .instrument(tracing::info_span!("redis.xautoclaim", stream = %key))
                .await;
                match got {
                    Ok(got) => claimed.extend(got),
                    Err(e) if e.code() == Some("NOGROUP") => self.last_discover = None,
                    Err(e) if seckill_client::shards::is_elsewhere(&e) => {
                        self.last_discover = None;
                        stale.push(key.clone());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.streams.retain(|(k, _)| !stale.contains(k));
            if !claimed.is_empty() {
                self.metrics.claimed_total.inc_by(claimed.len() as u64);
                tracing::info!(consumer = %self.name, entries = claimed.len(), "claimed idle entries");
                // Come back for more claims before reading new entries.
                self.last_claim = None;
                return Ok(claimed);
            }
        }
        let slots = if self.cluster {
            streams::by_slot(&self.streams)
        } else {
            Vec::new()
        };
        if slots.len() > 1 {
            return self.read_by_slot(&slots).await;
        }
        let count = self.per_stream_count();
        let (group, block_ms) = (&self.settings.group, self.settings.block_ms);
        let (name, keys) = (&self.name, &self.streams);
        let read = async {
            match &mut self.reader {
                Some(reader) => reader.read_new(group, name, keys, count, block_ms).await,
                None => {
                    streams::read_new(&mut self.redis, group, name, keys, count, block_ms).await
                }
            }
        };
        let r = read
            .instrument(tracing::info_span!(
                "redis.xreadgroup",
                streams = keys.len()
            ))
            .await;
        match r {
            Err(e) if e.code() == Some("NOGROUP") || seckill_client::shards::is_elsewhere(&e) => {
                // A stream was deleted and recreated, or moved to another node: forget the
                // streams, rediscover.
                self.streams.clear();
                self.last_discover = None;
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
            Ok(entries) => {
                if !entries.is_empty() {
                    let mut seen: Vec<&ActivityId> = entries.iter().map(|e| &e.activity).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    self.active_streams = Some(seen.len());
                }
                if self.streams.is_empty() {
                    // XREADGROUP over no stream returns at once: pause instead of spinning.
                    tokio::time::sleep(Duration::from_millis(self.settings.block_ms)).await;
                }
                Ok(entries)
            }
        }
    }

    /// Streams of several slots (a cluster node): one non-blocking XREADGROUP per slot,
    /// pipelined; a pause when every stream is empty.
    async fn read_by_slot(
        &mut self,
        slots: &[Vec<(String, ActivityId)>],
    ) -> Result<Vec<RawEntry>, ConsumeError> {
        let count = self.per_stream_count();
        let (entries, failed) = streams::read_new_by_slot(
            &mut self.redis,
            &self.settings.group,
            &self.name,
            slots,
            count,
        )
        .instrument(tracing::info_span!(
            "redis.xreadgroup",
            streams = self.streams.len(),
            slots = slots.len()
        ))
        .await?;
        let mut gone: HashSet<&str> = HashSet::new();
        for (i, e) in failed {
            if e.code() == Some("NOGROUP") || seckill_client::shards::is_elsewhere(&e) {
                gone.extend(slots[i].iter().map(|(k, _)| k.as_str()));
                self.last_discover = None;
            } else {
                return Err(ConsumeError::Redis(e));
            }
        }
        if !gone.is_empty() {
            self.streams.retain(|(k, _)| !gone.contains(k.as_str()));
        }
        if entries.is_empty() {
            let pause = self
                .settings
                .cluster_poll_ms
                .clamp(1, self.settings.block_ms.max(1));
            tokio::time::sleep(Duration::from_millis(pause)).await;
        } else {
            let mut seen: Vec<&ActivityId> = entries.iter().map(|e| &e.activity).collect();
            seen.sort_unstable();
            seen.dedup();
            self.active_streams = Some(seen.len());
        }
        Ok(entries)
    }

    /// `SET <fence> 1` in the slot of one of the batch's streams, then `WAIT <min> <timeout>`,
    /// on this consumer's connection to the node the batch was read from: the fence is a
    /// write after everything the node holds (the batch included), so the replicas `WAIT`
    /// counts hold the batch.
    async fn confirm_replicated(&mut self, entries: &[RawEntry]) -> Result<(), ConsumeError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let (want, timeout) = (self.replicas.min, self.replicas.timeout);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(seckill_core::keys::fence(&first.activity))
            .arg(1)
            .ignore()
            .cmd("WAIT")
            .arg(want)
            .arg(timeout.as_millis() as u64);
        let (acked,): (u32,) = pipe
            .query_async(&mut self.redis)
            .instrument(tracing::info_span!("redis.wait", replicas = want))
            .await?;
        if acked < want {
            return Err(ConsumeError::NotReplicated {
                acked,
                wanted: want,
            });
        }
        Ok(())
    }

    async fn process_in_hand(&mut self) -> Result<Outcome, ConsumeError> {
        if let Some(hand) = self.in_hand.as_ref().filter(|h| !h.replicated) {
            let entries = Arc::clone(&hand.entries);
            self.confirm_replicated(&entries).await?;
            if let Some(hand) = self.in_hand.as_mut() {
                hand.replicated = true;
            }
        }
        let Some(hand) = self.in_hand.as_mut() else {
            return Ok(Outcome::default());
        };
        let entries = Arc::clone(&hand.entries);
        let plan = plan_batch(&entries, self.settings.max_deliveries, &self.windows);
        if hand.already_orders.is_none() {
            // An entry delivered too often may have become an order before the crashes that
            // redelivered it (committed, never acked): it is done, not lost, and releasing
            // its stock would take it from a live order. Looked up in MySQL, so a database
            // that is down holds the batch rather than dead-lettering anything.
            let keys: Vec<(usize, (u64, String))> = plan
                .dead
                .iter()
                .filter(|(_, r)| matches!(r, DeadReason::TooManyDeliveries(_)))
                .filter_map(|(i, _)| order_key(&entries[*i]).map(|k| (*i, k)))
                .collect();
            let lookup: Vec<(u64, String)> = keys.iter().map(|(_, k)| k.clone()).collect();
            let found = orders::present(&self.pool, &lookup).await?;
            let done: HashSet<usize> = keys
                .into_iter()
                .filter(|(_, k)| found.contains(k))
                .map(|(i, _)| i)
                .collect();
            if !done.is_empty() {
                tracing::info!(consumer = %self.name, entries = done.len(),
                    "entries delivered too often are already orders; acking them");
            }
            self.metrics.duplicates_total.inc_by(done.len() as u64);
            hand.outcome.duplicates += done.len() as u64;
            hand.already_orders = Some(done);
        }
        for (i, reason) in &plan.dead {
            if hand.already_orders.as_ref().is_some_and(|d| d.contains(i)) {
                continue;
            }
            dead_letter(&mut self.redis, &self.name, &self.metrics, hand, *i, reason).await?;
        }
        if !hand.committed {
            if !hand.paced {
                if let Some(pace) = &self.pace {
                    let waited = pace
                        .admit(plan.rows.len())
                        .instrument(tracing::info_span!("worker.pace", rows = plan.rows.len()))
                        .await;
                    self.metrics
                        .paced_seconds_total
                        .inc_by(waited.as_secs_f64());
                }
                hand.paced = true;
            }
            let rows = plan.rows;
            let started = Instant::now();
            // Never closed; were it closed, inserting without a permit is still correct.
            let turn = self.inserts.acquire();
            let result = orders::insert_batch(&self.pool, &rows, async { turn.await.ok() })
                .instrument(tracing::info_span!(
                    "mysql.insert_orders",
                    rows = rows.len()
                ))
                .await?;
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics.batch_size.observe(entries.len() as f64);
            self.metrics.orders_inserted_total.inc_by(result.inserted);
            self.metrics.duplicates_total.inc_by(result.duplicates);
            hand.outcome.inserted += result.inserted;
            hand.outcome.duplicates += result.duplicates;
            hand.committed = true;
            let skipped = refused(result.skipped);
            for (i, reason) in &skipped {
                tracing::error!(reservation = %entries[*i].id, %reason, "order row refused; dead-lettering");
            }
            hand.refused = skipped;
        }
        // Outside the commit step: a retry after a failed dead-letter write must not ack a
        // refused row that never reached the dead-letter stream.
        for (i, reason) in hand.refused.clone() {
            dead_letter(&mut self.redis, &self.name, &self.metrics, hand, i, &reason).await?;
        }
        // Every entry is now an order row or a dead letter whose stock is back.
        let to_ack: Vec<&RawEntry> = entries.iter().collect();
        streams::ack(&mut self.redis, &self.settings.group, &to_ack)
            .instrument(tracing::info_span!("redis.xack", entries = to_ack.len()))
            .await?;
        let outcome = hand.outcome;
        self.in_hand = None;
        tracing::debug!(consumer = %self.name, ?outcome, "batch done");
        Ok(outcome)
    }
}

/// Refreshes the idle time of `entries` (held by `consumer`) every `every`, forever, the
/// first time at once when `at_once`. A failed refresh is logged and tried again: Redis
/// being unreachable keeps every other consumer from claiming the entries too.
async fn keep_alive(
    conn: &mut ConnectionManager,
    group: &str,
    consumer: &str,
    entries: &[RawEntry],
    every: Duration,
    at_once: bool,
) -> Infallible {
    if !at_once {
        tokio::time::sleep(every).await;
    }
    loop {
        match streams::keep_pending(conn, group, consumer, entries).await {
            Ok(()) => tracing::debug!(consumer, entries = entries.len(), "batch in hand kept"),
            Err(e) => {
                tracing::warn!(consumer, error = %e, "could not refresh the batch in hand's idle time")
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// COUNT for one XREADGROUP over many streams, so that a batch holds about `batch_size`
/// entries when `active` streams have data (COUNT applies to each stream).
pub(crate) fn per_stream_count(batch_size: usize, active: usize) -> usize {
    (batch_size.clamp(1, MAX_ROWS_PER_INSERT) / active.max(1)).max(1)
}

/// Dead-letters entry `i` of the batch in hand, once, then returns its stock, once: a
/// batch retried after a failure skips the steps already done.
///
/// The stock goes back with `SECKILL.RELEASE` after the dead letter is written and before
/// the entry is acked (with its batch): a dead-lettered reservation will never become an
/// order, so it must not hold its units forever. A crash between the steps redelivers the
/// entry and repeats them: the dead letter is written again (at least once), and RELEASE is
/// idempotent (a second call returns 0). An entry that does not decode was never written
/// by RESERVE and holds nothing to return. The dead letter's `stock` field says which.
async fn dead_letter(
    redis: &mut ConnectionManager,
    consumer: &str,
    metrics: &Metrics,
    hand: &mut InHand,
    i: usize,
    reason: &DeadReason,
) -> Result<(), ConsumeError> {
    let entries = Arc::clone(&hand.entries);
    let entry = &entries[i];
    let holds = holds_stock(entry);
    if !hand.dead_done.contains(&i) {
        let stock = if holds { "released" } else { "none" };
        streams::dead_letter(
            redis,
            consumer,
            entry,
            reason.kind(),
            &reason.to_string(),
            stock,
        )
        .await?;
        metrics
            .dead_lettered_total
            .with_label_values(&[reason.kind()])
            .inc();
        tracing::warn!(activity = %entry.activity, reservation = %entry.id, %reason, "entry dead-lettered");
        hand.dead_done.insert(i);
        hand.outcome.dead += 1;
    }
    if holds && !hand.released.contains(&i) {
        match sale::release(redis, &entry.activity, &entry.id).await {
            Ok(qty) => {
                metrics.dead_letter_releases_total.inc();
                tracing::info!(activity = %entry.activity, reservation = %entry.id, qty,
                    "stock of the dead-lettered reservation returned");
            }
            // Nothing in Redis holds the stock any more: the activity is gone, or the entry
            // was removed from its stream by hand.
            Err(ClientError::Refused {
                refusal: Refusal::NoActivity,
                ..
            }) => {
                tracing::warn!(activity = %entry.activity, reservation = %entry.id,
                    "activity gone from Redis: no stock to return for the dead letter");
            }
            Err(ClientError::Argument(m)) => {
                tracing::warn!(activity = %entry.activity, reservation = %entry.id, error = %m,
                    "reservation not releasable: no stock to return for the dead letter");
            }
            Err(e) => return Err(e.into()),
        }
        hand.released.insert(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::per_stream_count;

    #[test]
    fn count_spreads_the_batch_over_active_streams() {
        assert_eq!(per_stream_count(1_000, 1), 1_000);
        assert_eq!(per_stream_count(1_000, 10), 100);
        assert_eq!(per_stream_count(1_000, 5_000), 1);
        assert_eq!(per_stream_count(0, 0), 1);
        assert_eq!(
            per_stream_count(1_000_000, 1),
            seckill_db::orders::MAX_ROWS_PER_INSERT
        );
    }
}
