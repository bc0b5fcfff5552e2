//! Every SECKILL command against a real redis-server 7 with the module loaded.

mod support;

use std::collections::BTreeMap;

use seckill_testkit::{RedisOptions, RedisServer};
use support::*;

#[test]
fn reserve_status_and_release_happy_path() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    assert_eq!(
        create(
            &mut con,
            "a1",
            &["STOCK", "3", "LIMIT", "2", "PRODUCT", "p-9", "PRICE", "1999"]
        )?,
        "OK"
    );
    let (rid, remaining) = reserve(&mut con, "a1", "alice", "2")?;
    assert_eq!(remaining, 1);
    let st = status(&mut con, "a1")?;
    assert_eq!(st["total"], "3");
    assert_eq!(st["remaining"], "1");
    assert_eq!(st["reserved"], "2");
    assert_eq!(st["buyers"], "1");
    assert_eq!(st["state"], "open");
    assert_eq!(st["product"], "p-9");
    assert_eq!(st["price"], "1999");

    // The stream entry carries the reservation and its id is the reservation id.
    let snap = snapshot(&mut con, "a1");
    assert_eq!(snap.stream.len(), 1);
    let (id, fields) = &snap.stream[0];
    assert_eq!(id, &rid);
    let entry = seckill_core::ReservationEntry::from_fields(
        fields.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    )?;
    assert_eq!(
        (
            entry.user.as_str(),
            entry.qty,
            entry.price_cents,
            entry.product.as_str()
        ),
        ("alice", 2, 1999, "p-9")
    );

    // Release returns the stock exactly once, and the buyer may buy again.
    assert_eq!(release(&mut con, "a1", &rid)?, 2);
    assert_eq!(release(&mut con, "a1", &rid)?, 0);
    let st = status(&mut con, "a1")?;
    assert_eq!(
        (
            st["remaining"].as_str(),
            st["buyers"].as_str(),
            st["reservations"].as_str()
        ),
        ("3", "0", "0")
    );
    let (_, remaining) = reserve(&mut con, "a1", "alice", "1")?;
    assert_eq!(remaining, 2);
    Ok(())
}

#[test]
fn refusals_are_machine_readable_and_change_nothing() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    let now = now_ms();
    create(&mut con, "open", &["STOCK", "1"])?;
    create(
        &mut con,
        "later",
        &["STOCK", "5", "START", &(now + 3_600_000).to_string()],
    )?;
    create(&mut con, "over", &["STOCK", "5", "START", "1", "END", "2"])?;
    reserve(&mut con, "open", "u1", "1")?;

    let cases = [
        ("open", "u2", "1", "SOLDOUT"),
        ("open", "u1", "1", "LIMIT"),
        ("later", "u1", "1", "NOTSTARTED"),
        ("over", "u1", "1", "ENDED"),
        ("missing", "u1", "1", "NOACTIVITY"),
        ("later", "u1", "2", "NOTSTARTED"),
    ];
    for (activity, user, qty, want) in cases {
        let before = dump_all(&mut con);
        let err = reserve(&mut con, activity, user, qty).expect_err(want);
        assert_eq!(code(&err), want, "{activity} {user} {qty}: {err}");
        assert_eq!(dump_all(&mut con), before, "{want} changed the keyspace");
    }
    // Over the per-user limit in one reservation.
    create(&mut con, "lim", &["STOCK", "10", "LIMIT", "2"])?;
    assert_eq!(
        code(&reserve(&mut con, "lim", "u1", "3").unwrap_err()),
        "LIMIT"
    );
    Ok(())
}

