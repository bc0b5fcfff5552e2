//! One shutdown signal for the whole process: SIGINT (Ctrl-C) or SIGTERM.

use tokio_util::sync::CancellationToken;

/// Completes on SIGINT or SIGTERM. If a handler cannot be installed, that signal is never
/// seen (the other still works), which is logged.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                tracing::info!("SIGTERM received");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGTERM handler");
                std::future::pending::<()>().await
            }
        }
    };
    let int = async {
        match signal(SignalKind::interrupt()) {
            Ok(mut s) => {
                s.recv().await;
                tracing::info!("SIGINT received");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGINT handler");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = int => {}
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM (spawn it): every task holding a clone of
/// the token sees the same shutdown.
pub async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        _ = signal() => token.cancel(),
        _ = token.cancelled() => {}
    }
}
