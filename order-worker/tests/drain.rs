//! Draining: every reservation becomes exactly one order row; poison entries, conflicting
//! rows and entries delivered too often go to the dead-letter stream without blocking the rest.

mod support;

use seckill_core::keys;
use std::time::Duration;
use support::*;

/// 10,000 reservations across 100 activities, two workers at once: exactly one row each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_reservations_across_100_activities() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    for a in 1..=100 {
        create_activity(&mut conn, a, 1_000).await?;
    }
    let (s1, h1) = env.spawn_worker(env.settings()).await?;
    let (s2, h2) = env.spawn_worker(env.settings()).await?;
    for a in 1..=100u64 {
        reserve_many(&mut conn, a, (0..100).map(|u| format!("u{u}"))).await?;
    }
    env.wait_drained(10_000, Duration::from_secs(120)).await?;
    s1.cancel();
    s2.cancel();
    h1.await??;
    h2.await??;
    let want = stream_ids(&mut conn, 1..=100).await?;
    assert_eq!(want.len(), 10_000);
    assert_eq!(
        order_ids(&env.pool).await?,
        want,
        "rows differ from reservations"
    );
    // Amounts and expiry come from the entry and the default window.
    let (bad,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM orders WHERE amount_cents <> 100 OR quantity <> 1 \
         OR TIMESTAMPDIFF(SECOND, reserved_at, expires_at) <> 900 OR status <> 'pending'",
    )
    .fetch_one(&env.pool)
    .await?;
    assert_eq!(bad, 0);
    Ok(())
}

/// `worker.max_orders_per_sec` holds: a backlog of 1,000 reaches MySQL no faster than one
/// batch plus the rate allows, and all of it arrives, each reservation once. (Only an upper
/// bound on progress is checked: a slow machine makes the drain slower, never faster.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_drain_keeps_its_pace_and_loses_nothing() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    for a in 1..=4 {
        create_activity(&mut conn, a, 1_000).await?;
        reserve_many(&mut conn, a, (0..250).map(|u| format!("u{u}"))).await?;
    }
    let mut s = env.settings();
    s.worker.batch_size = 100;
    s.worker.max_orders_per_sec = 400;
    let started = std::time::Instant::now();
    let (stop, handle) = env.spawn_worker(s).await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let early = env.order_count().await?;
    let elapsed = started.elapsed().as_secs_f64();
    // Admitted by then: the bucket (one batch, 100) plus 400/s; a batch is admitted whole
    // before its insert, so inserted rows never exceed admitted ones.
    let most = 100.0 + 400.0 * elapsed;
    assert!(
        (early as f64) <= most,
        "{early} orders after {elapsed:.2} s: the cap of 400/s allows at most {most:.0}"
    );
    env.wait_drained(1_000, Duration::from_secs(60)).await?;
    stop.cancel();
    handle.await??;
    assert_eq!(
        order_ids(&env.pool).await?,
        stream_ids(&mut conn, 1..=4).await?
    );
    Ok(())
}