#[test]
fn argument_errors_are_clear_and_change_nothing() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "a", &["STOCK", "10", "LIMIT", "3"])?;
    create(&mut con, "ap", &["STOCK", "10", "PRODUCT", "p1"])?;
    let huge = "9".repeat(400);
    let cases: Vec<Vec<&str>> = vec![
        vec!["SECKILL.RESERVE", "a", "u1"],
        vec!["SECKILL.RESERVE", "a", "u1", "1", "extra"],
        vec!["SECKILL.RESERVE", "a", "u1", "0"],
        vec!["SECKILL.RESERVE", "a", "u1", "-1"],
        vec!["SECKILL.RESERVE", "a", "u1", "one"],
        vec!["SECKILL.RESERVE", "a", "u1", "1.5"],
        vec!["SECKILL.RESERVE", "a", "u1", &huge],
        vec!["SECKILL.RESERVE", "a", "bad user", "1"],
        vec!["SECKILL.RESERVE", "a{x}", "u1", "1"],
        vec!["SECKILL.RESERVE", "", "u1", "1"],
        vec!["SECKILL.RESERVE", "ap", "u1", "1", "PRODUCT", "p2"],
        vec!["SECKILL.RESERVE", "ap", "u1", "1", "PRODUCT"],
        vec!["SECKILL.RESERVE", "ap", "u1", "1", "PRODUCT", "bad id!"],
        vec!["SECKILL.RESERVE", "ap", "u1", "1", "COLOR", "red"],
        vec![
            "SECKILL.RESERVE",
            "ap",
            "u1",
            "1",
            "PRODUCT",
            "p1",
            "PRODUCT",
            "p1",
        ],
        vec!["SECKILL.CREATE", "b"],
        vec!["SECKILL.CREATE", "b", "STOCK"],
        vec!["SECKILL.CREATE", "b", "LIMIT", "2"],
        vec!["SECKILL.CREATE", "b", "STOCK", "-5"],
        vec!["SECKILL.CREATE", "b", "STOCK", &huge],
        vec!["SECKILL.CREATE", "b", "STOCK", "5", "COLOR", "red"],
        vec!["SECKILL.CREATE", "b", "STOCK", "5", "STOCK", "6"],
        vec!["SECKILL.CREATE", "b", "STOCK", "5", "LIMIT", "0"],
        vec![
            "SECKILL.CREATE",
            "b",
            "STOCK",
            "5",
            "START",
            "100",
            "END",
            "50",
        ],
        vec!["SECKILL.CREATE", "b", "STOCK", "5", "PRODUCT", "a b"],
        vec!["SECKILL.CREATE", "a", "STOCK", "5"],
        vec!["SECKILL.RELEASE", "a"],
        vec!["SECKILL.RELEASE", "a", "not-an-id"],
        vec!["SECKILL.RELEASE", "a", "1-1"],
        vec!["SECKILL.STATUS"],
        vec!["SECKILL.STATUS", "a", "b"],
        vec!["SECKILL.TRIM", "a"],
        vec!["SECKILL.TRIM", "a", "1-0", "x"],
        vec!["SECKILL.TRIM", "a", "not-an-id"],
        vec!["SECKILL.TRIM", "a", "12"],
    ];
    for args in cases {
        let before = dump_all(&mut con);
        let result: redis::RedisResult<redis::Value> =
            redis::cmd(args[0]).arg(&args[1..]).query(&mut con);
        let err = result.expect_err(&format!("{args:?} must fail"));
        let code = code(&err);
        assert!(code == "ERR" || code == "EXISTS", "{args:?}: {err}");
        let detail = err.detail().unwrap_or("").to_owned();
        assert!(
            !detail.is_empty() && detail.len() < 200,
            "{args:?}: unclear error '{detail}'"
        );
        assert_eq!(dump_all(&mut con), before, "{args:?} changed the keyspace");
    }
    // The server survived all of it.
    let pong: String = redis::cmd("PING").query(&mut con)?;
    assert_eq!(pong, "PONG");
    Ok(())
}

/// `PRODUCT` names what the caller means to buy: matching (any case of the keyword) reserves,
/// a different product is refused above; an activity created without one accepts any.
#[test]
fn reserve_checks_the_named_product() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "pp", &["STOCK", "5", "PRODUCT", "sku-1"])?;
    create(&mut con, "np", &["STOCK", "5"])?;
    let ok = |con: &mut redis::Connection, act: &str, user: &str, kw: &str, product: &str| {
        redis::cmd("SECKILL.RESERVE")
            .arg(act)
            .arg(user)
            .arg(1)
            .arg(kw)
            .arg(product)
            .query::<(String, i64)>(con)
    };
    assert_eq!(ok(&mut con, "pp", "u1", "PRODUCT", "sku-1")?.1, 4);
    assert_eq!(ok(&mut con, "pp", "u2", "product", "sku-1")?.1, 3);
    let err = ok(&mut con, "pp", "u3", "PRODUCT", "sku-2").unwrap_err();
    assert_eq!(code(&err), "ERR");
    assert!(
        err.to_string().contains("does not sell product 'sku-2'"),
        "{err}"
    );
    assert_eq!(ok(&mut con, "np", "u1", "PRODUCT", "whatever")?.1, 4);
    assert_eq!(status(&mut con, "pp")?["remaining"], "3");
    Ok(())
}

#[test]
fn wrong_type_keys_are_reported_not_crashed_on() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    redis::cmd("SET")
        .arg("seckill:{s}")
        .arg("x")
        .query::<()>(&mut con)?;
    let err = reserve(&mut con, "s", "u", "1").unwrap_err();
    assert_eq!(code(&err), "WRONGTYPE");
    create(&mut con, "t", &["STOCK", "5"])?;
    redis::cmd("SET")
        .arg("seckill:{t}:stream")
        .arg("x")
        .query::<()>(&mut con)?;
    let before = dump_all(&mut con);
    assert_eq!(
        code(&reserve(&mut con, "t", "u", "1").unwrap_err()),
        "WRONGTYPE"
    );
    assert_eq!(dump_all(&mut con), before);
    Ok(())
}

