//! Every SECKILL command against a real redis-server 7 with the module loaded.

mod support;

use seckill_testkit::{RedisOptions, RedisServer};
use support::*;

fn code(err: &redis::RedisError) -> String {
    err.code().unwrap_or("").to_owned()
}

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
    let end = now_ms() + 300;
    create(&mut con, "e", &["STOCK", "5", "END", &end.to_string()])?;
    reserve(&mut con, "e", "u1", "1")?;
    std::thread::sleep(std::time::Duration::from_millis(400));
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
        ] {
            let keys: Vec<String> = redis::cmd("COMMAND")
                .arg("GETKEYS")
                .arg(&cmd)
                .query(&mut con)?;
            assert_eq!(keys, vec![activity.to_owned()], "{cmd:?}");
        }
    }
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
