//! Invariants 5 and 6: replicas, RDB reloads and AOF replays done after the sale window
//! closed reproduce the same state and stream entries; with `appendfsync always` a SIGKILL
//! loses no acknowledged reservation.

mod support;

use seckill_testkit::{RedisOptions, RedisServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Runs a small sale whose window closes ~1.5 s from now, with reservations, refusals and a
/// release, then waits for the window to close.
fn run_sale_that_ends(con: &mut redis::Connection, activity: &str) -> anyhow::Result<()> {
    let end = now_ms() + 1_500;
    create(
        con,
        activity,
        &[
            "STOCK",
            "20",
            "LIMIT",
            "2",
            "END",
            &end.to_string(),
            "PRICE",
            "500",
        ],
    )?;
    let mut rids = Vec::new();
    for u in 0..25 {
        if let Ok((rid, _)) = reserve(
            con,
            activity,
            &format!("u{u}"),
            if u % 3 == 0 { "2" } else { "1" },
        ) {
            rids.push(rid);
        }
    }
    assert_eq!(release(con, activity, &rids[1])?, 1);
    while now_ms() <= end + 50 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = status(con, activity)?;
    assert_eq!(st["state"], "ended");
    Ok(())
}

fn wait_for_sync(replica: &mut redis::Connection) {
    for _ in 0..200 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(replica)
            .unwrap_or_default();
        if info.contains("master_link_status:up") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("replica never synced");
}

#[test]
fn replicas_hold_the_same_state_live_and_after_the_window_closed() -> anyhow::Result<()> {
    let primary = RedisServer::start()?;
    let live_replica = RedisServer::start_with(RedisOptions {
        replica_of: Some(primary.port),
        ..Default::default()
    })?;
    let mut p = primary.connection()?;
    let mut r1 = live_replica.connection()?;
    wait_for_sync(&mut r1);

    run_sale_that_ends(&mut p, "rep")?;
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5_000).query(&mut p)?;
    assert_eq!(acked, 1);
    let want = snapshot(&mut p, "rep");
    assert!(!want.stream.is_empty());
    assert_eq!(snapshot(&mut r1, "rep"), want, "live replica differs");

    // A replica that joins after the window closed gets the state by full sync.
    let late_replica = RedisServer::start_with(RedisOptions {
        replica_of: Some(primary.port),
        ..Default::default()
    })?;
    let mut r2 = late_replica.connection()?;
    wait_for_sync(&mut r2);
    assert_eq!(snapshot(&mut r2, "rep"), want, "late replica differs");
    Ok(())
}

#[test]
fn debug_reload_after_the_window_closed_keeps_the_state() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    run_sale_that_ends(&mut con, "rdb")?;
    let want = snapshot(&mut con, "rdb");
    redis::cmd("DEBUG").arg("RELOAD").query::<()>(&mut con)?;
    assert_eq!(snapshot(&mut con, "rdb"), want);
    Ok(())
}

#[test]
fn aof_replay_after_the_window_closed_keeps_the_state() -> anyhow::Result<()> {
    let mut server = RedisServer::start_with(RedisOptions {
        appendfsync: Some("always"),
        ..Default::default()
    })?;
    let mut con = server.connection()?;
    run_sale_that_ends(&mut con, "aof")?;
    let want = snapshot(&mut con, "aof");
    // The AOF holds effects, not SECKILL.RESERVE: replaying it cannot re-run the time check.
    let aof_dir = server.dir().join("appendonlydir");
    let mut aof = String::new();
    for entry in std::fs::read_dir(&aof_dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".incr.aof") {
            aof.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
        }
    }
    let lower = aof.to_ascii_lowercase();
    assert!(
        lower.contains("seckill.apply") && !lower.contains("seckill.reserve"),
        "{aof}"
    );
    server.restart()?;
    let mut con = server.connection()?;
    assert_eq!(snapshot(&mut con, "aof"), want);
    Ok(())
}

#[test]
fn sigkill_with_appendfsync_always_loses_no_acknowledged_reservation() -> anyhow::Result<()> {
    let mut server = RedisServer::start_with(RedisOptions {
        appendfsync: Some("always"),
        ..Default::default()
    })?;
    let mut con = server.connection()?;
    create(&mut con, "crash", &["STOCK", "1000000"])?;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let Ok(mut con) = redis::Client::open(url).and_then(|c| c.get_connection()) else {
                    return;
                };
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    match reserve(&mut con, "crash", &format!("w{w}-{i}"), "1") {
                        Ok((rid, _)) => acked.lock().expect("lock").push(rid),
                        Err(_) => return, // the server is gone
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let acked = acked
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    assert!(
        acked.len() > 50,
        "too few reservations before the kill: {}",
        acked.len()
    );

    server.restart()?;
    let mut con = server.connection()?;
    let snap = snapshot(&mut con, "crash");
    let ids: std::collections::HashSet<_> = snap.stream.iter().map(|(id, _)| id.clone()).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged reservations lost",
        lost.len()
    );
    // Counters agree with the stream: nothing half-applied survived.
    let st = status(&mut con, "crash")?;
    let remaining: usize = st["remaining"].parse()?;
    assert_eq!(remaining + snap.stream.len(), 1_000_000);
    assert_eq!(snap.buyers.len(), snap.stream.len());
    Ok(())
}
