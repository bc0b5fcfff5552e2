//! Benchmark helper for `bench/gateway.sh`.
//!
//! - `seckill-gateway-bench baseline [ADDR]`: a trivial warp handler answering a fixed JSON
//!   envelope on the same warp/tokio stack as the gateway (default 127.0.0.1:18081).
//! - `seckill-gateway-bench tokens COUNT FILE`: writes COUNT valid JWTs (users `bench0`...),
//!   one per line, signed with `SECKILL_AUTH__JWT_SECRET`.

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
        _ => bail!("usage: seckill-gateway-bench baseline [ADDR] | tokens COUNT FILE"),
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