/// `worker.lift_pace_when_idle`: the cap holds while reservations arrive, and once they
/// stop the backlog goes in at full speed (paced it would take ~18 s), each reservation once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pace_lifted_when_idle_holds_during_the_sale_then_drains_the_backlog(
) -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    for a in 1..=4 {
        create_activity(&mut conn, a, 1_000).await?;
    }
    let mut s = env.settings();
    s.worker.batch_size = 100;
    s.worker.max_orders_per_sec = 100;
    s.worker.lift_pace_when_idle = true;
    s.worker.lag_interval_ms = 200;
    let started = std::time::Instant::now();
    let (stop, handle) = env.spawn_worker(s).await?;
    // The sale: 2,000 reservations over ~1 s, 20x the pace.
    for round in 0..10 {
        for a in 1..=4 {
            reserve_many(&mut conn, a, (0..50).map(|u| format!("r{round}u{u}"))).await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = env.order_count().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let most = 100.0 + 100.0 * elapsed;
    assert!(
        (during as f64) <= most,
        "{during} orders after {elapsed:.2} s of arrivals: the cap of 100/s allows at most {most:.0}"
    );
    // No more arrivals: lifted within two lag polls, the rest (~1,850) in well under the
    // ~18 s the pace would take.
    env.wait_drained(2_000, Duration::from_secs(10)).await?;
    stop.cancel();
    handle.await??;
    assert_eq!(
        order_ids(&env.pool).await?,
        stream_ids(&mut conn, 1..=4).await?
    );
    Ok(())
}

/// Batches (as the worker's `batch_size` histogram counts them) of more than 50 entries.
fn batches_over_50(metrics: &seckill_worker::metrics::Metrics) -> u64 {
    let m = prometheus::core::Metric::metric(&metrics.batch_size);
    let h = m.get_histogram();
    let upto_50 = h
        .get_bucket()
        .iter()
        .find(|b| b.upper_bound() == 50.0)
        .map_or(0, |b| b.cumulative_count());
    h.get_sample_count() - upto_50
}

/// `worker.batch_size` for a backlog, `batch_size_while_arriving` while reservations arrive
/// (each read holds Redis' one thread while the sale's reservations wait), full size again
/// once they stop. The worker is kept behind during the arrivals by its pace, so its reads
/// could be full-size if nothing held them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_smaller_while_reservations_arrive() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    for a in 1..=4 {
        create_activity(&mut conn, a, 100_000).await?;
    }
    for a in 1..=4 {
        reserve_many(&mut conn, a, (0..500).map(|u| format!("backlog{u}"))).await?;
    }
    let mut s = env.settings();
    s.worker.batch_size = 500;
    s.worker.batch_size_while_arriving = 50;
    s.worker.max_orders_per_sec = 1_000;
    s.worker.lift_pace_when_idle = true;
    // Arrivals every 50 ms, polls every 250: a poll always sees a stream grow during them.
    s.worker.lag_interval_ms = 250;
    let worker = seckill_worker::Worker::build(s).await?;
    let metrics = worker.metrics();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));

    // A backlog and nothing arriving: full batches.
    env.wait_drained(2_000, Duration::from_secs(30)).await?;
    let backlog = batches_over_50(&metrics);
    assert!(backlog > 0, "the backlog was read in batches of at most 50");

    // The sale: 8,000 reservations/s for 3 s, 8x the pace, so a backlog builds up. After
    // 1.5 s (several lag polls; a batch read before the first of them has been written by
    // then) no batch is larger than 50.
    let arrivals_started = std::time::Instant::now();
    let mut during = None;
    let mut round = 0;
    while arrivals_started.elapsed() < Duration::from_secs(3) {
        for a in 1..=4 {
            reserve_many(&mut conn, a, (0..100).map(|u| format!("r{round}u{u}"))).await?;
        }
        round += 1;
        if during.is_none() && arrivals_started.elapsed() >= Duration::from_millis(1_500) {
            during = Some(batches_over_50(&metrics));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = during.expect("arrivals lasted over 1.5 s");
    assert_eq!(
        batches_over_50(&metrics),
        during,
        "batches of more than 50 entries were read while reservations arrived"
    );

    // Arrivals stop: the rest of the backlog goes in full batches again.
    let total = 2_000 + round * 400;
    env.wait_drained(total as i64, Duration::from_secs(60))
        .await?;
    assert!(
        batches_over_50(&metrics) > during,
        "the backlog left after the sale was read in batches of at most 50"
    );
    stop.cancel();
    handle.await??;
    assert_eq!(
        order_ids(&env.pool).await?,
        stream_ids(&mut conn, 1..=4).await?
    );
    Ok(())
}

/// A sale that starts while the pace is lifted (nothing arrived for a poll) holds the pace
/// and reads small batches from its first reservations, not from the next lag poll: a flash
/// sale's stock can be gone within one poll interval, and the worker would have drained all
/// of it unpaced, in full batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_is_noticed_at_its_first_reservations_not_the_next_poll() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    // One stream: XREADGROUP's COUNT is per stream, so a read's size is its COUNT.
    create_activity(&mut conn, 1, 100_000).await?;
    let mut s = env.settings();
    s.worker.batch_size = 400;
    s.worker.batch_size_while_arriving = 50;
    s.worker.max_orders_per_sec = 400;
    s.worker.lift_pace_when_idle = true;
    // Polls at start, +4 s, +8 s...: the sale below starts just after the +4 s one lifted
    // the pace and is checked well before the +8 s one.
    s.worker.lag_interval_ms = 4_000;
    let worker = seckill_worker::Worker::build(s).await?;
    let metrics = worker.metrics();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker.run_until_stopped(stop.clone()));
    let lifted = std::time::Instant::now();
    while metrics.pace_lifted.get() != 1 {
        anyhow::ensure!(
            lifted.elapsed() < Duration::from_secs(15),
            "the pace was not lifted with nothing arriving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The sale: 2,000 reservations at once, 5x the pace.
    let started = std::time::Instant::now();
    reserve_many(&mut conn, 1, (0..2_000).map(|u| format!("u{u}"))).await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (written, elapsed) = (env.order_count().await?, started.elapsed());
    assert!(
        elapsed < Duration::from_millis(2_500),
        "the check ran {elapsed:?} after the sale started: too late to tell the poll from the reads"
    );
    assert_eq!(
        metrics.pace_lifted.get(),
        0,
        "the pace is still lifted during the sale"
    );
    // Admitted by then: the bucket (400) plus 400/s, and a read in flight (at most 400).
    // Lifted, the worker would have written all 2,000.
    let most = 400.0 + 400.0 * elapsed.as_secs_f64() + 400.0;
    assert!(
        (written as f64) <= most,
        "{written} orders {elapsed:?} into the sale: the pace of 400/s allows at most {most:.0}"
    );
    // Each of the two consumers may have read once before it saw the sale's first entries.
    let large = batches_over_50(&metrics);
    assert!(
        large <= 2,
        "{large} batches of more than 50 entries were read during the sale"
    );

    // Arrivals stop: two polls later the rest goes in at full speed.
    env.wait_drained(2_000, Duration::from_secs(60)).await?;
    stop.cancel();
    handle.await??;
    assert_eq!(
        order_ids(&env.pool).await?,
        stream_ids(&mut conn, 1..=1).await?
    );
    Ok(())
}

/// A malformed entry lands in the dead-letter stream with its reason; the rest flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entry_is_dead_lettered_and_the_rest_flows() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 5, 100).await?;
    reserve_many(&mut conn, 5, (0..10).map(|u| format!("a{u}"))).await?;
    let poison: String = redis::cmd("XADD")
        .arg(keys::stream(&act(5)))
        .arg("*")
        .arg("activity")
        .arg("5")
        .arg("user")
        .arg("not a user")
        .arg("qty")
        .arg("many")
        .query_async(&mut conn)
        .await?;
    reserve_many(&mut conn, 5, (0..10).map(|u| format!("b{u}"))).await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    env.wait_drained(20, Duration::from_secs(30)).await?;
    let dead =
        seckill_client::streams::read_stream(&mut conn, &keys::dead_letters(&act(5))).await?;
    assert_eq!(dead.len(), 1);
    let field = |name: &str| {
        dead[0]
            .1
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(field("reservation").as_deref(), Some(poison.as_str()));
    assert_eq!(field("kind").as_deref(), Some("malformed"));
    assert!(field("reason").unwrap_or_default().contains("malformed"));
    assert_eq!(field("entry.user").as_deref(), Some("not a user"));
    // Never written by RESERVE: it held no stock, so none is returned for it.
    assert_eq!(field("stock").as_deref(), Some("none"));
    assert_eq!(support::status(&mut conn, &act(5)).await?["remaining"], 80);
    let report =
        seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(5), "seckill-orders").await?;
    assert!(report.is_clean(), "{:?}", report.drift);
    stop.cancel();
    h.await??;
    Ok(())
}