#[test]
fn an_ended_activity_can_be_recreated_but_a_live_one_cannot() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "r", &["STOCK", "5"])?;
    let err = create(&mut con, "r", &["STOCK", "9"]).unwrap_err();
    assert_eq!(code(&err), "EXISTS");
    // Far enough ahead that the RESERVE below lands inside the window on a loaded machine;
    // then poll until the window has closed instead of sleeping a fixed time.
    let end = now_ms() + 2_000;
    create(&mut con, "e", &["STOCK", "5", "END", &end.to_string()])?;
    reserve(&mut con, "e", "u1", "1")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status(&mut con, "e")?["state"] != "ended" {
        assert!(
            std::time::Instant::now() < deadline,
            "the window never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    create(&mut con, "e", &["STOCK", "7"])?;
    let st = status(&mut con, "e")?;
    assert_eq!(
        (
            st["total"].as_str(),
            st["remaining"].as_str(),
            st["buyers"].as_str()
        ),
        ("7", "7", "0")
    );
    // The old reservation is still in the stream for the worker to drain.
    assert_eq!(snapshot(&mut con, "e").stream.len(), 1);
    Ok(())
}

#[test]
fn keys_are_cluster_safe_and_declared() -> anyhow::Result<()> {
    let server = RedisServer::start_with(RedisOptions {
        cluster: true,
        ..Default::default()
    })?;
    let mut con = server.connection()?;
    for activity in ["42", "sale-7", "a:b.c_d"] {
        let declared: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(activity)
            .query(&mut con)?;
        let id = seckill_core::ActivityId::parse(activity)?;
        use seckill_core::keys;
        for key in [
            keys::meta(&id),
            keys::buyers(&id),
            keys::stream(&id),
            keys::released(&id),
            keys::dead_letters(&id),
        ] {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query(&mut con)?;
            assert_eq!(slot, declared, "{key} is not in the slot of {activity}");
        }
        for cmd in [
            vec!["SECKILL.RESERVE", activity, "u", "1"],
            vec!["SECKILL.CREATE", activity, "STOCK", "1"],
            vec!["SECKILL.RELEASE", activity, "1-0"],
            vec!["SECKILL.STATUS", activity],
            vec!["SECKILL.TRIM", activity, "1-0"],
        ] {
            let keys: Vec<String> = redis::cmd("COMMAND")
                .arg("GETKEYS")
                .arg(&cmd)
                .query(&mut con)?;
            assert_eq!(keys, vec![activity.to_owned()], "{cmd:?}");
        }
        // With the KEYS clause the real keys are declared too (second key spec), so Redis
        // Cluster sees them during a slot migration.
        let id = seckill_core::ActivityId::parse(activity)?;
        let real = [
            seckill_core::keys::meta(&id),
            seckill_core::keys::buyers(&id),
            seckill_core::keys::stream(&id),
            seckill_core::keys::released(&id),
        ];
        for cmd in [
            vec!["SECKILL.RESERVE", activity, "u", "1"],
            vec!["SECKILL.RESERVE", activity, "u", "1", "PRODUCT", "p"],
            // A user named KEYS is an ordinary argument.
            vec!["SECKILL.RESERVE", activity, "KEYS", "1"],
            vec!["SECKILL.CREATE", activity, "STOCK", "1", "PRODUCT", "KEYS"],
            vec!["SECKILL.RELEASE", activity, "1-0"],
            vec!["SECKILL.STATUS", activity],
            vec!["SECKILL.TRIM", activity, "1-0"],
            vec!["SECKILL.HELD", activity, "u"],
            vec!["SECKILL.BUYERS", activity],
        ] {
            let mut with: Vec<&str> = cmd.clone();
            with.push("KEYS");
            with.extend(real.iter().map(String::as_str));
            let keys: Vec<String> = redis::cmd("COMMAND")
                .arg("GETKEYS")
                .arg(&with)
                .query(&mut con)?;
            let mut want = vec![activity.to_owned()];
            want.extend(real.iter().cloned());
            assert_eq!(keys, want, "{with:?}");
            let keys: Vec<String> = redis::cmd("COMMAND")
                .arg("GETKEYS")
                .arg(&cmd)
                .query(&mut con)?;
            assert_eq!(keys, vec![activity.to_owned()], "{cmd:?}");
        }
    }
    Ok(())
}

/// The optional `KEYS <meta> <buyers> <stream> <released>` clause changes nothing about what
/// a command does; naming any other keys, in any other order, is an argument error that
/// changes nothing.
#[test]
fn the_keys_clause_names_exactly_the_activitys_keys() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    let keys = |a: &str| -> Vec<String> {
        ["", ":buyers", ":stream", ":released"]
            .iter()
            .map(|s| format!("seckill:{{{a}}}{s}"))
            .collect()
    };
    let k = keys("k");
    let with = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("KEYS".into());
        v.extend(k.iter().cloned());
        v
    };
    let ok: String = redis::cmd("SECKILL.CREATE")
        .arg(with(&["k", "STOCK", "3", "LIMIT", "1", "PRODUCT", "p"]))
        .query(&mut con)?;
    assert_eq!(ok, "OK");
    let (rid, remaining): (String, i64) = redis::cmd("SECKILL.RESERVE")
        .arg(with(&["k", "alice", "1", "PRODUCT", "p"]))
        .query(&mut con)?;
    assert_eq!(remaining, 2);
    let (_, remaining): (String, i64) = redis::cmd("SECKILL.RESERVE")
        .arg(with(&["k", "KEYS", "1"]))
        .query(&mut con)?;
    assert_eq!(remaining, 1, "a user named KEYS reserves like anyone");
    let st: Vec<redis::Value> = redis::cmd("SECKILL.STATUS")
        .arg(with(&["k"]))
        .query(&mut con)?;
    assert_eq!(st.len() % 2, 0);
    assert_eq!(status(&mut con, "k")?["remaining"], "1");
    let err = redis::cmd("SECKILL.RESERVE")
        .arg(with(&["k", "alice", "1"]))
        .query::<redis::Value>(&mut con)
        .expect_err("limit");
    assert_eq!(code(&err), "LIMIT");
    let n: i64 = redis::cmd("SECKILL.RELEASE")
        .arg(with(&["k", &rid]))
        .query(&mut con)?;
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("SECKILL.TRIM")
        .arg(with(&["k", "1-0"]))
        .query(&mut con)?;
    assert_eq!(n, 0);

    let other = keys("other");
    let mut swapped = k.clone();
    swapped.swap(1, 2);
    let mut short = k.clone();
    short.pop();
    let bad_sets: Vec<Vec<String>> = vec![
        other,
        swapped,
        vec![
            k[0].clone(),
            k[1].clone(),
            k[2].clone(),
            "seckill:{k}:dead".into(),
        ],
        vec![k[0].clone(), k[1].clone(), k[2].clone(), "x".into()],
        vec![
            "seckill:{k".into(),
            k[1].clone(),
            k[2].clone(),
            k[3].clone(),
        ],
    ];
    for bad in &bad_sets {
        for base in [
            vec!["SECKILL.RESERVE", "k", "bob", "1"],
            vec!["SECKILL.CREATE", "k", "STOCK", "9"],
            vec!["SECKILL.RELEASE", "k", rid.as_str()],
            vec!["SECKILL.STATUS", "k"],
            vec!["SECKILL.TRIM", "k", "99999999999999-0"],
        ] {
            let before = dump_all(&mut con);
            let err = redis::cmd(base[0])
                .arg(&base[1..])
                .arg("KEYS")
                .arg(bad)
                .query::<redis::Value>(&mut con)
                .expect_err("wrong keys must be refused");
            assert_eq!(code(&err), "ERR", "{base:?} {bad:?}: {err}");
            assert!(
                err.detail().unwrap_or("").contains("KEYS must name"),
                "{base:?} {bad:?}: {err}"
            );
            assert_eq!(dump_all(&mut con), before, "{base:?} {bad:?} changed data");
        }
    }
    // Three keys only: KEYS is not the fifth argument from the end, so it is read as an
    // ordinary (unexpected) argument: still an error, still nothing changed.
    let before = dump_all(&mut con);
    let err = redis::cmd("SECKILL.RESERVE")
        .arg(&["k", "bob", "1", "KEYS"])
        .arg(&short)
        .query::<redis::Value>(&mut con)
        .expect_err("three keys");
    assert_eq!(code(&err), "ERR", "{err}");
    assert_eq!(dump_all(&mut con), before);
    Ok(())
}

