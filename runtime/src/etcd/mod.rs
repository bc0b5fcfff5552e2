//! etcd: the service registry ([`members`]) and runtime settings ([`watch`]), with the
//! connection and call deadlines they share.

pub mod members;
pub mod watch;

use crate::config::{connect_error, EtcdSettings};
use std::time::Duration;

/// How long one etcd call may take before the loop treats etcd as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 keep-alive ping interval. etcd's server refuses pings more frequent than
/// `--grpc-keepalive-min-time` (5 s by default) with GOAWAY `too_many_pings`, which broke the
/// runtime-settings watch every few seconds (logged as an "h2 protocol error") with the 2 s
/// interval used before; 10 s stays above that floor.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A client of `settings.endpoints` whose connection attempts and dead connections are
/// detected within seconds, so background loops notice an outage instead of hanging on a
/// half-open socket. `https://` endpoints use TLS: the server's certificate is checked
/// against `etcd.tls.ca_file` (else the system's trust store), and `cert_file`/`key_file`
/// are sent when the server asks for a client certificate.
///
/// Errors name the endpoints (redacted) and, for a certificate that is not trusted, the
/// setting that decides trust.
pub async fn connect(settings: &EtcdSettings) -> anyhow::Result<etcd_client::Client> {
    let shown = settings.redacted_endpoints();
    let mut options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(KEEP_ALIVE_INTERVAL, Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    if let Some(tls) = tls_options(settings)? {
        options = options.with_tls(tls);
    }
    // The client connects lazily: one cheap call (Maintenance.Status) makes a refused
    // certificate or an unreachable endpoint an error of `connect`, named as such, rather
    // than of whatever call comes first.
    let connected = tokio::time::timeout(CALL_TIMEOUT, async {
        let mut client = etcd_client::Client::connect(&settings.endpoints, Some(options)).await?;
        client.status().await?;
        Ok::<_, etcd_client::Error>(client)
    })
    .await;
    let error = match connected {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => anyhow::Error::new(e),
        Err(_) => anyhow::anyhow!("timed out after {CALL_TIMEOUT:?}"),
    };
    Err(connect_error(error, "etcd", &shown, "etcd.tls"))
}

/// TLS options for `https://` endpoints; `None` for `http://` ones. Mixing both, or TLS
/// files with `http://` endpoints, is a configuration error (the files would be ignored).
fn tls_options(settings: &EtcdSettings) -> anyhow::Result<Option<etcd_client::TlsOptions>> {
    let https = settings
        .endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https == 0 {
        anyhow::ensure!(
            settings.tls.is_empty(),
            "etcd.tls is set but etcd.endpoints {} are not https://",
            settings.redacted_endpoints()
        );
        return Ok(None);
    }
    anyhow::ensure!(
        https == settings.endpoints.len(),
        "etcd.endpoints {} mix https:// and plain endpoints",
        settings.redacted_endpoints()
    );
    let pem = settings.tls.load("etcd.tls")?;
    let mut tls = etcd_client::TlsOptions::new();
    tls = match pem.ca {
        Some(ca) => tls.ca_certificate(etcd_client::Certificate::from_pem(ca)),
        None => tls.with_native_roots(),
    };
    if let Some((cert, key)) = pem.identity {
        tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
    }
    Ok(Some(tls))
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
