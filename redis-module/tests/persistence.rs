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

/// The 136-byte record layout written by earlier modules (see `core/src/record.rs`).
fn v1_record(total: u64, end_ms: u64) -> Vec<u8> {
    let mut b = b"SKL1\0\0\0\0".to_vec();
    for v in [total, total, 1, 0, end_ms, 100, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.resize(136, 0);
    b
}

/// Every command whose effects a replay must reproduce, after the window closed too:
/// reservations (two inside one MULTI), a release during the window, releases after it
/// ended, trims, a re-create over the ended activity with a sale in it, a release of an old
/// sale's reservation (no-op), and the upgrade of a first-layout record by a trim. Returns
/// the activities to compare.
fn run_lifecycle(con: &mut redis::Connection, activity: &str) -> anyhow::Result<Vec<String>> {
    let end = now_ms() + 1_000;
    create(
        con,
        activity,
        &[
            "STOCK",
            "30",
            "LIMIT",
            "2",
            "END",
            &end.to_string(),
            "PRODUCT",
            "p",
            "PRICE",
            "500",
        ],
    )?;
    let mut rids = Vec::new();
    for u in 0..8 {
        let qty = if u % 3 == 0 { "2" } else { "1" };
        rids.push(reserve(con, activity, &format!("u{u}"), qty)?.0);
    }
    let ((a, _), (b, _)): ((String, i64), (String, i64)) = redis::pipe()
        .atomic()
        .cmd("SECKILL.RESERVE")
        .arg(&[activity, "m1", "1"])
        .cmd("SECKILL.RESERVE")
        .arg(&[activity, "m2", "2"])
        .query(con)?;
    rids.extend([a, b]);
    assert_eq!(release(con, activity, &rids[1])?, 1);
    while now_ms() <= end + 50 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status(con, activity)?["state"], "ended");

    // After the window: the worker's expiry releases, and trims what is final.
    assert_eq!(release(con, activity, &rids[2])?, 1);
    let (released, trimmed): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("SECKILL.RELEASE")
        .arg(&[activity, rids[6].as_str()])
        .cmd("SECKILL.TRIM")
        .arg(&[activity, rids[4].as_str()])
        .query(con)?;
    assert_eq!((released, trimmed), (2, 4));

    // The id is re-used for a new sale; old reservations cannot leak into it.
    create(con, activity, &["STOCK", "5", "PRICE", "700"])?;
    let (n1, _) = reserve(con, activity, "u0", "1")?;
    reserve(con, activity, "n2", "1")?;
    assert_eq!(release(con, activity, &rids[5])?, 0);
    assert_eq!(release(con, activity, &n1)?, 1);
    assert_eq!(trim(con, activity, &rids[8])?, 4);
    assert_eq!(status(con, activity)?["remaining"], "4");

    // A record of the first layout, upgraded by a trim.
    let old = format!("{activity}-v1");
    redis::cmd("SET")
        .arg(format!("seckill:{{{old}}}"))
        .arg(v1_record(9, 0))
        .query::<()>(con)?;
    let first = reserve(con, &old, "x", "1")?.0;
    let second = reserve(con, &old, "y", "1")?.0;
    assert_eq!(release(con, &old, &first)?, 1);
    assert_eq!(trim(con, &old, &second)?, 1);
    Ok(vec![activity.to_owned(), old])
}

