//! Bounded Redis memory: once a sale's reservations are final in MySQL (paid, or
//! cancelled/expired and released), the sweeper's leader trims them from the stream, so a
//! sold-out activity keeps only its in-flight entries; the audit stays clean across the trim
//! point. Also measures what stays in Redis per sold unit and per refused click.

mod support;

use seckill_core::keys;
use seckill_db::orders;
use seckill_worker::config::SweeperSettings;
use seckill_worker::{sweeper, trim};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::*;

const SALE: u64 = 1;
const SOLD: usize = 100_000;
/// The newest reservations stay pending (not final): the stream must keep exactly these.
const IN_FLIGHT: usize = 10;

fn memory_usage(con: &mut redis::Connection, key: &str) -> anyhow::Result<u64> {
    let v: Option<u64> = redis::cmd("MEMORY")
        .arg(&["USAGE", key, "SAMPLES", "0"])
        .query(con)?;
    Ok(v.unwrap_or(0))
}

/// `MEMORY USAGE` of every key of an activity.
fn activity_memory(
    con: &mut redis::Connection,
    activity: u64,
) -> anyhow::Result<BTreeMap<&'static str, u64>> {
    let a = act(activity);
    [
        ("record", keys::meta(&a)),
        ("stream", keys::stream(&a)),
        ("buyers", keys::buyers(&a)),
        ("released", keys::released(&a)),
    ]
    .into_iter()
    .map(|(name, key)| Ok((name, memory_usage(con, &key)?)))
    .collect()
}

