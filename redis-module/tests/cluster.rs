//! The `KEYS` clause during a slot migration, on a real 2-primary Redis Cluster: with it a
//! half-moved activity is never written on either node (TRYAGAIN/ASK until it has moved);
//! without it Redis ASKs the command over to the importing node, which runs it on the part
//! of the activity that is there already (the split the clause prevents).

use seckill_testkit::{ClusterOptions, RedisCluster};

fn clause(a: &str) -> Vec<String> {
    let mut v = vec!["KEYS".to_owned()];
    for s in ["", ":buyers", ":stream", ":released"] {
        v.push(format!("seckill:{{{a}}}{s}"));
    }
    v
}

fn err_code(r: redis::RedisResult<redis::Value>) -> String {
    match r {
        Ok(v) => format!("OK {v:?}"),
        Err(e) => e.code().unwrap_or("?").to_owned(),
    }
}

#[test]
fn a_half_moved_activity_is_written_nowhere() -> anyhow::Result<()> {
    let cluster = RedisCluster::start_with(ClusterOptions {
        primaries: 3,
        replicas_per_primary: 0,
        ..ClusterOptions::default()
    })?;
    let a = "42";
    let slot = cluster.slot(a)?;
    let via = cluster.nodes[0].port;
    let from = cluster.primary_of_slot(via, slot)?;
    let to = cluster
        .primaries(via)?
        .into_iter()
        .find(|p| *p != from)
        .expect("another primary");
    let mut src = cluster.node(from)?.connection()?;
    let mut dst = cluster.node(to)?.connection()?;
    let _: () = redis::cmd("SECKILL.CREATE")
        .arg(a)
        .arg(&["STOCK", "10"])
        .arg(clause(a))
        .query(&mut src)?;
    let _: redis::Value = redis::cmd("SECKILL.RESERVE")
        .arg(&[a, "u1", "1"])
        .arg(clause(a))
        .query(&mut src)?;
    let ids = cluster.nodes_seen_by(via)?;
    let id = |p: u16| {
        ids.iter()
            .find(|n| n.port == p)
            .map(|n| n.id.clone())
            .expect("id")
    };
    let s = slot.to_string();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["SETSLOT", &s, "IMPORTING", &id(from)])
        .query(&mut dst)?;
    let _: () = redis::cmd("CLUSTER")
        .arg(&["SETSLOT", &s, "MIGRATING", &id(to)])
        .query(&mut src)?;
    // Half of the activity moves: its record, not its buyers and stream.
    let _: () = redis::cmd("MIGRATE")
        .arg(&[
            "127.0.0.1",
            &to.to_string(),
            &format!("seckill:{{{a}}}"),
            "0",
            "5000",
        ])
        .query(&mut src)?;

    let reserve = |user: &str, with_keys: bool| {
        let mut c = redis::cmd("SECKILL.RESERVE");
        c.arg(&[a, user, "1"]);
        if with_keys {
            c.arg(clause(a));
        }
        c
    };
    // With the clause: the source has some of the keys, the target the rest: nobody runs it.
    let on_src = err_code(reserve("u2", true).query(&mut src));
    assert!(
        matches!(on_src.as_str(), "ASK" | "TRYAGAIN"),
        "source: {on_src}"
    );
    let _: () = redis::cmd("ASKING").query(&mut dst)?;
    let on_dst = err_code(reserve("u2", true).query(&mut dst));
    assert_eq!(on_dst, "TRYAGAIN", "target");
    // Without it: ASK, and the target runs it on the half it has: the split.
    let on_src = err_code(reserve("u3", false).query(&mut src));
    assert_eq!(on_src, "ASK", "source without KEYS");
    let _: () = redis::cmd("ASKING").query(&mut dst)?;
    let on_dst = err_code(reserve("u3", false).query(&mut dst));
    assert!(
        on_dst.starts_with("OK"),
        "without KEYS the importing node runs it on half an activity: {on_dst}"
    );
    let buyers_on_dst: i64 = {
        let _: () = redis::cmd("ASKING").query(&mut dst)?;
        redis::cmd("EXISTS")
            .arg(format!("seckill:{{{a}}}:buyers"))
            .query(&mut dst)?
    };
    assert_eq!(
        buyers_on_dst, 1,
        "a second buyers hash now exists on the target"
    );
    let busy = redis::cmd("MIGRATE")
        .arg(&[
            "127.0.0.1",
            &to.to_string(),
            &format!("seckill:{{{a}}}:buyers"),
            "0",
            "5000",
        ])
        .query::<redis::Value>(&mut src);
    assert!(
        busy.as_ref()
            .is_err_and(|e| e.to_string().contains("BUSYKEY")),
        "the migration can no longer finish: {busy:?}"
    );
    Ok(())
}
