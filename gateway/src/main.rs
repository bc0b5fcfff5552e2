//! `seckill-gateway`: parses flags, loads settings, serves until SIGINT/SIGTERM.

use anyhow::Context;
use clap::Parser;
use seckill_gateway::config::{Cli, Settings};
use seckill_gateway::startup::Application;
use seckill_gateway::telemetry;

// glibc malloc made the hot path bimodal (39k or 50k req/s from run to run, with frees of
// memory allocated on the other worker thread showing in the slow runs); mimalloc keeps it
// at 51-53k with the rate limiters on (docs/benchmarks.md, "Gateway").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(&cli)?;
    let threads = settings.gateway.worker_threads();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("could not start the async runtime")?
        .block_on(serve(settings, threads))
}

async fn serve(settings: Settings, threads: usize) -> anyhow::Result<()> {
    // Held until main returns: dropping it flushes buffered log lines and spans.
    let _logs = telemetry::init_with(&settings.gateway.log_filter, &settings.telemetry)?;
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "gateway failed to start");
            return Err(e);
        }
    };
    tracing::info!(addr = %app.local_addr(), worker_threads = threads, "gateway listening");
    // On a worker thread, not `block_on`'s: there the accept loop's yield after each
    // connection (`server.rs`) lets the worker's other tasks run, and each connection's task
    // goes to that worker's own queue instead of through the shared one with a wake-up.
    if let Err(e) = tokio::spawn(app.run_until_stopped()).await {
        tracing::error!(error = %e, "the gateway's serving task failed");
        return Err(e).context("the gateway's serving task failed");
    }
    tracing::info!("gateway stopped");
    Ok(())
}
