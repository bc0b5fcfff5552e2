//! etcd: the service registry ([`members`]) and runtime settings ([`watch`]), with the
//! connection and call deadlines they share.

pub mod members;
pub mod watch;

use std::time::Duration;

/// How long one etcd call may take before the loop treats etcd as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 keep-alive ping interval. etcd's server refuses pings more frequent than
/// `--grpc-keepalive-min-time` (5 s by default) with GOAWAY `too_many_pings`, which broke the
/// runtime-settings watch every few seconds (logged as an "h2 protocol error") with the 2 s
/// interval used before; 10 s stays above that floor.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A client whose connection attempts and dead connections are detected within seconds, so
/// background loops notice an outage instead of hanging on a half-open socket.
pub async fn connect(endpoints: &[String]) -> Result<etcd_client::Client, etcd_client::Error> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(KEEP_ALIVE_INTERVAL, Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    match tokio::time::timeout(
        CALL_TIMEOUT,
        etcd_client::Client::connect(endpoints, Some(options)),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(etcd_client::Error::InvalidArgs(
            "timed out connecting to etcd".into(),
        )),
    }
}

/// Runs one etcd call with [`CALL_TIMEOUT`].
pub(crate) async fn timed<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("etcd {what} failed"))),
        Err(_) => anyhow::bail!("etcd {what} timed out after {CALL_TIMEOUT:?}"),
    }
}
