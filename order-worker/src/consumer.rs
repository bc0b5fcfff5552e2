//! One consumer of the group: a loop around [`Consumer::try_process_batch`].
//!
//! A batch is read (claims of idle entries first, then new entries of every stream), planned
//! ([`crate::plan`]), its dead letters moved away, its rows inserted with one multi-row insert
//! in one transaction, and only then acked. While MySQL or Redis is unreachable the batch in
//! hand is retried with exponential backoff; it is never dropped. On shutdown the batch in
//! hand is finished (or, if the database stays down, left pending for another worker to
//! claim).

use crate::config::WorkerSettings;
use crate::metrics::Metrics;
use crate::plan::{plan_batch, refused, DeadReason, OrderRow, RawEntry, Windows};
use redis::aio::ConnectionManager;
use seckill_client::streams;
use seckill_core::ActivityId;
use seckill_db::orders::{self, Inserted, MAX_ROWS_PER_INSERT};
use seckill_db::{activities, DbError, MySqlPool};
use seckill_runtime::backoff::Backoff;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumeError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ConsumeError {
    fn dependency(&self) -> &'static str {
        match self {
            ConsumeError::Redis(_) => "redis",
            ConsumeError::Db(_) => "mysql",
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

/// A batch read but not yet fully acked; kept across retries so nothing is read twice or
/// dead-lettered twice.
struct InHand {
    entries: Vec<RawEntry>,
    /// Indexes already dead-lettered (acked with the rest of the batch).
    dead_done: HashSet<usize>,
    /// Whether the rows are committed (only dead-lettering `refused` and the ack are left).
    committed: bool,
    /// Rows the committed insert refused (another live order of the user): they must reach
    /// the dead-letter stream even when the batch is retried after the commit.
    refused: Vec<(usize, DeadReason)>,
    outcome: Outcome,
}

pub(crate) struct Consumer {
    redis: ConnectionManager,
    pool: MySqlPool,
    settings: WorkerSettings,
    pub name: String,
    metrics: Arc<Metrics>,
    streams: Vec<(String, ActivityId)>,
    windows: Windows,
    last_discover: Option<Instant>,
    last_claim: Option<Instant>,
    in_hand: Option<InHand>,
    /// Streams that returned entries in the last non-empty read: XREADGROUP's COUNT is per
    /// stream, so it is `batch_size / active_streams` to keep a batch near `batch_size`.
    active_streams: usize,
}

impl Consumer {
    pub(crate) fn new(
        redis: ConnectionManager,
        pool: MySqlPool,
        settings: WorkerSettings,
        name: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        let windows = Windows {
            by_activity: Default::default(),
            default_secs: settings.payment_window_secs,
        };
        Self {
            redis,
            pool,
            settings,
            name,
            metrics,
            streams: Vec::new(),
            windows,
            last_discover: None,
            last_claim: None,
            in_hand: None,
            active_streams: 1,
        }
    }

    /// Runs until `shutdown`, then finishes the batch in hand.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff: Backoff = self.settings.backoff();
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
                Ok(_) => backoff.reset(),
                Err(e) => {
                    self.metrics
                        .retries_total
                        .with_label_values(&[e.dependency()])
                        .inc();
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
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled(), if self.in_hand.is_none() => {}
                    }
                }
            }
        }
        tracing::info!(consumer = %self.name, "consumer stopped");
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
            self.in_hand = Some(InHand {
                outcome: Outcome {
                    read: entries.len(),
                    ..Outcome::default()
                },
                entries,
                dead_done: HashSet::new(),
                committed: false,
                refused: Vec::new(),
            });
        }
        self.process_in_hand().await
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
            for (key, _) in &new {
                streams::ensure_group(&mut self.redis, key, &self.settings.group).await?;
            }
            self.windows.by_activity.extend(found);
            tracing::info!(consumer = %self.name, streams = new.len(), "discovered activity streams");
            self.streams.extend(new);
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
            for (key, activity) in &self.streams {
                let room = self.settings.batch_size.saturating_sub(claimed.len());
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
                    Err(e) => return Err(e.into()),
                }
            }
            if !claimed.is_empty() {
                self.metrics.claimed_total.inc_by(claimed.len() as u64);
                tracing::info!(consumer = %self.name, entries = claimed.len(), "claimed idle entries");
                // Come back for more claims before reading new entries.
                self.last_claim = None;
                return Ok(claimed);
            }
        }
        let r = streams::read_new(
            &mut self.redis,
            &self.settings.group,
            &self.name,
            &self.streams,
            per_stream_count(self.settings.batch_size, self.active_streams),
            self.settings.block_ms,
        )
        .instrument(tracing::info_span!(
            "redis.xreadgroup",
            streams = self.streams.len()
        ))
        .await;
        match r {
            Err(e) if e.code() == Some("NOGROUP") => {
                // A stream was deleted and recreated: forget the streams, rediscover.
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
                    self.active_streams = seen.len();
                }
                if self.streams.is_empty() {
                    // XREADGROUP over no stream returns at once: pause instead of spinning.
                    tokio::time::sleep(Duration::from_millis(self.settings.block_ms)).await;
                }
                Ok(entries)
            }
        }
    }

    async fn process_in_hand(&mut self) -> Result<Outcome, ConsumeError> {
        let Some(hand) = self.in_hand.as_mut() else {
            return Ok(Outcome::default());
        };
        let plan = plan_batch(&hand.entries, self.settings.max_deliveries, &self.windows);
        for (i, reason) in &plan.dead {
            dead_letter(&mut self.redis, &self.name, &self.metrics, hand, *i, reason).await?;
        }
        if !hand.committed {
            let rows = plan.rows;
            let started = Instant::now();
            let insert = async {
                match orders::insert_batch(&self.pool, &rows).await {
                    Err(e @ (DbError::Rejected(_) | DbError::Duplicate(_))) => {
                        tracing::warn!(error = %e, "batch refused, inserting row by row to find the culprit");
                        insert_one_by_one(&self.pool, &rows).await
                    }
                    other => other.map(|r| (r, Vec::new())),
                }
            };
            let result = insert
                .instrument(tracing::info_span!(
                    "mysql.insert_orders",
                    rows = rows.len()
                ))
                .await;
            let (result, refused_rows) = match result {
                Ok((r, by_row)) => (r, by_row),
                Err(e) => return Err(e.into()),
            };
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics.batch_size.observe(hand.entries.len() as f64);
            self.metrics.orders_inserted_total.inc_by(result.inserted);
            self.metrics.duplicates_total.inc_by(result.duplicates);
            hand.outcome.inserted += result.inserted;
            hand.outcome.duplicates += result.duplicates;
            hand.committed = true;
            let mut skipped = refused(result.skipped);
            skipped.extend(refused_rows);
            for (i, reason) in &skipped {
                tracing::error!(reservation = %hand.entries[*i].id, %reason, "order row refused; dead-lettering");
            }
            hand.refused = skipped;
        }
        // Outside the commit step: a retry after a failed dead-letter write must not ack a
        // refused row that never reached the dead-letter stream.
        for (i, reason) in hand.refused.clone() {
            dead_letter(&mut self.redis, &self.name, &self.metrics, hand, i, &reason).await?;
        }
        // Every entry is now either an order row or a dead letter.
        let to_ack: Vec<&RawEntry> = hand.entries.iter().collect();
        streams::ack(&mut self.redis, &self.settings.group, &to_ack)
            .instrument(tracing::info_span!("redis.xack", entries = to_ack.len()))
            .await?;
        let outcome = hand.outcome;
        self.in_hand = None;
        tracing::debug!(consumer = %self.name, ?outcome, "batch done");
        Ok(outcome)
    }
}