#[test]
fn commands_carry_docs_and_key_specs() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let out = server.cli(&["COMMAND", "DOCS", "seckill.reserve"])?;
    assert!(out.contains("Atomically checks window"), "{out}");
    assert!(out.contains("quantity"), "{out}");
    let info = server.cli(&["COMMAND", "INFO", "seckill.status"])?;
    assert!(info.contains("readonly") && info.contains("RO"), "{info}");
    let info = server.cli(&["COMMAND", "INFO", "seckill.reserve"])?;
    assert!(info.contains("RW") && info.contains("denyoom"), "{info}");
    let docs = server.cli(&["COMMAND", "DOCS", "seckill.trim"])?;
    assert!(docs.contains("min-id") && docs.contains("final"), "{docs}");
    let info = server.cli(&["COMMAND", "INFO", "seckill.trim"])?;
    assert!(info.contains("write") && info.contains("denyoom"), "{info}");
    let docs = server.cli(&["COMMAND", "DOCS", "seckill.apply"])?;
    assert!(docs.contains("Internal"), "{docs}");
    Ok(())
}

#[test]
fn redis_cli_users_can_drive_every_command() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    assert_eq!(
        server.cli(&["SECKILL.CREATE", "c1", "STOCK", "1"])?.trim(),
        "OK"
    );
    let out = server.cli(&["SECKILL.RESERVE", "c1", "bob", "1"])?;
    let mut lines = out.lines();
    let rid = lines.next().unwrap_or_default().to_owned();
    assert!(rid.contains('-'), "{out}");
    assert_eq!(lines.next(), Some("0"));
    assert!(server
        .cli(&["SECKILL.RESERVE", "c1", "eve", "1"])?
        .starts_with("SOLDOUT"));
    assert!(server.cli(&["SECKILL.STATUS", "c1"])?.contains("sold-out"));
    assert_eq!(server.cli(&["SECKILL.RELEASE", "c1", &rid])?.trim(), "1");
    assert_eq!(server.cli(&["SECKILL.RELEASE", "c1", &rid])?.trim(), "0");
    Ok(())
}

