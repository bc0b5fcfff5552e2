//! Benchmark helper for `bench/gateway.sh`.
//!
//! - `seckill-gateway-bench baseline [ADDR]`: a trivial warp handler answering a fixed JSON
//!   envelope on the same warp/tokio stack as the gateway (default 127.0.0.1:18081).
//! - `seckill-gateway-bench floor ADDR REDIS_URL ACTIVITIES`: the same handler plus one
//!   `SECKILL.RESERVE` per request through the gateway's Redis client: the floor a gateway
//!   that reserves durably cannot go below (`bench/gateway.sh`'s `floor` row).
//! - `seckill-gateway-bench tokens COUNT FILE`: writes COUNT valid JWTs (users `bench0`...),
//!   one per line, signed with `SECKILL_AUTH__JWT_SECRET`.
//! - `seckill-gateway-bench admission USERS ACTIVITIES COUNT FILE`: writes COUNT admission
//!   tokens, line n for user `bench<n % USERS>` and activity `b<(n / USERS) % ACTIVITIES>`
//!   (the pairs `bench/gateway.lua` sends, in its order), usable at once and for a day,
//!   signed with the key a gateway derives from `SECKILL_AUTH__JWT_SECRET`: for benchmarks
//!   of `POST /api/v1/seckill` with `admission.required` on (gateway.lua's `ADMISSION`).

use anyhow::{bail, Context};
use seckill_gateway::auth::{Jwt, Role};
use std::io::Write;
use warp::Filter;

// The same allocator as the gateway, so the baseline differs from it only by the work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.first().map(String::as_str) == Some("floor") {
        // The gateway's own default on this machine, so the floor differs from it only by
        // the work.
        runtime
            .worker_threads(seckill_gateway::config::GatewaySettings::default().worker_threads());
    }
    runtime
        .enable_all()
        .build()
        .context("could not start the async runtime")?
        .block_on(run(args))
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("seckill-gateway-bench {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("baseline") => baseline(args.get(1).map_or("127.0.0.1:18081", String::as_str)).await,
        Some("floor") => {
            let addr = args.get(1).context("ADDR missing")?;
            let redis = args.get(2).context("REDIS_URL missing")?;
            let activities: u64 = args.get(3).context("ACTIVITIES missing")?.parse()?;
            if activities == 0 {
                bail!("ACTIVITIES must be positive");
            }
            floor(addr, redis, activities).await
        }
        Some("tokens") => {
            let count: u64 = args.get(1).context("COUNT missing")?.parse()?;
            let file = args.get(2).context("FILE missing")?;
            tokens(count, file)
        }
        Some("admission") => {
            let n = |i: usize, what: &str| -> anyhow::Result<u64> {
                Ok(args
                    .get(i)
                    .with_context(|| format!("{what} missing"))?
                    .parse()?)
            };
            let file = args.get(4).context("FILE missing")?;
            admission(n(1, "USERS")?, n(2, "ACTIVITIES")?, n(3, "COUNT")?, file)
        }
        _ => bail!(
            "usage: seckill-gateway-bench baseline [ADDR] | floor ADDR REDIS_URL ACTIVITIES \
             | tokens COUNT FILE \
             | admission USERS ACTIVITIES COUNT FILE"
        ),
    }
}

/// The reply of both handlers below: the gateway's envelope for a queued reservation.
const QUEUED: &str = r#"{"code":200,"message":"ok","data":{"status":"queued"}}"#;

async fn baseline(addr: &str) -> anyhow::Result<()> {
    let route =
        warp::any().map(|| warp::reply::with_header(QUEUED, "content-type", "application/json"));
    serve("baseline", addr, route).await
}

/// Serves `route` on `addr` until SIGINT/SIGTERM.
async fn serve<F>(what: &str, addr: &str, route: F) -> anyhow::Result<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    eprintln!("{what} listening on {}", listener.local_addr()?);
    warp::serve(route)
        .incoming(listener)
        .graceful(seckill_runtime::shutdown::signal())
        .run()
        .await;
    Ok(())
}

/// The cheapest handler that does what a reservation cannot avoid: read the request, one
/// `SECKILL.RESERVE` through the gateway's own Redis client (the coalesced pipeline), the
/// fixed envelope. No token, no parse, no limits, no metrics, no log. Request n reserves for
/// user `floor<n>` in activity `b<n % activities>`.
async fn floor(addr: &str, redis: &str, activities: u64) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let client = seckill_client::SeckillClient::connect(redis, std::time::Duration::from_secs(1))
        .await
        .with_context(|| format!("could not connect to {redis}"))?;
    let route = warp::any()
        .and(warp::body::bytes())
        .then(move |_body: bytes::Bytes| {
            let client = client.clone();
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            async move {
                let reserved = async {
                    let user = seckill_core::UserId::parse(format!("floor{n}"))?;
                    let activity = seckill_core::ActivityId::parse(format!("b{}", n % activities))?;
                    client.reserve(&activity, &user, 1, "p").await?;
                    anyhow::Ok(())
                };
                let (status, kind, body) = match reserved.await {
                    Ok(()) => (
                        warp::http::StatusCode::OK,
                        "application/json",
                        QUEUED.to_owned(),
                    ),
                    Err(e) => (
                        warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        format!("{e:#}"),
                    ),
                };
                warp::reply::with_status(
                    warp::reply::with_header(body, "content-type", kind),
                    status,
                )
            }
        });
    serve("floor", addr, route).await
}

fn tokens(count: u64, file: &str) -> anyhow::Result<()> {
    let secret = std::env::var("SECKILL_AUTH__JWT_SECRET")
        .context("set SECKILL_AUTH__JWT_SECRET to the gateway's key")?;
    let jwt = Jwt::new(secret.as_bytes(), 24 * 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    for i in 0..count {
        let (token, _) = jwt.issue(&format!("bench{i}"), Role::User, now)?;
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(())
}

fn admission(users: u64, activities: u64, count: u64, file: &str) -> anyhow::Result<()> {
    use seckill_core::admission::{AdmissionKeys, Ticket};
    let secret = std::env::var("SECKILL_AUTH__JWT_SECRET")
        .context("set SECKILL_AUTH__JWT_SECRET to the gateway's key")?;
    if users == 0 || activities == 0 {
        bail!("USERS and ACTIVITIES must be positive");
    }
    let keys = AdmissionKeys::derive(secret.as_bytes());
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    for n in 0..count {
        let ticket = Ticket {
            user: seckill_core::UserId::parse(format!("bench{}", n % users))?,
            activity: seckill_core::ActivityId::parse(format!("b{}", (n / users) % activities))?,
            not_before_ms: 0,
            expires_ms: now_ms + 24 * 3600 * 1000,
            nonce: rand::random(),
        };
        writeln!(out, "{}", keys.issue_ticket(&ticket))?;
    }
    out.flush()?;
    Ok(())
}