/// A row that INSERT IGNORE skips because the user already holds another live order is not
/// lost silently: it goes to the dead-letter stream as `rejected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_user_conflict_is_dead_lettered_not_swallowed() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 9, 100).await?;
    sqlx::query(
        "INSERT INTO orders (reservation_id, activity_id, product_id, user_id, quantity, \
         amount_cents, reserved_at, expires_at) VALUES ('1-1', 9, 'p1', 'dup', 1, 100, NOW(3), NOW(3))",
    )
    .execute(&env.pool)
    .await?;
    reserve_many(
        &mut conn,
        9,
        ["dup".to_string(), "ok1".into(), "ok2".into()],
    )
    .await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    env.wait_drained(3, Duration::from_secs(30)).await?;
    let dead = seckill_client::streams::dead_letters(&mut conn, &act(9)).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].kind, "rejected");
    // It will never be an order, so its unit went back (before the ack) and `dup` may buy
    // again; the dead letter says so.
    assert_eq!(dead[0].stock.as_deref(), Some("released"));
    let st = support::status(&mut conn, &act(9)).await?;
    assert_eq!((st["remaining"], st["buyers"]), (98, 2));
    let released: bool = redis::cmd("HEXISTS")
        .arg(keys::released(&act(9)))
        .arg(&dead[0].reservation)
        .query_async(&mut conn)
        .await?;
    assert!(released);
    stop.cancel();
    h.await??;
    Ok(())
}

