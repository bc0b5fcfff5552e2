//! Benchmark helper for `bench/gateway.sh`.
//!
//! - `seckill-gateway-bench baseline [ADDR]`: a trivial warp handler answering a fixed JSON
//!   envelope on the same warp/tokio stack as the gateway (default 127.0.0.1:18081).
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("seckill-gateway-bench {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("baseline") => baseline(args.get(1).map_or("127.0.0.1:18081", String::as_str)).await,
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
            "usage: seckill-gateway-bench baseline [ADDR] | tokens COUNT FILE \
             | admission USERS ACTIVITIES COUNT FILE"
        ),
    }
}

async fn baseline(addr: &str) -> anyhow::Result<()> {
    let route = warp::any().map(|| {
        warp::reply::with_header(
            r#"{"code":200,"message":"ok","data":{"status":"queued"}}"#,
            "content-type",
            "application/json",
        )
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("baseline listening on {}", listener.local_addr()?);
    warp::serve(route)
        .incoming(listener)
        .graceful(seckill_runtime::shutdown::signal())
        .run()
        .await;
    Ok(())
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
