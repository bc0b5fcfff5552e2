//! Drain benchmark (not a timed test): orders/s of the worker draining a 200,000-entry
//! backlog, next to plain batched `INSERT`s of the same rows through the same driver into
//! the same MariaDB in the same run (the database's own limit).
//!
//! ```text
//! cargo build --release -p seckill-module
//! cargo bench -p seckill-worker --bench drain            # ENTRIES=200000 BATCH=1000 CONSUMERS=2
//! ```

use seckill_client::lag as streams;
use seckill_client::streams as inspect;
use seckill_core::lag::StreamLag;
use seckill_core::{keys, ActivityId};
use seckill_db::orders::insert_statement;
use seckill_db::pool as db;
use seckill_testkit::{MariaDb, RedisServer};
use seckill_worker::config::Settings;
use seckill_worker::plan::{plan_batch, RawEntry, Windows};
use seckill_worker::Worker;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    if std::env::var("SECKILL_MODULE").is_err() {
        // Reservations are written before timing starts: any build of the module will do.
        for profile in ["release", "debug"] {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(profile)
                .join("libseckill_module.so");
            if p.exists() {
                std::env::set_var("SECKILL_MODULE", p);
                break;
            }
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let entries = env_num("ENTRIES", 200_000);
    let batch = env_num("BATCH", 1_000);
    let consumers = env_num("CONSUMERS", 2);
    let activities = 10;
    let mariadb = MariaDb::start()?;
    let redis = RedisServer::start()?;
    let mut conn = redis.client()?.get_multiplexed_async_connection().await?;

    eprintln!("writing {entries} reservations over {activities} activities...");
    for a in 1..=activities {
        redis::cmd("SECKILL.CREATE")
            .arg(a)
            .arg("STOCK")
            .arg(entries)
            .arg("PRICE")
            .arg(999)
            .arg("PRODUCT")
            .arg("bench")
            .query_async::<()>(&mut conn)
            .await?;
    }
    for chunk in 0..entries / 1_000 {
        let mut pipe = redis::pipe();
        for i in 0..1_000 {
            let n = chunk * 1_000 + i;
            pipe.cmd("SECKILL.RESERVE")
                .arg(n % activities + 1)
                .arg(format!("user{n}"))
                .arg(1)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }

    // The same rows the worker will insert, planned the same way.
    let mut raw = Vec::with_capacity(entries);
    for a in 1..=activities {
        let id = ActivityId::parse(a.to_string())?;
        for (rid, fields) in inspect::read_stream(&mut conn, &keys::stream(&id)).await? {
            raw.push(RawEntry {
                activity: id.clone(),
                id: rid,
                fields,
                deliveries: 1,
            });
        }
    }
    let windows = Windows {
        default_secs: 900,
        ..Windows::default()
    };
    let rows = plan_batch(&raw, 5, &windows).rows;
    assert_eq!(rows.len(), entries);

    // 1. Plain batched INSERT (no IGNORE, no Redis): the database's limit.
    let base_url = mariadb.create_database()?;
    let pool = db::connect_lazy(&base_url, 4, Duration::from_secs(10))?;
    db::migrate(&pool).await?;
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        let mut q = insert_statement("INSERT", chunk);
        q.build().execute(&pool).await?;
    }
    let plain = started.elapsed();
    pool.close().await;

    // 2. The worker draining the backlog into a fresh database.
    let url = mariadb.create_database()?;
    let pool = db::connect_lazy(&url, 4, Duration::from_secs(10))?;
    db::migrate(&pool).await?;
    let mut s = Settings::default();
    s.redis.url = redis.url();
    s.mysql.url = seckill_runtime::Secret::new(url);
    s.worker.metrics_addr = String::new();
    s.worker.batch_size = batch;
    s.worker.consumers = consumers;
    s.worker.block_ms = 100;
    s.worker.sweeper.enabled = false;
    let worker = Worker::build(s).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
    loop {
        let lags = streams::all_lags(&mut conn, "seckill-orders").await?;
        let busy: u64 = lags.iter().map(StreamLag::in_flight).sum();
        if busy == 0 && !lags.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = started.elapsed();
    stop.cancel();
    handle.await??;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count as usize, entries, "every entry one row");

    let rate = |d: Duration| entries as f64 / d.as_secs_f64();
    println!("| run | rows | batch | consumers | seconds | orders/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| plain batched INSERT (limit) | {entries} | {batch} | 1 | {:.2} | {:.0} |",
        plain.as_secs_f64(),
        rate(plain)
    );
    println!(
        "| worker drain (XREADGROUP, INSERT IGNORE, XACK) | {entries} | {batch} | {consumers} | {:.2} | {:.0} |",
        drain.as_secs_f64(),
        rate(drain)
    );
    println!("ratio worker / limit: {:.2}", rate(drain) / rate(plain));
    Ok(())
}
