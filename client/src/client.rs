//! [`SeckillClient`]: one multiplexed Redis connection (reconnected in the background) with
//! a deadline on every call, and the hot path's `SECKILL.RESERVE` pipelined through the
//! [`Coalescer`]. The gateway serves every request through one of these.

use crate::coalesce::Coalescer;
use crate::error::ClientError;
use crate::sale::{self, CreateArgs, Reservation, Status};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use seckill_core::{ActivityId, UserId};
use std::future::Future;
use std::time::Duration;

#[derive(Clone)]
pub struct SeckillClient {
    conn: ConnectionManager,
    /// The hot path's `SECKILL.RESERVE`s, pipelined together.
    batch: Coalescer,
    timeout: Duration,
}

impl SeckillClient {
    /// Connects to `url` (bounded by a few `timeout`s); reconnects happen in the background
    /// later. Errors never quote the URL (it may hold a password).
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let client = redis::Client::open(url)
            .map_err(|e| ClientError::Unavailable(format!("invalid redis URL: {e}")))?;
        Self::connect_with(client, timeout).await
    }

    /// Connects with a client built elsewhere (with an ACL user and TLS files:
    /// `seckill_runtime::RedisSettings::client`).
    ///
    /// One plain connection attempt comes first, so a refused login or certificate is
    /// reported as such (the connection manager's retries would end in a bare timeout); it
    /// is dropped once it succeeded.
    pub async fn connect_with(
        client: redis::Client,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let probe = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(timeout * 4)
            .set_response_timeout(timeout * 4);
        tokio::time::timeout(
            timeout * 4,
            client.get_multiplexed_async_connection_with_config(&probe),
        )
        .await
        .map_err(|_| ClientError::Timeout(timeout * 4))?
        .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(2)
            .set_max_delay(1_000);
        let conn = tokio::time::timeout(
            timeout * 4,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ClientError::Timeout(timeout * 4))?
        .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(Self {
            batch: Coalescer::spawn(conn.clone()),
            conn,
            timeout,
        })
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle on the shared multiplexed connection, for calls this type does not wrap.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or(Err(ClientError::Timeout(self.timeout)))
    }

    /// `SECKILL.RESERVE`, sent in the next coalesced pipeline.
    pub async fn reserve(
        &self,
        activity: &ActivityId,
        user: &UserId,
        qty: u64,
        product: &str,
    ) -> Result<Reservation, ClientError> {
        let cmd = sale::reserve_cmd(activity, user, qty, product);
        self.timed(async { sale::parse_reservation(self.batch.query(cmd).await?) })
            .await
    }

    pub async fn release(
        &self,
        activity: &ActivityId,
        reservation: &str,
    ) -> Result<u64, ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::release(&mut conn, activity, reservation))
            .await
    }

    pub async fn status(&self, activity: &ActivityId) -> Result<Option<Status>, ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::status(&mut conn, activity)).await
    }

    pub async fn create(&self, args: &CreateArgs) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::create(&mut conn, args)).await
    }

    pub async fn held(&self, activity: &ActivityId, user: &UserId) -> Result<u64, ClientError> {
        let mut conn = self.conn.clone();
        self.timed(sale::held(&mut conn, activity, user)).await
    }

    pub async fn ping(&self) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        self.timed(async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| crate::error::classify(&e))?;
            Ok(())
        })
        .await
    }
}
