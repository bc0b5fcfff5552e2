//! Drain benchmark (not a timed test): orders/s of the worker draining a 200,000-entry
//! backlog, next to plain batched `INSERT`s of the same rows through the same driver into
//! the same MariaDB in the same run (the database's own limit).
//! The two runs alternate `ROUNDS` times (default 3) and their medians are compared.
//! Redis runs the repository's `redis.conf` (AOF, `appendfsync always`), as shipped;
//! `REDIS_AOF=off` runs it without AOF (a variant).
//! Also prints the CPU each process used in each phase (this process runs the worker), per
//! row, so a gap between the two rows can be put on the database, Redis or the worker, and
//! how long each process' threads waited for a core (runnable, not running: the kernel's
//! `schedstat`), which is where the two cores being shared shows.
//!
//! ```text
//! cargo build --release -p seckill-module
//! cargo bench -p seckill-worker --bench drain    # ENTRIES=200000 BATCH=<shipped worker.batch_size> CONSUMERS=<shipped> ROUNDS=3
//! ```

use seckill_client::lag as streams;
use seckill_client::streams as inspect;
use seckill_core::lag::StreamLag;
use seckill_core::{keys, ActivityId};
use seckill_db::orders::insert_statement;
use seckill_db::pool as db;
use seckill_testkit::{shipped_config, MariaDb, RedisOptions, RedisServer};
use seckill_worker::config::Settings;
use seckill_worker::plan::{plan_batch, RawEntry, Windows};
use seckill_worker::Worker;
use std::time::{Duration, Instant};

// The worker runs in this process: the same allocator as the `seckill-worker` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) used so far by this process (the worker's tasks run here)
/// and by each kind of its child processes (`mariadbd`, `redis-server`), from `/proc`; and,
/// as "<name> waiting for a core", the seconds their threads spent runnable but not running.
fn cpu_seconds() -> std::collections::BTreeMap<String, f64> {
    let me = std::process::id();
    let mut out = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": fields after the last ')' are space-separated.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (ppid, ticks) = (field(1) as u32, field(11) + field(12));
        let name = if pid == me {
            "worker (bench process)".to_string()
        } else if ppid == me {
            comm.to_string()
        } else {
            continue;
        };
        // USER_HZ is 100 on every Linux the bench runs on.
        *out.entry(name.clone()).or_insert(0.0) += ticks as f64 / 100.0;
        *out.entry(format!("{name} waiting for a core"))
            .or_insert(0.0) += run_queue_wait(pid);
    }
    out
}

/// Seconds the threads of `pid` have spent runnable but waiting for a core (the second field
/// of each thread's `/proc/<pid>/task/<tid>/schedstat`, in ns); 0 where schedstats are off.
fn run_queue_wait(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .sum()
}

