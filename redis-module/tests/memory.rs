//! Memory: at `maxmemory` with `noeviction` every write command is refused whole (Redis'
//! `OOM` error, nothing half-written), and `SECKILL.TRIM` gives back the memory of final
//! reservations.

mod support;

use seckill_testkit::RedisServer;
use std::collections::BTreeMap;
use support::*;

fn info_number(con: &mut redis::Connection, section: &str, field: &str) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg(section).query(con)?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO {section} has no {field}"))
}

fn memory_usage(con: &mut redis::Connection, key: &str) -> anyhow::Result<u64> {
    let v: Option<u64> = redis::cmd("MEMORY")
        .arg(&["USAGE", key, "SAMPLES", "0"])
        .query(con)?;
    Ok(v.unwrap_or(0))
}

/// DUMP of every key of one activity.
fn dump_activity(con: &mut redis::Connection, activity: &str) -> BTreeMap<String, Vec<u8>> {
    dump_all(con)
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("seckill:{{{activity}}}")))
        .collect()
}

#[test]
fn at_maxmemory_writes_are_refused_whole() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "oom", &["STOCK", "1000000"])?;
    let mut acked = Vec::new();
    for u in 0..5 {
        acked.push(reserve(&mut con, "oom", &format!("early{u}"), "1")?.0);
    }
    let used = info_number(&mut con, "memory", "used_memory")?;
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query::<()>(&mut con)?;
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", &(used + 256 * 1024).to_string()])
        .query::<()>(&mut con)?;

    // Reserve until Redis refuses: the refusal is OOM, never a partial reservation.
    let mut refused = None;
    for u in 0..1_000_000 {
        let user = format!("u{u}");
        let before = dump_activity(&mut con, "oom");
        match reserve(&mut con, "oom", &user, "1") {
            Ok((rid, _)) => acked.push(rid),
            Err(e) => {
                assert_eq!(code(&e), "OOM", "{e}");
                assert_eq!(
                    dump_activity(&mut con, "oom"),
                    before,
                    "a refused RESERVE wrote"
                );
                refused = Some(user);
                break;
            }
        }
    }
    let refused = refused.ok_or_else(|| anyhow::anyhow!("maxmemory never reached"))?;
    assert!(acked.len() > 100, "only {} reservations fit", acked.len());
    eprintln!(
        "{} reservations fit in 256 KiB above the start",
        acked.len()
    );

    // Every write command is refused the same way, and changes nothing. The limit is moved
    // well below the usage first: right at the boundary, a few bytes freed elsewhere (a
    // client buffer shrinking) could let a command through and make this test flaky.
    let used = info_number(&mut con, "memory", "used_memory")?;
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", &(used / 2).to_string()])
        .query::<()>(&mut con)?;
    let cases: Vec<Vec<&str>> = vec![
        vec!["SECKILL.RESERVE", "oom", refused.as_str(), "1"],
        vec!["SECKILL.CREATE", "oom2", "STOCK", "5"],
        vec!["SECKILL.RELEASE", "oom", acked[0].as_str()],
        vec!["SECKILL.TRIM", "oom", acked[3].as_str()],
    ];
    for args in cases {
        let before = dump_all(&mut con);
        let err = redis::cmd(args[0])
            .arg(&args[1..])
            .query::<redis::Value>(&mut con)
            .expect_err(args[0]);
        assert_eq!(code(&err), "OOM", "{args:?}: {err}");
        assert_eq!(dump_all(&mut con), before, "{args:?} wrote at maxmemory");
    }
    // Reads still work.
    let st = status(&mut con, "oom")?;

    // Every acknowledged reservation is whole: entry, buyer, counters.
    let snap = snapshot(&mut con, "oom");
    let ids: Vec<&String> = snap.stream.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, acked.iter().collect::<Vec<_>>());
    assert_eq!(snap.buyers.len(), acked.len());
    assert_eq!(st["reservations"], acked.len().to_string());
    let remaining: u64 = st["remaining"].parse()?;
    assert_eq!(remaining + snap.live_qty("0-0"), 1_000_000);

    // With room again, the same commands succeed.
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .query::<()>(&mut con)?;
    reserve(&mut con, "oom", &refused, "1")?;
    assert_eq!(release(&mut con, "oom", &acked[0])?, 1);
    assert_eq!(trim(&mut con, "oom", &acked[3])?, 3);
    Ok(())
}

/// A sold-out sale of 100,000 reservations, one in ten released, trimmed to its last ten
/// entries. Prints the numbers for the README (`cargo nextest run --no-capture`).
#[test]
fn trim_gives_back_the_memory_of_final_reservations() -> anyhow::Result<()> {
    const SOLD: usize = 100_000;
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(
        &mut con,
        "big",
        &[
            "STOCK",
            &SOLD.to_string(),
            "PRODUCT",
            "sku-1",
            "PRICE",
            "1999",
        ],
    )?;
    let mut rids: Vec<String> = Vec::with_capacity(SOLD);
    for batch in (0..SOLD).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for u in batch {
            pipe.cmd("SECKILL.RESERVE")
                .arg("big")
                .arg(format!("user-{u:06}"))
                .arg(1);
        }
        let replies: Vec<(String, i64)> = pipe.query(&mut con)?;
        rids.extend(replies.into_iter().map(|(rid, _)| rid));
    }
    let mut pipe = redis::pipe();
    for rid in rids.iter().step_by(10) {
        pipe.cmd("SECKILL.RELEASE").arg("big").arg(rid);
    }
    let _: Vec<i64> = pipe.query(&mut con)?;
    let released = SOLD / 10;

    let keys = ["stream", "released", "buyers"].map(|k| format!("seckill:{{big}}:{k}"));
    let measure = |con: &mut redis::Connection| -> anyhow::Result<Vec<u64>> {
        keys.iter().map(|k| memory_usage(con, k)).collect()
    };
    let before = measure(&mut con)?;
    let min_id = &rids[SOLD - 10];
    assert_eq!(trim(&mut con, "big", min_id)?, (SOLD - 10) as i64);
    let after = measure(&mut con)?;
    let record = memory_usage(&mut con, "seckill:{big}")?;
    let snap = snapshot(&mut con, "big");
    assert_eq!(snap.stream.len(), 10);
    // Of the last ten, only the one at SOLD - 10 was released (every tenth).
    assert_eq!(snap.released.len(), 1);
    let live = SOLD - released;
    assert_eq!(snap.buyers.len(), live);

    let per_unit = (after[2] as f64 + record as f64) / live as f64;
    eprintln!(
        "TRIM memory, {SOLD} reservations ({released} released), trimmed to the last 10:\n\
         stream:   {} -> {} bytes\n\
         released: {} -> {} bytes\n\
         buyers ({live} entries): {} bytes; record {record} bytes\n\
         kept per sold unit (buyers entry + record share): {per_unit:.1} bytes",
        before[0], after[0], before[1], after[1], after[2]
    );
    assert!(
        after[0] * 100 < before[0],
        "stream {} -> {}",
        before[0],
        after[0]
    );
    // A large hash shrinks its table incrementally, so some empty buckets remain for a while.
    assert!(
        after[1] * 20 < before[1],
        "released {} -> {}",
        before[1],
        after[1]
    );
    Ok(())
}