/// Invariant 8: `SECKILL.APPLY` is the replication link's command. A client, even one whose
/// ACL allows everything, is refused and changes nothing (it could otherwise set any stock).
#[test]
fn apply_is_refused_to_clients_even_with_every_permission() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "77", &["STOCK", "10"])?;
    let (rid, _) = reserve(&mut con, "77", "alice", "1")?;
    let forged = |con: &mut redis::Connection, id: &str| {
        redis::cmd("SECKILL.APPLY")
            .arg(&["77", id, "mallory", "1", "1700000000000", "1000000", "1"])
            .query::<redis::Value>(con)
    };
    redis::cmd("ACL")
        .arg(&["SETUSER", "mallory", "on", ">secret", "~*", "&*", "+@all"])
        .query::<()>(&mut con)?;
    let mut mallory = server.connection()?;
    redis::cmd("AUTH")
        .arg("mallory")
        .arg("secret")
        .query::<()>(&mut mallory)?;
    // A fresh id above every entry, and one that collides with a live reservation.
    let next = format!("{}-0", id_pair(&rid).0 + 1_000);
    for (who, c) in [("default", &mut con), ("mallory", &mut mallory)] {
        for id in [next.as_str(), rid.as_str()] {
            let before = dump_all(c);
            let err = forged(c, id).expect_err("a client's APPLY must be refused");
            assert_eq!(code(&err), "ERR", "{who}: {err}");
            assert!(
                err.to_string().contains("SECKILL.APPLY is internal"),
                "{who}: {err}"
            );
            assert_eq!(dump_all(c), before, "{who}'s APPLY changed the keyspace");
        }
    }
    // Inside MULTI and from a script it is refused too.
    let err = redis::cmd("EVAL")
        .arg("return redis.call('SECKILL.APPLY', '77', ARGV[1], 'm', '1', '1', '1000000', '1')")
        .arg(0)
        .arg(&next)
        .query::<redis::Value>(&mut con)
        .expect_err("APPLY from a script");
    assert!(err.to_string().contains("internal"), "{err}");
    redis::cmd("MULTI").query::<()>(&mut con)?;
    redis::cmd("SECKILL.APPLY")
        .arg(&["77", next.as_str(), "m", "1", "1", "1000000", "1"])
        .query::<()>(&mut con)?;
    let exec: redis::RedisResult<redis::Value> = redis::cmd("EXEC").query(&mut con);
    assert!(
        format!("{exec:?}").contains("internal"),
        "APPLY inside MULTI: {exec:?}"
    );
    let st = status(&mut con, "77")?;
    assert_eq!(
        (st["total"].as_str(), st["remaining"].as_str()),
        ("10", "9")
    );
    Ok(())
}

/// Invariant 4 per sale: re-creating an ended activity keeps the old stream (undrained
/// reservations still become orders) but an old reservation can no longer return stock into
/// the new sale nor lower a new buyer's mark.
#[test]
fn a_recreated_activity_takes_no_stock_back_from_the_previous_sale() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    let end = now_ms() + 400;
    create(
        &mut con,
        "re",
        &["STOCK", "5", "LIMIT", "2", "END", &end.to_string()],
    )?;
    let (old_live, _) = reserve(&mut con, "re", "u1", "2")?;
    let (old_released, _) = reserve(&mut con, "re", "u2", "1")?;
    assert_eq!(release(&mut con, "re", &old_released)?, 1);
    while now_ms() <= end + 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A live activity still refuses to be overwritten; an ended one is replaced.
    create(&mut con, "live", &["STOCK", "1"])?;
    assert_eq!(
        code(&create(&mut con, "live", &["STOCK", "2"]).unwrap_err()),
        "EXISTS"
    );
    create(&mut con, "re", &["STOCK", "7", "LIMIT", "2"])?;
    let (new_rid, remaining) = reserve(&mut con, "re", "u1", "1")?;
    assert_eq!(remaining, 6);

    // The worker expires the old reservation, then an old one released already.
    for old in [&old_live, &old_released] {
        let before = dump_all(&mut con);
        assert_eq!(
            release(&mut con, "re", old)?,
            0,
            "{old} belongs to the old sale"
        );
        assert_eq!(
            dump_all(&mut con),
            before,
            "releasing {old} changed the new sale"
        );
    }
    let st = status(&mut con, "re")?;
    assert_eq!(
        (
            st["total"].as_str(),
            st["remaining"].as_str(),
            st["buyers"].as_str(),
            st["reservations"].as_str()
        ),
        ("7", "6", "1", "1")
    );
    assert_eq!(
        st["sale-from"], old_released,
        "the boundary is the last old id"
    );
    assert_eq!(st["trimmed-below"], "0-0");
    let snap = snapshot(&mut con, "re");
    assert_eq!(snap.buyers.get("u1").map(String::as_str), Some("1"));
    assert_eq!(snap.stream.len(), 3, "the old entries stay for the worker");
    assert_eq!(6 + snap.live_qty(&st["sale-from"]), 7);
    // u1's mark still counts: one more unit is within LIMIT 2 ... but a second reservation
    // is not (one live reservation per user).
    assert_eq!(
        code(&reserve(&mut con, "re", "u1", "1").unwrap_err()),
        "LIMIT"
    );
    // The new sale's own reservation releases exactly once.
    assert_eq!(release(&mut con, "re", &new_rid)?, 1);
    assert_eq!(release(&mut con, "re", &new_rid)?, 0);
    assert_eq!(status(&mut con, "re")?["remaining"], "7");
    Ok(())
}

