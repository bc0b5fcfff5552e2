//! The database being unwell never turns an acknowledged reservation into a dead letter
//! (SPEC invariants 3 and 8). During a 2,000-reservation sale the database fails for 4 s in
//! a way that is not about any row's data — the orders table renamed away, the worker's
//! INSERT privilege revoked, the tablespace full, a CHECK constraint every new row fails —
//! and then heals; and, separately, MariaDB
//! is down for longer than `claim_idle_ms x max_deliveries` while two consumers could claim
//! each other's entries. Each time: no dead letter, the set of (activity, reservation) in
//! MySQL is exactly the set RESERVE acknowledged, and the audit is clean.

mod support;

use seckill_core::keys;
use seckill_testkit::{mariadb, MariaDb};
use seckill_worker::config::Settings;
use seckill_worker::Worker;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;
use tokio_util::sync::CancellationToken;

const ACTIVITY: u64 = 1;
const GROUP: &str = "seckill-orders";
const FAULT: Duration = Duration::from_secs(4);

/// The database name at the end of a URL.
fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Reserves one unit for each of `n` new users named `<prefix><i>`, pipelined; returns the
/// acknowledged `(activity, reservation)` pairs.
async fn reserve(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<(u64, String)>> {
    let ids = reserve_many(conn, ACTIVITY, (0..n).map(|u| format!("{prefix}{u}"))).await?;
    anyhow::ensure!(ids.len() == n, "RESERVE acknowledged {} of {n}", ids.len());
    Ok(ids.into_iter().map(|r| (ACTIVITY, r)).collect())
}

async fn dead_letters(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    Ok(redis::cmd("XLEN")
        .arg(keys::dead_letters(&act(ACTIVITY)))
        .query_async(conn)
        .await?)
}

/// Waits until nothing is in flight and every one of `expected` reservations is an order
/// row or a dead letter (a worker that dead-letters settles too, so the assertions below
/// say what happened instead of a timeout).
async fn wait_settled(env: &Env, expected: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut conn = env.conn().await?;
    loop {
        let busy: u64 = seckill_client::lag::all_lags(&mut conn, GROUP)
            .await?
            .iter()
            .map(seckill_core::lag::StreamLag::in_flight)
            .sum();
        let rows = u64::try_from(env.order_count().await.unwrap_or(0)).unwrap_or(0);
        let dead = dead_letters(&mut conn).await?;
        if busy == 0 && rows + dead >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not settled after {timeout:?}: {rows} rows + {dead} dead letters of {expected}, \
             {busy} in flight"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of an unlabelled gauge in the worker's metrics text (0 when absent).
fn gauge(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// What the test did and saw, checked at the end.
struct Sale {
    acked: BTreeSet<(u64, String)>,
    /// The worker said the database was failing while the fault lasted.
    saw_failing: bool,
}

/// A sale of 2,000 units: 500 reservations, then `fault` and 1,000 reservations over
/// [`FAULT`], then `heal` and 500 more. `fault` and `heal` run on a blocking thread.
async fn sale_through_fault(
    env: &Env,
    settings: Settings,
    fault: impl FnOnce() -> anyhow::Result<()>,
    heal: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Sale> {
    let mut conn = env.conn().await?;
    create_activity(&mut conn, ACTIVITY, 2_000).await?;
    let worker = Worker::build(settings).await?;
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
    let mut acked = BTreeSet::new();

    acked.extend(reserve(&mut conn, "before", 500).await?);
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.order_count().await? == 0 {
        anyhow::ensure!(Instant::now() < deadline, "no order before the fault");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tokio::task::block_in_place(fault)?;
    let started = Instant::now();
    let mut saw_failing = false;
    for round in 0..10 {
        acked.extend(reserve(&mut conn, &format!("during{round}-"), 100).await?);
        let until = started + FAULT * (round + 1) / 10;
        while Instant::now() < until {
            saw_failing |= gauge(&metrics.render(), "seckill_worker_database_failing") > 0;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The fault did stop the inserts: reservations wait in the stream (or, the bug this file
    // is about, went to the dead letters). Asked of Redis: the database may not even have
    // its orders table now.
    let waiting: u64 = seckill_client::lag::all_lags(&mut conn, GROUP)
        .await?
        .iter()
        .map(seckill_core::lag::StreamLag::in_flight)
        .sum();
    let dead = dead_letters(&mut conn).await?;
    anyhow::ensure!(waiting + dead > 0, "the fault did not stop the inserts");
    tokio::task::block_in_place(heal)?;

    acked.extend(reserve(&mut conn, "after", 500).await?);
    anyhow::ensure!(acked.len() == 2_000);
    wait_settled(env, 2_000, Duration::from_secs(60)).await?;
    stop.cancel();
    handle.await??;
    Ok(Sale { acked, saw_failing })
}

/// No dead letter, one order per acknowledged reservation (as sets), a clean audit, and
/// the worker said the database was failing.
async fn assert_nothing_lost(env: &Env, sale: &Sale) -> anyhow::Result<()> {
    let mut conn = env.conn().await?;
    let dead = seckill_client::streams::read_stream(&mut conn, &keys::dead_letters(&act(ACTIVITY)))
        .await?;
    let field = |name: &str| {
        dead.first().and_then(|(_, f)| {
            f.iter()
                .find(|(k, _)| k == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        })
    };
    assert!(
        dead.is_empty(),
        "{} reservation(s) dead-lettered because the database was unwell, e.g. {:?}: {:?}",
        dead.len(),
        field("reservation"),
        field("reason")
    );
    let rows: BTreeSet<(u64, String)> = order_ids(&env.pool).await?.into_iter().collect();
    let missing: Vec<_> = sale.acked.difference(&rows).take(5).collect();
    let extra: Vec<_> = rows.difference(&sale.acked).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "orders differ from the acknowledged reservations: missing {missing:?}, extra {extra:?}"
    );
    let report =
        seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(ACTIVITY), GROUP).await?;
    assert!(report.is_clean(), "{:?}", report.drift);
    assert!(
        sale.saw_failing,
        "seckill_worker_database_failing never showed the fault"
    );
    Ok(())
}

/// `RENAME TABLE orders TO orders_swap` for 4 s and back: MySQL answers 1146 "table
/// doesn't exist" for every insert, which is the database's state, not the rows'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_table_renamed_away_for_four_seconds() -> anyhow::Result<()> {
    let env = env().await?;
    let db = mariadb::shared()?;
    let name = db_name(&env.db_url);
    let sale = sale_through_fault(
        &env,
        env.settings(),
        || {
            db.sql(&format!(
                "RENAME TABLE `{name}`.orders TO `{name}`.orders_swap"
            ))
            .map(drop)
        },
        || {
            db.sql(&format!(
                "RENAME TABLE `{name}`.orders_swap TO `{name}`.orders"
            ))
            .map(drop)
        },
    )
    .await?;
    assert_nothing_lost(&env, &sale).await
}

/// The worker runs as an application user (`SELECT, INSERT, UPDATE` on its database)
/// whose INSERT is revoked for 4 s: every insert gets 1142 "INSERT command denied". A
/// database-level privilege is fixed when a session selects its database, so the revoke
/// also ends the user's sessions (as an operator would); the grant back reaches only new
/// sessions, which the worker must open instead of retrying on the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_privilege_revoked_for_four_seconds() -> anyhow::Result<()> {
    let env = env().await?;
    let db = mariadb::shared()?;
    let name = db_name(&env.db_url);
    let user = format!("w{name}");
    db.sql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; \
         GRANT SELECT, INSERT, UPDATE ON `{name}`.* TO '{user}'@'%'"
    ))?;
    let mut settings = env.settings();
    settings.mysql.url =
        seckill_runtime::Secret::new(format!("mysql://{user}:pw@127.0.0.1:{}/{name}", db.port));
    let revoke = || -> anyhow::Result<()> {
        db.sql(&format!("REVOKE INSERT ON `{name}`.* FROM '{user}'@'%'"))?;
        let sessions = db.sql(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ))?;
        for id in sessions.lines().filter(|l| !l.trim().is_empty()) {
            // A session may end by itself meanwhile.
            let _ = db.sql(&format!("KILL CONNECTION {}", id.trim()));
        }
        Ok(())
    };
    let grant = || {
        db.sql(&format!("GRANT INSERT ON `{name}`.* TO '{user}'@'%'"))
            .map(drop)
    };
    let sale = sale_through_fault(&env, settings, revoke, grant).await?;
    assert_nothing_lost(&env, &sale).await?;
    db.sql(&format!("DROP USER '{user}'@'%'"))?;
    Ok(())
}

/// An operator adds a CHECK constraint that every new order violates (`reserved_at` before
/// now) for 4 s. `INSERT IGNORE` skips such rows with a warning instead of failing: a skip
/// that no other live order of the user explains is the database's doing, so the batch
/// is retried, not dead-lettered as "the user already holds a live order".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraint_refusing_every_new_row_for_four_seconds() -> anyhow::Result<()> {
    let env = env().await?;
    let db = mariadb::shared()?;
    let name = db_name(&env.db_url);
    let sale = sale_through_fault(
        &env,
        env.settings(),
        || {
            let now = db.sql("SELECT NOW(3)")?;
            db.sql(&format!(
                "ALTER TABLE `{name}`.orders ADD CONSTRAINT frozen CHECK (reserved_at <= '{}')",
                now.trim()
            ))
            .map(drop)
        },
        || {
            db.sql(&format!(
                "ALTER TABLE `{name}`.orders DROP CONSTRAINT frozen"
            ))
            .map(drop)
        },
    )
    .await?;
    assert_nothing_lost(&env, &sale).await
}

/// The orders table lives in a capped system tablespace (a private MariaDB with
/// `--innodb-file-per-table=0` and `ibdata1:12M:autoextend:max:32M`); a filler table takes
/// the rest, so inserts fail with 1114 "table is full" for 4 s, until the filler is
/// dropped and InnoDB purges its pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tablespace_full_for_four_seconds() -> anyhow::Result<()> {
    let db = MariaDb::start_with_args(&[
        "--innodb-file-per-table=0",
        "--innodb-data-file-path=ibdata1:12M:autoextend:max:32M",
    ])?;
    let env = env_on(Some(&db)).await?;
    let name = db_name(&env.db_url);
    let fill = || -> anyhow::Result<()> {
        db.sql(&format!(
            "CREATE TABLE `{name}`.filler (id INT AUTO_INCREMENT PRIMARY KEY, \
             pad CHAR(255) NOT NULL DEFAULT '') ENGINE = InnoDB"
        ))?;
        // Big inserts first, then smaller ones into the last gaps, until even one row
        // does not fit.
        for rows in [20_000, 2_000, 200, 20, 1] {
            loop {
                let r = db.sql(&format!(
                    "INSERT INTO `{name}`.filler (pad) SELECT '' FROM `{name}`.seq_1_to_{rows}"
                ));
                match r {
                    Ok(_) => continue,
                    Err(e) if format!("{e:#}").contains("1114") => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    };
    let free = || db.sql(&format!("DROP TABLE `{name}`.filler")).map(drop);
    let sale = sale_through_fault(&env, env.settings(), fill, free).await?;
    assert_nothing_lost(&env, &sale).await
}

/// MariaDB down for 4 s, more than `claim_idle_ms x max_deliveries` (300 ms x 1), while one
/// consumer holds the whole burst of reservations and the other has nothing to do but
/// claim idle entries. The holder keeps its entries from going idle, so they are never
/// claimed, never redelivered, never dead-lettered as "delivered too often".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outage_with_two_consumers_dead_letters_nothing() -> anyhow::Result<()> {
    let mut db = MariaDb::start()?;
    let env = env_on(Some(&db)).await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, ACTIVITY, 2_000).await?;
    let mut settings = env.settings();
    let w = &mut settings.worker;
    w.consumers = 2;
    w.claim_idle_ms = 300;
    w.claim_interval_ms = 100;
    w.max_deliveries = 1;
    w.backoff_max_ms = 500;
    let worker = Worker::build(settings).await?;
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
    let mut acked: BTreeSet<(u64, String)> = BTreeSet::new();

    acked.extend(reserve(&mut conn, "before", 500).await?);
    wait_settled(&env, 500, Duration::from_secs(30)).await?;
    db.stop();
    // One MULTI/EXEC: the entries appear at once, so the first consumer to wake reads all
    // of them (COUNT 1,000) and the other stays idle, free to claim.
    let mut burst = redis::pipe();
    burst.atomic();
    for u in 0..1_000 {
        burst
            .cmd("SECKILL.RESERVE")
            .arg(ACTIVITY)
            .arg(format!("burst{u}"))
            .arg(1);
    }
    let replies: Vec<(String, i64)> = burst.query_async(&mut conn).await?;
    acked.extend(replies.into_iter().map(|(rid, _)| (ACTIVITY, rid)));
    let down = Instant::now();
    let mut saw_failing = false;
    while down.elapsed() < FAULT {
        saw_failing |= gauge(&metrics.render(), "seckill_worker_database_failing") > 0;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| db.start_again())?;
    acked.extend(reserve(&mut conn, "after", 500).await?);
    wait_settled(&env, 2_000, Duration::from_secs(60)).await?;
    let text = metrics.render();
    stop.cancel();
    handle.await??;
    assert_nothing_lost(&env, &Sale { acked, saw_failing }).await?;
    assert_eq!(
        gauge(&text, "seckill_worker_claimed_total"),
        0,
        "entries of a live consumer were claimed"
    );
    Ok(())
}

/// SIGTERM while the sweeper leader's pass waits on a database that went away: the worker
/// stops at once. A pass trims every stream, each waiting out the pool's acquire timeout
/// with the database gone, so finishing it first kept a stopping worker alive for that
/// timeout times the streams (in the local stack: a process still there after `stop`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_sweep_pass_on_a_dead_database() -> anyhow::Result<()> {
    let mut db = MariaDb::start()?;
    let env = env_on(Some(&db)).await?;
    let mut conn = env.conn().await?;
    for a in 1..=10 {
        create_activity(&mut conn, a, 100).await?;
        reserve_many(&mut conn, a, ["u1".to_string()]).await?;
    }
    let mut settings = env.settings();
    let sw = &mut settings.worker.sweeper;
    sw.enabled = true;
    sw.interval_ms = 50;
    sw.trim_interval_ms = 50;
    let worker = Worker::build(settings).await?;
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
    env.wait_drained(10, Duration::from_secs(30)).await?;
    let started = Instant::now();
    while metrics.sweeper_leader.get() != 1 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the worker never led the sweeper"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    db.stop();
    // Passes now wait on the pool (acquire timeout 1 s per statement, ten streams).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), handle).await???;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the worker took {took:?} to stop after the shutdown"
    );
    Ok(())
}