/// The dead-letter write of a refused row fails after the batch was committed (here the
/// dead-letter key holds a string): the batch is retried, and once the write can succeed
/// the refused row still reaches the dead-letter stream instead of being acked unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_row_is_dead_lettered_when_the_batch_is_retried_after_commit() -> anyhow::Result<()>
{
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 8, 100).await?;
    sqlx::query(
        "INSERT INTO orders (reservation_id, activity_id, product_id, user_id, quantity, \
         amount_cents, reserved_at, expires_at) VALUES ('1-1', 8, 'p1', 'dup', 1, 100, NOW(3), NOW(3))",
    )
    .execute(&env.pool)
    .await?;
    let dead_key = keys::dead_letters(&act(8));
    let _: () = redis::cmd("SET")
        .arg(&dead_key)
        .arg("not a stream")
        .query_async(&mut conn)
        .await?;
    reserve_many(&mut conn, 8, ["dup".to_string(), "ok1".into()]).await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    // ok1 is committed; dup's dead-letter write keeps failing.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while env.order_count().await? < 2 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "ok1 never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Not dead-lettered yet, so not acked either: a crash now must not lose it.
    let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(keys::stream(&act(8)))
        .arg("seckill-orders")
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        pending.0, 2,
        "the batch (ok1 and the refused dup) is still pending"
    );
    let _: i64 = redis::cmd("DEL")
        .arg(&dead_key)
        .query_async(&mut conn)
        .await?;
    env.wait_drained(2, Duration::from_secs(30)).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = seckill_client::streams::read_stream(&mut conn, &dead_key)
            .await
            .unwrap_or_default();
        if !dead.is_empty() || std::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        dead.len(),
        1,
        "the refused row reached the dead-letter stream"
    );
    assert!(dead[0]
        .1
        .iter()
        .any(|(k, v)| k == b"kind" && v == b"rejected"));
    stop.cancel();
    h.await??;
    Ok(())
}

/// An entry whose delivery count is over the limit (a consumer crashed on it each time) is
/// taken over from the idle consumer and dead-lettered instead of retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_delivered_too_often_is_dead_lettered() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 3, 100).await?;
    let key = keys::stream(&act(3));
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("seckill-orders")
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut conn)
        .await?;
    let rids = reserve_many(&mut conn, 3, ["x".to_string(), "y".into()]).await?;
    // A ghost consumer reads both, then "crashes"; the first was delivered 10 times.
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("seckill-orders")
        .arg("ghost")
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async::<redis::Value>(&mut conn)
        .await?;
    redis::cmd("XCLAIM")
        .arg(&key)
        .arg("seckill-orders")
        .arg("ghost")
        .arg(0)
        .arg(&rids[0])
        .arg("RETRYCOUNT")
        .arg(10)
        .query_async::<redis::Value>(&mut conn)
        .await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    env.wait_drained(1, Duration::from_secs(30)).await?;
    let dead = seckill_client::streams::dead_letters(&mut conn, &act(3)).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].kind, "deliveries");
    assert_eq!(order_ids(&env.pool).await?, vec![(3, rids[1].clone())]);
    // Its stock is back: 100 - 2 reserved + 1 released.
    assert_eq!(dead[0].stock.as_deref(), Some("released"));
    assert_eq!(support::status(&mut conn, &act(3)).await?["remaining"], 99);
    let report =
        seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(3), "seckill-orders").await?;
    assert!(report.is_clean(), "{:?}", report.drift);
    stop.cancel();
    h.await??;
    Ok(())
}

