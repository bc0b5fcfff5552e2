//! The gateway's Redis: [`seckill_client::SeckillClient`] (deadlines, the hot path's
//! coalesced pipeline, standalone or Redis Cluster, replica confirmation) with a tracing span
//! and a latency metric (by command and result) around every call.
//! Errors stay [`ClientError`]s; the HTTP layer maps them (`crate::error`).

use crate::metrics::Metrics;
use seckill_client::{
    ClientError, ClientSettings, CreateArgs, Reservation, SeckillClient, Status, Target,
};
use seckill_core::{ActivityId, UserId};
use seckill_runtime::RedisSettings;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

#[derive(Clone)]
pub(crate) struct Store {
    client: SeckillClient,
    metrics: Arc<Metrics>,
    /// Spans are exported (`telemetry.otlp_endpoint` set): the hot path's command span is
    /// then made at INFO, else at DEBUG (see [`Store::reserve`]).
    exported: bool,
}

impl Store {
    /// Connects to the standalone server or the cluster of `target` (which says how to log
    /// in to each node); reconnects happen in the background later.
    pub(crate) async fn connect(
        target: Target,
        redis: &RedisSettings,
        timeout: Duration,
        metrics: Arc<Metrics>,
        exported: bool,
    ) -> Result<Self, ClientError> {
        let settings = ClientSettings {
            target,
            timeout,
            min_replicas: redis.min_replicas,
            replica_ack_timeout: redis.replica_ack_timeout(),
        };
        Ok(Self {
            client: SeckillClient::connect_with(&settings).await?,
            metrics,
            exported,
        })
    }

    /// Runs one call, recording its latency by command and result.
    async fn observed<T>(
        &self,
        name: &'static str,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let started = Instant::now();
        let result = fut.await;
        let label = match &result {
            Ok(_) => "ok",
            Err(ClientError::Refused { .. }) => "refused",
            Err(ClientError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.metrics
            .redis
            .with_label_values(&[name, label])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// `product` is the body's `product_id`: the module refuses (`ERR`, nothing changed) when
    /// the activity sells another product, in the same atomic step.
    pub(crate) async fn reserve(
        &self,
        activity: &ActivityId,
        user: &UserId,
        qty: u64,
        product: &str,
    ) -> Result<Reservation, ClientError> {
        // Exported, the span is part of every sale's trace. Not exported, it would serve only
        // lines logged inside the call, which the request span names already, and its fields
        // were formatted on every reservation all the same: at DEBUG it costs nothing unless
        // someone asks for it.
        macro_rules! span {
            ($level:ident) => {
                tracing::$level!(
                    "redis.reserve",
                    activity = activity.as_str(),
                    user = user.as_str(),
                    qty
                )
            };
        }
        let span = if self.exported {
            span!(info_span)
        } else {
            span!(debug_span)
        };
        self.observed(
            "SECKILL.RESERVE",
            self.client.reserve(activity, user, qty, product),
        )
        .instrument(span)
        .await
    }

    /// Returns a reservation's stock; `Ok(0)` when it was already released.
    pub(crate) async fn release(
        &self,
        activity: &ActivityId,
        reservation: &str,
    ) -> Result<u64, ClientError> {
        let span = tracing::info_span!("redis.release", activity = %activity, reservation);
        self.observed(
            "SECKILL.RELEASE",
            self.client.release(activity, reservation),
        )
        .instrument(span)
        .await
    }

    /// `None` when the activity is not in Redis.
    pub(crate) async fn status(
        &self,
        activity: &ActivityId,
    ) -> Result<Option<Status>, ClientError> {
        self.observed("SECKILL.STATUS", self.client.status(activity))
            .await
    }

    pub(crate) async fn create(&self, args: &CreateArgs) -> Result<(), ClientError> {
        let span = tracing::info_span!("redis.create", activity = %args.activity);
        self.observed("SECKILL.CREATE", self.client.create(args))
            .instrument(span)
            .await
    }

    /// Quantity `user` holds in `activity` (0 when none).
    pub(crate) async fn held(
        &self,
        activity: &ActivityId,
        user: &UserId,
    ) -> Result<u64, ClientError> {
        self.observed("SECKILL.HELD", self.client.held(activity, user))
            .await
    }

    pub(crate) async fn ping(&self) -> Result<(), ClientError> {
        self.observed("PING", self.client.ping()).await
    }
}