/// DUMP of every key of an activity (a refused click must change none of them).
fn dump_activity(con: &mut redis::Connection, activity: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let a = act(activity);
    [
        keys::meta(&a),
        keys::stream(&a),
        keys::buyers(&a),
        keys::released(&a),
        keys::dead_letters(&a),
    ]
    .iter()
    .map(|k| {
        Ok(redis::cmd("DUMP")
            .arg(k)
            .query::<Option<Vec<u8>>>(con)?
            .unwrap_or_default())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_reservations_are_trimmed_and_the_audit_stays_clean() -> anyhow::Result<()> {
    let started = Instant::now();
    let env = env().await?;
    let mut conn = env.conn().await?;
    let mut sync = env.redis.connection()?;
    create_activity(&mut conn, SALE, SOLD as u64).await?;
    let mut acked = Vec::with_capacity(SOLD);
    for chunk in 0..(SOLD / 10_000) {
        let users = (0..10_000).map(|u| format!("u{}", chunk * 10_000 + u));
        acked.extend(reserve_many(&mut conn, SALE, users).await?);
    }
    let mut s = env.settings();
    s.worker.batch_size = 5_000;
    let (stop, h) = env.spawn_worker(s).await?;
    env.wait_drained(SOLD as i64, Duration::from_secs(60))
        .await?;
    stop.cancel();
    h.await??;
    let before = activity_memory(&mut sync, SALE)?;

    // Every reservation but the newest IN_FLIGHT reaches a final state: 10,000 paid through
    // the state machine, 50,000 more paid in bulk (the same end state, faster), 2,000
    // cancelled by their buyers (cancel + release), the rest expired and released by the
    // sweeper.
    let ids: Vec<(u64, String)> = sqlx::query_as("SELECT id, reservation_id FROM orders")
        .fetch_all(&env.pool)
        .await?;
    let by_rid: std::collections::HashMap<&str, u64> =
        ids.iter().map(|(id, rid)| (rid.as_str(), *id)).collect();
    let order = |i: usize| by_rid[acked[i].as_str()];
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let pool = env.pool.clone();
        let mine: Vec<u64> = (0..10_000).filter(|i| i % 8 == t).map(order).collect();
        tasks.spawn(async move {
            for id in mine {
                anyhow::ensure!(orders::pay(&pool, id, None).await?, "order {id} not paid");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let bulk: Vec<String> = (10_000..60_000).map(|i| order(i).to_string()).collect();
    for chunk in bulk.chunks(10_000) {
        sqlx::query(&format!(
            "UPDATE orders SET status = 'paid', paid_at = NOW(3) WHERE id IN ({})",
            chunk.join(",")
        ))
        .execute(&env.pool)
        .await?;
    }
    for (i, rid) in acked.iter().enumerate().take(62_000).skip(60_000) {
        let (id, user) = (order(i), format!("u{i}"));
        anyhow::ensure!(orders::cancel(&env.pool, id, &user).await?);
        let unreleased = orders::Unreleased {
            id,
            activity_id: SALE,
            reservation_id: rid.clone(),
        };
        let redis = conn.clone();
        orders::release(&env.pool, &unreleased, |a, rid| async move {
            let mut redis = redis;
            seckill_client::sale::release(&mut redis, &a, &rid).await
        })
        .await?;
    }
    let expiring: Vec<String> = (62_000..SOLD - IN_FLIGHT)
        .map(|i| order(i).to_string())
        .collect();
    for chunk in expiring.chunks(10_000) {
        sqlx::query(&format!(
            "UPDATE orders SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE id IN ({})",
            chunk.join(",")
        ))
        .execute(&env.pool)
        .await?;
    }
    let sw = SweeperSettings {
        batch: 10_000,
        ..SweeperSettings::default()
    };
    loop {
        let pass = sweeper::sweep_once(&env.pool, &mut conn, &sw, None).await?;
        anyhow::ensure!(pass.errors == 0, "{pass:?}");
        if pass.expired + pass.released == 0 {
            break;
        }
    }

    // The leader's trim passes (each checks at most trim_scan_limit entries).
    let mut passes = 0;
    let mut removed = 0;
    loop {
        let n = trim::trim_all(
            &env.pool,
            &mut conn,
            "seckill-orders",
            sw.trim_scan_limit,
            None,
        )
        .await?;
        if n == 0 {
            break;
        }
        removed += n;
        passes += 1;
        anyhow::ensure!(passes <= 3, "trimming does not converge");
    }
    assert_eq!(removed as usize, SOLD - IN_FLIGHT);
    let left = stream_ids(&mut conn, [SALE]).await?;
    // Both sides sorted the same way (`stream_ids` sorts its strings): ids like `...-99` and
    // `...-100` order differently as text and as stream ids.
    let mut newest: Vec<(u64, String)> = acked[SOLD - IN_FLIGHT..]
        .iter()
        .map(|r| (SALE, r.clone()))
        .collect();
    newest.sort();
    assert_eq!(
        left, newest,
        "the stream keeps exactly the in-flight entries"
    );
    let status = seckill_client::sale::status(&mut conn, &act(SALE))
        .await?
        .ok_or_else(|| anyhow::anyhow!("activity gone"))?;
    assert_eq!(
        status.trimmed_below.to_string(),
        acked[SOLD - IN_FLIGHT],
        "trimmed up to the first entry that is not final"
    );
    let report =
        seckill_db::audit::audit_activity(&mut conn, &env.pool, &act(SALE), "seckill-orders")
            .await?;
    assert!(
        report.is_clean(),
        "{:?}",
        &report.drift[..report.drift.len().min(10)]
    );
    // A release of a trimmed reservation changes nothing.
    assert_eq!(
        seckill_client::sale::release(&mut conn, &act(SALE), &acked[62_000]).await?,
        0
    );
    let after = activity_memory(&mut sync, SALE)?;
    assert!(
        after["stream"] * 100 < before["stream"],
        "stream {} -> {} bytes",
        before["stream"],
        after["stream"]
    );

    // Refused clicks write nothing: 10,000 SOLDOUT on a sold-out activity, and 10,000
    // LIMIT from buyers who already hold their unit.
    create_activity(&mut conn, 2, 10).await?;
    reserve_many(&mut conn, 2, (0..10).map(|u| format!("v{u}"))).await?;
    let (dump1, dump2) = (
        dump_activity(&mut sync, SALE)?,
        dump_activity(&mut sync, 2)?,
    );
    let mut pipe = redis::pipe();
    for u in 0..10_000 {
        pipe.cmd("SECKILL.RESERVE")
            .arg(2)
            .arg(format!("late{u}"))
            .arg(1);
        pipe.cmd("SECKILL.RESERVE")
            .arg(SALE)
            .arg(format!("u{u}"))
            .arg(1);
    }
    // Sent raw so each refusal comes back as its own error value.
    let replies =
        redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, 20_000).await?;
    let refused = replies
        .iter()
        .filter(|v| matches!(v, redis::Value::ServerError(_)))
        .count();
    assert_eq!(refused, 20_000, "every click was refused");
    assert_eq!(
        dump_activity(&mut sync, SALE)?,
        dump1,
        "a LIMIT refusal wrote something"
    );
    assert_eq!(
        dump_activity(&mut sync, 2)?,
        dump2,
        "a SOLDOUT refusal wrote something"
    );

    let sold_kept = (SOLD - IN_FLIGHT) as u64 - 2_000 - (SOLD as u64 - IN_FLIGHT as u64 - 62_000);
    eprintln!(
        "memory (MEMORY USAGE, bytes) before trim {before:?}, after {after:?}; \
         {sold_kept} units still sold (paid) + {IN_FLIGHT} in flight: {:.1} B per sold unit \
         (stream + buyers + released), 0 B per refused click; test took {:?}",
        (after["stream"] + after["buyers"] + after["released"]) as f64
            / (sold_kept + IN_FLIGHT as u64) as f64,
        started.elapsed()
    );
    Ok(())
}