/// A reservation is released once whatever spelling of its id the caller uses.
#[test]
fn a_release_happens_once_whatever_the_id_spelling() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "sp", &["STOCK", "5"])?;
    let (rid, _) = reserve(&mut con, "sp", "u1", "1")?;
    let (ms, seq) = id_pair(&rid);
    assert_eq!(release(&mut con, "sp", &format!("0{ms}-00{seq}"))?, 1);
    assert_eq!(release(&mut con, "sp", &rid)?, 0);
    let st = status(&mut con, "sp")?;
    assert_eq!(
        (st["remaining"].as_str(), st["buyers"].as_str()),
        ("5", "0")
    );
    assert_eq!(
        snapshot(&mut con, "sp").released.keys().collect::<Vec<_>>(),
        vec![&rid]
    );
    Ok(())
}

/// `SECKILL.TRIM` drops final reservations and their release markers, and a release of a
/// trimmed id is a no-op; ids above the trim point release exactly once as before.
#[test]
fn trim_drops_final_reservations_and_their_markers() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "t", &["STOCK", "100"])?;
    let rids: Vec<String> = (0..10)
        .map(|u| reserve(&mut con, "t", &format!("u{u}"), "1").map(|(rid, _)| rid))
        .collect::<Result<_, _>>()?;
    for i in [1, 3, 6] {
        assert_eq!(release(&mut con, "t", &rids[i])?, 1);
    }
    assert_eq!(trim(&mut con, "t", &rids[5])?, 5);
    let snap = snapshot(&mut con, "t");
    assert_eq!(
        snap.stream.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        rids[5..].iter().collect::<Vec<_>>()
    );
    assert_eq!(snap.released.keys().collect::<Vec<_>>(), vec![&rids[6]]);
    let st = status(&mut con, "t")?;
    assert_eq!(st["trimmed-below"], rids[5]);
    assert_eq!(st["sale-from"], "0-0");

    // Trimmed ids (released or not) are final: 0, nothing changes.
    for rid in [&rids[0], &rids[1], &rids[4]] {
        let before = dump_all(&mut con);
        assert_eq!(release(&mut con, "t", rid)?, 0, "{rid}");
        assert_eq!(dump_all(&mut con), before, "releasing trimmed {rid}");
    }
    // Above the trim point: exactly once, and unknown ids are still errors.
    assert_eq!(release(&mut con, "t", &rids[7])?, 1);
    assert_eq!(release(&mut con, "t", &rids[7])?, 0);
    assert_eq!(release(&mut con, "t", &rids[6])?, 0);
    let (ms, _) = id_pair(&rids[9]);
    let err = release(&mut con, "t", &format!("{}-0", ms + 10_000)).unwrap_err();
    assert_eq!(code(&err), "ERR");
    assert!(err.to_string().contains("no reservation"), "{err}");

    // The trim point never goes back; the same or a lower one changes nothing.
    for lower in [rids[5].as_str(), rids[2].as_str(), "0-0", "0-1"] {
        let before = dump_all(&mut con);
        assert_eq!(trim(&mut con, "t", lower)?, 0, "{lower}");
        assert_eq!(dump_all(&mut con), before, "TRIM {lower} changed something");
    }
    // Malformed ids and a missing activity are refused and change nothing.
    for (activity, bad, want) in [
        ("t", "abc", "ERR"),
        ("t", "5", "ERR"),
        ("t", "-", "ERR"),
        ("t", "+", "ERR"),
        ("t", "1-", "ERR"),
        ("t", "-1-0", "ERR"),
        ("t", "1-2-3", "ERR"),
        ("t", "99999999999999999999999-0", "ERR"),
        ("nope", "1-0", "NOACTIVITY"),
        ("bad id", "1-0", "ERR"),
    ] {
        let before = dump_all(&mut con);
        let err = trim(&mut con, activity, bad).expect_err(bad);
        assert_eq!(code(&err), want, "TRIM {activity} {bad}: {err}");
        assert_eq!(dump_all(&mut con), before, "TRIM {bad} changed something");
    }

    // A min-id beyond the newest entry trims everything, but the trim point stops right
    // after the newest id, so later reservations are never taken for final ones.
    assert_eq!(trim(&mut con, "t", "9999999999999-0")?, 5);
    let st = status(&mut con, "t")?;
    let (ms, seq) = id_pair(&rids[9]);
    assert_eq!(st["trimmed-below"], format!("{ms}-{}", seq + 1));
    assert!(snapshot(&mut con, "t").released.is_empty());
    let (later, _) = reserve(&mut con, "t", "late", "1")?;
    assert_eq!(release(&mut con, "t", &later)?, 1);
    Ok(())
}