fn cpu_used(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    rows: usize,
) -> String {
    after
        .iter()
        .map(|(name, t)| {
            let used = t - before.get(name).copied().unwrap_or(0.0);
            format!(
                "{name} {used:.2} s ({:.1} µs/row)",
                used * 1e6 / rows as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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
    // The worker as shipped unless told otherwise; the plain INSERTs use the same batch.
    let shipped = Settings::default().worker;
    let batch = env_num("BATCH", shipped.batch_size);
    let consumers = env_num("CONSUMERS", shipped.consumers);
    let activities = 10;
    // Extra mariadbd options (e.g. "--innodb-log-file-size=512M"), to see what the server's
    // own settings cost.
    let mariadb_args = std::env::var("MARIADB_ARGS").unwrap_or_default();
    let mariadb_args: Vec<&str> = mariadb_args.split_whitespace().collect();
    let mariadb = MariaDb::start_with_args(&mariadb_args)?;
    // Redis as it ships (the repository's redis.conf: AOF, fsync always): XREADGROUP
    // writes an XCLAIM per entry it delivers to the AOF, and XACK itself. REDIS_AOF=off runs
    // the variant without (a labelled row, not the headline).
    let aof = std::env::var("REDIS_AOF").map_or(true, |v| v != "off");
    let redis = RedisServer::start_with(RedisOptions {
        config: aof.then(shipped_config),
        ..RedisOptions::default()
    })?;
    let redis_label = if aof {
        "redis.conf as shipped: AOF, fsync always"
    } else {
        "variant: Redis without AOF (REDIS_AOF=off)"
    };
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

    // The two runs alternate, ROUNDS times each, and the medians are compared: one run of
    // either moves by 10-20% from run to run on a 2-core machine, far more than the gap
    // being measured. Each round inserts into a fresh database; each drain reads the
    // whole backlog again through a consumer group of its own.
    let rounds = env_num("ROUNDS", 3).max(1);
    let mut plain_runs = Vec::new();
    let mut drain_runs = Vec::new();
    for round in 1..=rounds {
        plain_runs.push(plain_inserts(&mariadb, &rows, batch).await?);
        let group = format!("bench-drain-{round}");
        drain_runs.push(
            drain_backlog(
                &mariadb, &redis, &mut conn, &group, batch, consumers, entries,
            )
            .await?,
        );
        eprintln!(
            "round {round}/{rounds}: plain {:.0} orders/s, drain {:.0} orders/s",
            plain_runs[round - 1].rate(entries),
            drain_runs[round - 1].rate(entries)
        );
    }

    let plain = median(&plain_runs);
    let drain = median(&drain_runs);
    let runs = |v: &[Run]| {
        v.iter()
            .map(|r| format!("{:.0}", r.rate(entries)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("| run | rows | batch | consumers | seconds (median) | orders/s (median) | orders/s of each round |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| plain batched INSERT (limit) | {entries} | {batch} | 1 | {:.2} | {:.0} | {} |",
        plain.took.as_secs_f64(),
        plain.rate(entries),
        runs(&plain_runs)
    );
    println!(
        "| worker drain (XREADGROUP, INSERT IGNORE, XACK; {redis_label}) | {entries} | {batch} | {consumers} | {:.2} | {:.0} | {} |",
        drain.took.as_secs_f64(),
        drain.rate(entries),
        runs(&drain_runs)
    );
    println!(
        "ratio worker / limit (medians of {rounds} alternated rounds): {:.2}",
        drain.rate(entries) / plain.rate(entries)
    );
    println!("CPU during the median plain INSERTs: {}", plain.cpu);
    println!("CPU during the median drain: {}", drain.cpu);
    Ok(())
}

/// One timed run: how long it took and the CPU each process used.
struct Run {
    took: Duration,
    cpu: String,
}

impl Run {
    fn rate(&self, rows: usize) -> f64 {
        rows as f64 / self.took.as_secs_f64()
    }
}

/// The run of median duration.
fn median(runs: &[Run]) -> &Run {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by_key(|r| r.took);
    sorted[sorted.len() / 2]
}

/// Plain batched INSERTs (no IGNORE, no Redis) of the planned rows into a fresh database:
/// the database's own limit.
async fn plain_inserts(
    mariadb: &MariaDb,
    rows: &[(usize, seckill_db::orders::NewOrder)],
    batch: usize,
) -> anyhow::Result<Run> {
    let url = mariadb.create_database()?;
    let pool = db::connect_lazy(&url, 4, Duration::from_secs(10))?;
    db::migrate(&pool).await?;
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        let mut q = insert_statement("INSERT", chunk);
        q.build().execute(&pool).await?;
    }
    let took = started.elapsed();
    let cpu = cpu_used(&cpu0, &cpu_seconds(), rows.len());
    pool.close().await;
    Ok(Run { took, cpu })
}

/// The worker (consumer group `group`, created here at the start of every stream) draining
/// the whole backlog into a fresh database.
async fn drain_backlog(
    mariadb: &MariaDb,
    redis: &RedisServer,
    conn: &mut redis::aio::MultiplexedConnection,
    group: &str,
    batch: usize,
    consumers: usize,
    entries: usize,
) -> anyhow::Result<Run> {
    let url = mariadb.create_database()?;
    let pool = db::connect_lazy(&url, 4, Duration::from_secs(10))?;
    db::migrate(&pool).await?;
    for (key, _) in inspect::discover(conn).await? {
        inspect::ensure_group(conn, &key, group).await?;
    }
    let mut s = Settings::default();
    s.redis.url = redis.url();
    s.mysql.url = seckill_runtime::Secret::new(url);
    s.worker.group = group.to_string();
    s.worker.metrics_addr = String::new();
    s.worker.batch_size = batch;
    s.worker.consumers = consumers;
    s.worker.concurrent_inserts = env_num("CONCURRENT_INSERTS", s.worker.concurrent_inserts);
    s.worker.block_ms = 100;
    s.worker.sweeper.enabled = false;
    let worker = Worker::build(s).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
    loop {
        let lags = streams::all_lags(conn, group).await?;
        let busy: u64 = lags.iter().map(StreamLag::in_flight).sum();
        if busy == 0 && !lags.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let cpu = cpu_used(&cpu0, &cpu_seconds(), entries);
    stop.cancel();
    handle.await??;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count as usize, entries, "every entry one row");
    pool.close().await;
    Ok(Run { took, cpu })
}