/// An entry delivered too often whose order row was committed before the crashes (commit,
/// then no ack) is done, not lost: it is acked without a dead letter, and its stock is not
/// released from under the live order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_delivered_too_often_but_already_an_order_is_just_acked() -> anyhow::Result<()> {
    let env = env().await?;
    let mut conn = env.conn().await?;
    create_activity(&mut conn, 4, 100).await?;
    let key = keys::stream(&act(4));
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("seckill-orders")
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut conn)
        .await?;
    let rids = reserve_many(&mut conn, 4, ["x".to_string()]).await?;
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("seckill-orders")
        .arg("ghost")
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async::<redis::Value>(&mut conn)
        .await?;
    redis::cmd("XCLAIM")
        .arg(&key)
        .arg("seckill-orders")
        .arg("ghost")
        .arg(0)
        .arg(&rids[0])
        .arg("RETRYCOUNT")
        .arg(10)
        .query_async::<redis::Value>(&mut conn)
        .await?;
    // The ghost had committed the order before it kept crashing.
    sqlx::query(
        "INSERT INTO orders (reservation_id, activity_id, product_id, user_id, quantity, \
         amount_cents, reserved_at, expires_at) VALUES (?, 4, 'p1', 'x', 1, 100, NOW(3), \
         NOW(3) + INTERVAL 15 MINUTE)",
    )
    .bind(&rids[0])
    .execute(&env.pool)
    .await?;
    let (stop, h) = env.spawn_worker(env.settings()).await?;
    env.wait_drained(1, Duration::from_secs(30)).await?;
    assert!(seckill_client::streams::dead_letters(&mut conn, &act(4))
        .await?
        .is_empty());
    assert_eq!(support::status(&mut conn, &act(4)).await?["remaining"], 99);
    let report =
        seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(4), "seckill-orders").await?;
    assert!(report.is_clean(), "{:?}", report.drift);
    stop.cancel();
    h.await??;
    Ok(())
}

/// Migrations go up, down and up again on an empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_up_down_up() -> anyhow::Result<()> {
    let db = seckill_testkit::mariadb::shared()?;
    let url = db.create_database()?;
    let pool = seckill_db::pool::connect_lazy(&url, 2, Duration::from_secs(5))?;
    let tables = || async {
        let v: Vec<(String,)> = sqlx::query_as(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_name <> '_sqlx_migrations' ORDER BY table_name",
        )
        .fetch_all(&pool)
        .await?;
        anyhow::Ok(v.into_iter().map(|t| t.0).collect::<Vec<_>>())
    };
    seckill_db::pool::migrate(&pool).await?;
    assert_eq!(
        tables().await?,
        ["activities", "orders", "products", "users"]
    );
    let backoff_columns = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = 'orders' AND column_name IN \
             ('release_attempts', 'release_error', 'next_release_at')",
        )
        .fetch_one(&pool)
        .await?;
        anyhow::Ok(n)
    };
    assert_eq!(backoff_columns().await?, 3);
    // Down one step: the release backoff columns go, the orders table stays.
    let last = seckill_db::pool::MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v < 20261201000001)
        .max()
        .unwrap_or(0);
    seckill_db::pool::rollback(&pool, last).await?;
    assert_eq!(backoff_columns().await?, 0);
    seckill_db::pool::migrate(&pool).await?;
    assert_eq!(backoff_columns().await?, 3);
    seckill_db::pool::rollback(&pool, 0).await?;
    assert!(tables().await?.is_empty());
    seckill_db::pool::migrate(&pool).await?;
    assert_eq!(
        tables().await?,
        ["activities", "orders", "products", "users"]
    );
    Ok(())
}