/// The 136-byte layout written by earlier modules stays readable by every command; a command
/// that must record a new field upgrades it to the current layout.
#[test]
fn records_of_the_first_layout_still_work() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    let v1 = |total: u64, remaining: u64, limit: u64, end: u64, reservations: u64| {
        let mut b = Vec::with_capacity(136);
        b.extend_from_slice(b"SKL1\0\0\0\0");
        for v in [total, remaining, limit, 0, end, 250, reservations, 2] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(b"p1");
        b.resize(136, 0);
        b
    };
    redis::cmd("SET")
        .arg("seckill:{old}")
        .arg(v1(10, 10, 1, 0, 0))
        .query::<()>(&mut con)?;
    let st = status(&mut con, "old")?;
    assert_eq!(
        (
            st["total"].as_str(),
            st["product"].as_str(),
            st["price"].as_str(),
            st["sale-from"].as_str(),
            st["trimmed-below"].as_str()
        ),
        ("10", "p1", "250", "0-0", "0-0")
    );
    let rids: Vec<String> = (0..3)
        .map(|u| reserve(&mut con, "old", &format!("u{u}"), "1").map(|(rid, _)| rid))
        .collect::<Result<_, _>>()?;
    assert_eq!(release(&mut con, "old", &rids[0])?, 1);
    let meta = |con: &mut redis::Connection| -> Vec<u8> {
        redis::cmd("GET")
            .arg("seckill:{old}")
            .query(con)
            .expect("GET")
    };
    let before = meta(&mut con);
    assert_eq!(
        (before.len(), &before[..4]),
        (136, &b"SKL1"[..]),
        "RESERVE and RELEASE keep v1"
    );
    assert_eq!(trim(&mut con, "old", &rids[1])?, 1);
    let after = meta(&mut con);
    assert_eq!(&after[..4], b"SKL2");
    assert_eq!(
        &after[8..136],
        &before[8..136],
        "v1 fields kept at their offsets"
    );
    let st = status(&mut con, "old")?;
    assert_eq!(
        (
            st["remaining"].as_str(),
            st["reservations"].as_str(),
            st["trimmed-below"].as_str()
        ),
        ("8", "2", rids[1].as_str())
    );
    assert_eq!(release(&mut con, "old", &rids[2])?, 1);

    // An ended v1 activity is re-created as v2 with its boundary.
    redis::cmd("SET")
        .arg("seckill:{old2}")
        .arg(v1(3, 3, 1, 2, 0))
        .query::<()>(&mut con)?;
    redis::cmd("XADD")
        .arg(&["seckill:{old2}:stream", "5-1", "user", "x"])
        .query::<()>(&mut con)?;
    create(&mut con, "old2", &["STOCK", "4"])?;
    let st = status(&mut con, "old2")?;
    assert_eq!(
        (st["sale-from"].as_str(), st["total"].as_str()),
        ("5-1", "4")
    );
    Ok(())
}

