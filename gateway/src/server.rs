//! The listener: accepts connections and serves the warp routes on them with hyper, under
//! limits warp's own server does not have (warp 0.4 builds hyper without a timer, so no
//! header-read timeout, and accepts without bound):
//!
//! - **Connection cap** (`gateway.max_connections`): a connection over it gets a canned 503
//!   (`Retry-After: 1`) and is closed at once; it is never queued.
//! - **Header-read timeout** (`gateway.header_read_timeout_ms`): from the moment hyper waits
//!   for a request (a new connection, or a kept-alive one between requests) until the head
//!   is complete. A client sending its headers a byte a second is cut off; so is an idle
//!   keep-alive connection.
//! - **Idle timeout** (`gateway.idle_timeout_ms`): no byte moving either way for that long
//!   while we wait on the socket (a stalled body, a client that stopped reading) closes it.
//! - The client address (`crate::client_ip`) is resolved here, once, from the peer and,
//!   behind trusted proxies, `X-Forwarded-For`, and handed to the routes as a request
//!   extension, with the request id; the request's span is made here too, with both.
//! - `POST /api/v1/seckill`, the sale itself, is served here without warp's filter tree
//!   (`crate::hot_route`); every other request goes through the warp routes.
//!
//! Graceful shutdown: on the signal the listener closes, every connection finishes the
//! request in hand and closes (idle ones at once), bounded by the request deadline.

use crate::client_ip::{ClientAddr, ClientIps};
use crate::state::State;
use crate::{hot_route, routes};
use futures::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;
use tracing::Instrument as _;
use warp::http::Request;

/// What a connection over the cap reads before we close it.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 97\r\n\r\n\
{\"code\":503,\"message\":\"too many connections; try again shortly\",\"data\":null,\"error\":\"OVERLOADED\"}";

/// Serves `state`'s routes on `listener` until `shutdown` completes, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    state: State,
    clients: Arc<ClientIps>,
    shutdown: impl Future<Output = ()>,
) {
    let settings = &state.settings;
    let slots = Arc::new(Semaphore::new(settings.gateway.max_connections));
    let header_timeout = settings.header_read_timeout();
    let idle = settings.idle_timeout();
    let drain = settings.request_timeout() + Duration::from_secs(1);
    let metrics = state.metrics.clone();
    let svc = warp::service(routes::all(state.clone()));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // E.g. out of file descriptors: pause instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            // Best effort and never waiting: the socket is new, its send buffer empty.
            let _ = stream.try_write(OVER_CAPACITY);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, idle));
        let svc = svc.clone();
        let clients = clients.clone();
        let state = state.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            if let Some(refused) = refused_at_the_door(&state, &req) {
                return Either::Left(std::future::ready(Ok(refused)));
            }
            let ip = clients.resolve(peer.ip(), req.headers().get_all("x-forwarded-for").iter());
            let id = routes::request_id_of(req.headers());
            let span = routes::request_span(req.method(), req.uri().path(), req.headers(), &id, ip);
            if hot_route::is_hot(&req) {
                let served = hot_route::serve(state.clone(), ip, id, req);
                return Either::Right(Either::Left(
                    async move { Ok(served.await) }.instrument(span),
                ));
            }
            req.extensions_mut().insert(ClientAddr { peer, ip });
            req.extensions_mut().insert(routes::RequestId(id));
            let mut svc = svc.clone();
            Either::Right(Either::Right(svc.call(req).instrument(span)))
        });
        let conn = graceful.watch(http.serve_connection(io, service));
        let metrics = metrics.clone();
        metrics.connections.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            metrics.connections.dec();
            drop(slot);
        });
        // One new connection per turn of the scheduler. Accepting a burst (a login flood, a
        // crowd at the opening) in one go put up to 128 new connections' tasks in the run
        // queue ahead of the requests of the connections already open: the sale's
        // reservations waited 100-200 ms behind 2,000 refused logins; with this, under 65 ms
        // (`tests/edge/auth_flood.rs`, docs/benchmarks.md). When the worker has nothing
        // else to do the next accept follows at once.
        tokio::task::yield_now().await;
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "connections still open after the drain deadline; closing them"
        );
    }
}

/// A login or registration while the password hashing pool is full is refused here, before
/// warp's routes, the body and the rate limiters: under a login flood the refusals are the
/// bulk of the work, and the sale shares the CPU with them.
fn refused_at_the_door<B>(state: &State, req: &Request<B>) -> Option<warp::reply::Response> {
    let path = req.uri().path();
    let auth = path == "/api/v1/auth/login" || path == "/api/v1/auth/register";
    if !(auth && req.method() == warp::http::Method::POST && state.passwords.saturated()) {
        return None;
    }
    let label = if path.ends_with("login") {
        "login"
    } else {
        "register"
    };
    state
        .metrics
        .requests
        .with_label_values(&[label, "503"])
        .inc();
    Some(
        crate::error::ApiError::Overloaded("too many logins at once; try again in a moment".into())
            .into_response(),
    )
}

/// Errors of one connection that `accept` reports; they say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A socket that fails with `TimedOut` once no byte has moved for `timeout` while someone
/// waits on it.
struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    /// When a byte last moved; the timer is only re-armed when it fires (cheap per read).
    last: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            last: Instant::now(),
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Called when the socket is not ready: an error once idle for too long, else pending
    /// (with the timer registered to wake us).
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let due = self.last + self.timeout;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(due));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_refusal_has_a_correct_length() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head} / {}",
            body.len()
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], 503);
    }

    #[tokio::test]
    async fn an_idle_socket_times_out_and_a_busy_one_does_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = IdleTimeout::new(a, Duration::from_millis(200));
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Bytes every 100 ms for 600 ms: never idle for 200 ms.
        let writer = tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                b.write_all(b"x").await.unwrap();
            }
            b
        });
        let mut buf = [0u8; 1];
        for _ in 0..6 {
            idle.read_exact(&mut buf).await.unwrap();
        }
        let _b = writer.await.unwrap();
        let started = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
    }
}