/// Polls until `con` holds `want` for every activity (a replica of a replica has no WAIT).
fn wait_until_equal(
    con: &mut redis::Connection,
    activities: &[String],
    want: &[Snapshot],
    who: &str,
) {
    for _ in 0..100 {
        if activities
            .iter()
            .zip(want)
            .all(|(a, w)| snapshot(con, a) == *w)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (a, w) in activities.iter().zip(want) {
        assert_eq!(snapshot(con, a), *w, "{who} differs on {a}");
    }
}

#[test]
fn live_replicas_two_levels_deep_replay_release_recreate_and_trim() -> anyhow::Result<()> {
    let primary = RedisServer::start()?;
    let replica = RedisServer::start_with(RedisOptions {
        replica_of: Some(primary.port),
        ..Default::default()
    })?;
    let sub_replica = RedisServer::start_with(RedisOptions {
        replica_of: Some(replica.port),
        ..Default::default()
    })?;
    let mut p = primary.connection()?;
    let mut r1 = replica.connection()?;
    let mut r2 = sub_replica.connection()?;
    wait_for_sync(&mut r1);
    wait_for_sync(&mut r2);

    let activities = run_lifecycle(&mut p, "life")?;
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5_000).query(&mut p)?;
    assert_eq!(acked, 1);
    let want: Vec<Snapshot> = activities.iter().map(|a| snapshot(&mut p, a)).collect();
    assert!(want
        .iter()
        .all(|s| !s.stream.is_empty() && s.meta.is_some()));
    wait_until_equal(&mut r1, &activities, &want, "replica");
    wait_until_equal(&mut r2, &activities, &want, "replica of the replica");
    Ok(())
}

#[test]
fn aof_only_replay_of_release_recreate_and_trim_keeps_the_state() -> anyhow::Result<()> {
    let mut server = RedisServer::start_with(RedisOptions {
        appendfsync: Some("always"),
        ..Default::default()
    })?;
    let mut con = server.connection()?;
    // Rewrite the (empty) base as an AOF, not an RDB preamble, so the restart below replays
    // every effect command rather than loading a snapshot.
    redis::cmd("CONFIG")
        .arg(&["SET", "aof-use-rdb-preamble", "no"])
        .query::<()>(&mut con)?;
    redis::cmd("BGREWRITEAOF").query::<String>(&mut con)?;
    for _ in 0..200 {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut con)?;
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }

    let activities = run_lifecycle(&mut con, "aofl")?;
    let want: Vec<Snapshot> = activities.iter().map(|a| snapshot(&mut con, a)).collect();

    let aof_dir = server.dir().join("appendonlydir");
    let mut names = Vec::new();
    let mut incr = String::new();
    for entry in std::fs::read_dir(&aof_dir)? {
        let path = entry?.path();
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".incr.aof") {
            incr.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
        }
        names.push(name);
    }
    assert!(
        names.iter().any(|n| n.ends_with(".base.aof"))
            && !names.iter().any(|n| n.ends_with(".rdb")),
        "{names:?}"
    );
    let lower = incr.to_ascii_lowercase();
    for effect in [
        "seckill.apply",
        "seckill.trim",
        "seckill.hold",
        "multi",
        "del",
    ] {
        assert!(lower.contains(effect), "the AOF lacks {effect}: {incr}");
    }
    for command in ["seckill.reserve", "seckill.release", "seckill.create"] {
        assert!(
            !lower.contains(command),
            "the AOF re-runs {command}: {incr}"
        );
    }

    server.restart()?;
    let mut con = server.connection()?;
    for (a, w) in activities.iter().zip(&want) {
        assert_eq!(snapshot(&mut con, a), *w, "AOF replay differs on {a}");
    }

    // A rewrite without the preamble writes the buyer sets as SECKILL.HOLD commands (the
    // module type's AOF callback); replaying that base restores them too.
    redis::cmd("CONFIG")
        .arg(&["SET", "aof-use-rdb-preamble", "no"])
        .query::<()>(&mut con)?;
    redis::cmd("BGREWRITEAOF").query::<String>(&mut con)?;
    wait_rewrite(&mut con)?;
    let mut base = String::new();
    for entry in std::fs::read_dir(&aof_dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".base.aof") {
            base.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
        }
    }
    assert!(
        base.to_ascii_lowercase().contains("seckill.hold"),
        "the rewritten base has no buyers: {base}"
    );
    server.restart()?;
    let mut con = server.connection()?;
    for (a, w) in activities.iter().zip(&want) {
        assert_eq!(
            snapshot(&mut con, a),
            *w,
            "replay of the rewritten AOF differs on {a}"
        );
    }
    Ok(())
}

fn wait_rewrite(con: &mut redis::Connection) -> anyhow::Result<()> {
    for _ in 0..200 {
        let info: String = redis::cmd("INFO").arg("persistence").query(con)?;
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    anyhow::bail!("the AOF rewrite did not finish in 5 s")
}