/// COUNT for one XREADGROUP over many streams, so that a batch holds about `batch_size`
/// entries when `active` streams have data (COUNT applies to each stream).
pub(crate) fn per_stream_count(batch_size: usize, active: usize) -> usize {
    (batch_size.clamp(1, MAX_ROWS_PER_INSERT) / active.max(1)).max(1)
}

/// Dead-letters entry `i` of the batch in hand, once: a batch retried after a failure skips
/// the entries already moved.
async fn dead_letter(
    redis: &mut ConnectionManager,
    consumer: &str,
    metrics: &Metrics,
    hand: &mut InHand,
    i: usize,
    reason: &DeadReason,
) -> Result<(), ConsumeError> {
    if hand.dead_done.contains(&i) {
        return Ok(());
    }
    let entry = &hand.entries[i];
    streams::dead_letter(redis, consumer, entry, reason.kind(), &reason.to_string()).await?;
    metrics
        .dead_lettered_total
        .with_label_values(&[reason.kind()])
        .inc();
    tracing::warn!(activity = %entry.activity, reservation = %entry.id, %reason, "entry dead-lettered");
    hand.dead_done.insert(i);
    hand.outcome.dead += 1;
    Ok(())
}

/// Fallback when the database refuses a whole batch: one insert per row, so only the rows it
/// refuses are dead-lettered (returned apart from the rows the inserts skipped).
async fn insert_one_by_one(
    pool: &MySqlPool,
    rows: &[(usize, OrderRow)],
) -> Result<(Inserted, Vec<(usize, DeadReason)>), DbError> {
    let mut total = Inserted::default();
    let mut rejected = Vec::new();
    for row in rows {
        match orders::insert_batch(pool, std::slice::from_ref(row)).await {
            Ok(r) => {
                total.inserted += r.inserted;
                total.duplicates += r.duplicates;
                total.skipped.extend(r.skipped);
            }
            Err(e @ (DbError::Rejected(_) | DbError::Duplicate(_))) => {
                rejected.push((row.0, DeadReason::Rejected(e.to_string())))
            }
            Err(e) => return Err(e),
        }
    }
    Ok((total, rejected))
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