/// The buyers live in the module's own type: read with HELD and BUYERS, and no client can
/// forge or clear a buyer's mark with hash commands (invariant 8) or with the internal HOLD.
#[test]
fn buyers_are_read_through_the_module_and_cannot_be_forged() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "b1", &["STOCK", "10", "LIMIT", "3"])?;
    let (rid, _) = reserve(&mut con, "b1", "alice", "2")?;
    reserve(&mut con, "b1", "bob", "1")?;
    let held = |con: &mut redis::Connection, user: &str| -> redis::RedisResult<i64> {
        redis::cmd("SECKILL.HELD").arg("b1").arg(user).query(con)
    };
    assert_eq!(held(&mut con, "alice")?, 2);
    assert_eq!(held(&mut con, "bob")?, 1);
    assert_eq!(held(&mut con, "carol")?, 0);
    let listed: BTreeMap<String, i64> = redis::cmd("SECKILL.BUYERS").arg("b1").query(&mut con)?;
    assert_eq!(listed, [("alice".into(), 2), ("bob".into(), 1)].into());
    // With the KEYS clause, as the typed client sends them.
    let clause = [
        "KEYS",
        "seckill:{b1}",
        "seckill:{b1}:buyers",
        "seckill:{b1}:stream",
        "seckill:{b1}:released",
    ];
    let v: i64 = redis::cmd("SECKILL.HELD")
        .arg("b1")
        .arg("alice")
        .arg(&clause)
        .query(&mut con)?;
    assert_eq!(v, 2);
    let v: BTreeMap<String, i64> = redis::cmd("SECKILL.BUYERS")
        .arg("b1")
        .arg(&clause)
        .query(&mut con)?;
    assert_eq!(v.len(), 2);
    let t: String = redis::cmd("TYPE")
        .arg("seckill:{b1}:buyers")
        .query(&mut con)?;
    assert_eq!(t, "seckbuyrs");

    let before = dump_all(&mut con);
    for forge in [
        vec!["HSET", "seckill:{b1}:buyers", "mallory", "1"],
        vec!["HDEL", "seckill:{b1}:buyers", "alice"],
        vec!["HINCRBY", "seckill:{b1}:buyers", "alice", "-2"],
    ] {
        let err = redis::cmd(forge[0])
            .arg(&forge[1..])
            .query::<redis::Value>(&mut con)
            .expect_err("a hash command on the buyers");
        assert_eq!(code(&err), "WRONGTYPE", "{forge:?}: {err}");
    }
    for forge in [
        vec!["SECKILL.HOLD", "seckill:{b1}:buyers", "alice", "0"],
        vec!["SECKILL.HOLD", "seckill:{b1}:buyers", "mallory", "3"],
    ] {
        let err = redis::cmd(forge[0])
            .arg(&forge[1..])
            .query::<redis::Value>(&mut con)
            .expect_err("a client's HOLD must be refused");
        assert!(
            err.to_string().contains("SECKILL.HOLD is internal"),
            "{err}"
        );
    }
    let err = redis::cmd("EVAL")
        .arg("return redis.call('SECKILL.HOLD', KEYS[1], 'alice', '0')")
        .arg(1)
        .arg("seckill:{b1}:buyers")
        .query::<redis::Value>(&mut con)
        .expect_err("HOLD from a script");
    assert!(err.to_string().contains("internal"), "{err}");
    assert_eq!(
        dump_all(&mut con),
        before,
        "a refused forgery changed the keyspace"
    );
    assert_eq!(
        code(&reserve(&mut con, "b1", "alice", "1").unwrap_err()),
        "LIMIT"
    );

    // A release lowers the mark; the last buyer's release removes the key, as for a hash.
    let released: i64 = redis::cmd("SECKILL.RELEASE")
        .arg("b1")
        .arg(&rid)
        .query(&mut con)?;
    assert_eq!(released, 2);
    assert_eq!(held(&mut con, "alice")?, 0);
    let st = status(&mut con, "b1")?;
    assert_eq!(st["buyers"], "1");
    reserve(&mut con, "b1", "alice", "1")?;
    assert_eq!(held(&mut con, "alice")?, 1);
    Ok(())
}

/// A buyers hash written before the buyer set existed is read as is and converted, same
/// users and quantities, by the next write (an upgrade in the middle of a sale loses no
/// buyer: a user who bought before it is still refused).
#[test]
fn a_buyers_hash_from_an_earlier_version_is_kept_and_converted() -> anyhow::Result<()> {
    let server = RedisServer::start()?;
    let mut con = server.connection()?;
    create(&mut con, "old", &["STOCK", "10", "LIMIT", "2"])?;
    redis::cmd("HSET")
        .arg(&["seckill:{old}:buyers", "alice", "2", "bob", "1"])
        .query::<()>(&mut con)?;
    let held = |con: &mut redis::Connection, user: &str| -> redis::RedisResult<i64> {
        redis::cmd("SECKILL.HELD").arg("old").arg(user).query(con)
    };
    // Read-only commands read the hash (they also run on replicas, which may not convert).
    assert_eq!(held(&mut con, "alice")?, 2);
    assert_eq!(status(&mut con, "old")?["buyers"], "2");
    let t: String = redis::cmd("TYPE")
        .arg("seckill:{old}:buyers")
        .query(&mut con)?;
    assert_eq!(t, "hash");
    // The first write converts, and the earlier buyers still hold their units.
    assert_eq!(
        code(&reserve(&mut con, "old", "alice", "1").unwrap_err()),
        "LIMIT"
    );
    reserve(&mut con, "old", "carol", "1")?;
    let t: String = redis::cmd("TYPE")
        .arg("seckill:{old}:buyers")
        .query(&mut con)?;
    assert_eq!(t, "seckbuyrs");
    let listed: BTreeMap<String, i64> = redis::cmd("SECKILL.BUYERS").arg("old").query(&mut con)?;
    assert_eq!(
        listed,
        [("alice".into(), 2), ("bob".into(), 1), ("carol".into(), 1)].into()
    );
    assert_eq!(
        code(&reserve(&mut con, "old", "bob", "1").unwrap_err()),
        "LIMIT"
    );
    Ok(())
}
