//! The benchmark baseline: a trivial warp handler (`POST /` answering a fixed JSON envelope)
//! on the same runtime as the gateway, so `bench/gateway.sh` compares like with like.
//!
//! Usage: `seckill-gateway-bench-baseline [ADDR]` (default 127.0.0.1:18081).

use warp::Filter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()?;
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
        .graceful(seckill_gateway::startup::shutdown_signal())
        .run()
        .await;
    Ok(())
}
