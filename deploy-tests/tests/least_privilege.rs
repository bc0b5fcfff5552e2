//! Least privilege with the real binaries, servers and configuration files
//! (`redis-users.conf` rendered by `scripts/redis-users.sh`, `scripts/mysql-users.sh`):
//!
//! - the whole API works with the gateway logged in as `seckill-gateway` (admin create,
//!   register, login, reserve, result, orders, pay, cancel with its RELEASE, activities with
//!   their live STATUS), the worker as `seckill-worker` drains the sale, expires an unpaid
//!   order and returns its stock, and the CLI as `seckill-cli` creates an activity and
//!   reports lag and a clean audit; everything as the MariaDB application user;
//! - what a user may not do is refused: FLUSHALL, CONFIG, EVAL, SECKILL.APPLY and writes
//!   outside its job for every application user, anything at all without logging in; the
//!   application user cannot DROP, DELETE, ALTER or CREATE, nor run the migrations;
//! - no password reaches a log or an error message: binaries started with wrong passwords,
//!   unreachable servers and broken URLs name the server by its redacted URL.

#[path = "support/secure.rs"]
mod secure;
mod support;

use secure::*;
use serde_json::Value as Json;
use std::time::Duration;
use support::*;

fn json(body: &str) -> Json {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Json {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, text) = http(method, port, path, &headers, body).unwrap();
    let mut v = json(&text);
    v["status"] = status.into();
    v
}

fn ok(v: &Json, what: &str) {
    let s = v["status"].as_u64().unwrap_or(0);
    assert!((200..300).contains(&s), "{what}: {v}");
}

fn login(port: u16, user: &str, password: &str) -> String {
    let v = call(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&format!(
            r#"{{"username":"{user}","password":"{password}"}}"#
        )),
    );
    ok(&v, "login");
    v["data"]["token"].as_str().unwrap().to_owned()
}

const JWT: &str = "least-privilege-test-key-0123456789abcdef";

#[test]
fn every_binary_works_as_its_own_user_and_nothing_more() {
    let s = Secure::start(false);
    s.migrate();

    // --- what each user may not do
    let nopass = |user: &str, pw: &str, args: &[&str]| {
        let reply = s.redis_as(user, pw, args);
        assert!(reply.contains("NOPERM"), "{user} ran {args:?}: {reply}");
    };
    for (user, pw) in [
        ("seckill-gateway", &s.pw.gateway),
        ("seckill-worker", &s.pw.worker),
        ("seckill-cli", &s.pw.cli),
        ("seckill-exporter", &s.pw.exporter),
    ] {
        nopass(user, pw, &["FLUSHALL"]);
        nopass(user, pw, &["CONFIG", "SET", "appendonly", "no"]);
        nopass(user, pw, &["CONFIG", "GET", "requirepass"]);
        nopass(user, pw, &["EVAL", "return redis.call('FLUSHALL')", "0"]);
        nopass(
            user,
            pw,
            &["SECKILL.APPLY", "1", "1-1", "u", "1", "1", "1", "1"],
        );
        nopass(user, pw, &["SET", "seckill:{1}", "x"]);
        nopass(user, pw, &["DEL", "seckill:{1}:stream"]);
        nopass(user, pw, &["ACL", "SETUSER", user, "+@all"]);
    }
    // Writes outside each user's job.
    let gw = |args: &[&str]| nopass("seckill-gateway", &s.pw.gateway, args);
    gw(&["HSET", "seckill:{1}:buyers", "u", "1"]);
    gw(&["XADD", "seckill:{1}:stream", "*", "a", "b"]);
    gw(&["SECKILL.TRIM", "1", "1-1"]);
    let wk = |args: &[&str]| nopass("seckill-worker", &s.pw.worker, args);
    wk(&["SECKILL.RESERVE", "1", "u", "1"]);
    wk(&["SECKILL.CREATE", "1", "STOCK", "1000"]);
    wk(&["XADD", "seckill:{1}:stream", "*", "a", "b"]);
    wk(&["HSET", "seckill:{1}:buyers", "u", "1"]);
    let cl = |args: &[&str]| nopass("seckill-cli", &s.pw.cli, args);
    cl(&["SECKILL.RESERVE", "1", "u", "1"]);
    cl(&["SECKILL.RELEASE", "1", "1-1"]);
    cl(&["XADD", "seckill:{1}:dead", "*", "a", "b"]);
    nopass("seckill-exporter", &s.pw.exporter, &["GET", "seckill:{1}"]);
    // Nobody gets in without logging in (`default` is off).
    let anonymous = s.redis.cli(&["PING"]).unwrap();
    assert!(
        anonymous.contains("PONG"),
        "the harness logs in: {anonymous}"
    );
    let out = run(
        std::process::Command::new("redis-cli").args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.redis.port.to_string(),
            "PING",
        ]),
        Duration::from_secs(10),
    );
    assert!(
        text(&out).contains("NOAUTH"),
        "the default user answers: {}",
        text(&out)
    );
    // The application user: rows only. It cannot run the migrations either.
    for refused in [
        "DROP TABLE orders",
        "DELETE FROM orders",
        "TRUNCATE TABLE orders",
        "ALTER TABLE orders ADD COLUMN x INT",
        "CREATE TABLE x (y INT)",
        "GRANT ALL ON seckill.* TO 'seckill_app'@'%'",
    ] {
        let out = s.sql_as(APP_USER, &s.pw.mysql_app, refused);
        assert!(
            !out.status.success() && text(&out).contains("denied"),
            "the application user could run {refused}: {}",
            text(&out)
        );
    }
    let out = s.cli(
        &["db", "migrate"],
        &[("SECKILL_MYSQL__MIGRATE_URL", &s.app_url())],
    );
    let err = text(&out);
    assert!(
        !out.status.success(),
        "the application user migrated: {err}"
    );
    assert!(
        err.contains(&format!(
            "mysql://{APP_USER}:***@127.0.0.1:{}/seckill",
            s.db.port
        )) && err.contains("denied"),
        "{err}"
    );
    assert_no_secret("db migrate as the app user", &err, &s.pw.all());

    // Refusals from here on are the application's: the ACL log starts empty.
    s.redis.cli(&["ACL", "LOG", "RESET"]).unwrap();

    // --- the whole API, as those users
    let out = s.cli(
        &["users", "create-admin", "--username", "ops"],
        &[("SECKILL_ADMIN_PASSWORD", "ops-password-123")],
    );
    assert!(out.status.success(), "create-admin: {}", text(&out));
    let port = seckill_testkit::free_port();
    let mut gateway_cmd = s.command("seckill-gateway", "gateway");
    gateway_cmd
        .env("SECKILL_AUTH__JWT_SECRET", JWT)
        .env("SECKILL_GATEWAY__LISTEN", format!("127.0.0.1:{port}"));
    let gateway = s.spawn("gateway", gateway_cmd);
    wait_for("the gateway's /health", Duration::from_secs(30), || {
        (get(port, "/health").ok()?.0 == 200).then_some(())
    });
    // The worker drains the streams into orders.
    let mut worker_cmd = s.command("seckill-worker", "worker");
    worker_cmd
        .env("SECKILL_WORKER__METRICS_ADDR", "")
        .env("SECKILL_WORKER__BLOCK_MS", "200")
        .env("SECKILL_WORKER__DISCOVER_INTERVAL_MS", "200")
        .env("SECKILL_WORKER__SWEEPER__INTERVAL_MS", "200")
        .env("SECKILL_WORKER__SWEEPER__TRIM_INTERVAL_MS", "200");
    let worker = s.spawn("worker", worker_cmd);
    let admin = login(port, "ops", "ops-password-123");
    // Three units, payment window 5 s: one paid, one cancelled, one left unpaid to expire.
    let created = call(
        port,
        "POST",
        "/api/v1/admin/activities",
        Some(&admin),
        Some(
            r#"{"title":"acl","product_name":"p","price_cents":100,"stock":3,"payment_window_secs":5}"#,
        ),
    );
    ok(&created, "admin create (SECKILL.CREATE as seckill-gateway)");
    let activity = created["data"]["id"].to_string();
    let product = created["data"]["product_id"].to_string();
    let mut tokens = Vec::new();
    for u in ["payer", "canceller", "sleeper"] {
        let body = format!(r#"{{"username":"{u}","password":"password-{u}"}}"#);
        ok(
            &call(port, "POST", "/api/v1/auth/register", None, Some(&body)),
            "register",
        );
        let t = login(port, u, &format!("password-{u}"));
        let body =
            format!(r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":1}}"#);
        let r = call(port, "POST", "/api/v1/seckill", Some(&t), Some(&body));
        ok(&r, "reserve (SECKILL.RESERVE as seckill-gateway)");
        tokens.push(t);
    }
    let order_of = |token: &str| -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = call(
                port,
                "GET",
                &format!("/api/v1/seckill/result?activity_id={activity}"),
                Some(token),
                None,
            );
            if v["data"]["status"] == "success" {
                return v["data"]["order_id"].to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no order after 30 s ({v}); the worker's output:\n{}",
                worker.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let paid = order_of(&tokens[0]);
    let cancelled = order_of(&tokens[1]);
    order_of(&tokens[2]);
    ok(
        &call(
            port,
            "POST",
            &format!("/api/v1/orders/{paid}/pay"),
            Some(&tokens[0]),
            None,
        ),
        "pay",
    );
    ok(
        &call(
            port,
            "POST",
            &format!("/api/v1/orders/{cancelled}/cancel"),
            Some(&tokens[1]),
            None,
        ),
        "cancel (SECKILL.RELEASE as seckill-gateway)",
    );
    let orders = call(port, "GET", "/api/v1/orders", Some(&tokens[0]), None);
    ok(&orders, "orders");
    // The sleeper's order expires: the sweeper (seckill-worker) releases its unit; with the
    // cancelled one, two of three units are back.
    wait_for(
        "the expired unit back in stock",
        Duration::from_secs(30),
        || {
            let v = call(
                port,
                "GET",
                &format!("/api/v1/activities/{activity}"),
                None,
                None,
            );
            (v["data"]["remaining"] == 2).then_some(())
        },
    );
    // The CLI: an activity of its own, lag, a clean audit.
    let out = s.cli(
        &["activity", "create", "--stock", "5", "--start", "now"],
        &[],
    );
    assert!(out.status.success(), "activity create: {}", text(&out));
    let out = s.cli(&["lag"], &[]);
    assert!(out.status.success(), "lag: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&activity));
    let out = wait_for("a clean audit", Duration::from_secs(30), || {
        let out = s.cli(&["audit", &activity], &[]);
        out.status.success().then_some(out)
    });
    assert!(out.status.success(), "audit: {}", text(&out));

    // Nothing was refused along the way: no NOPERM, no "denied" in any output.
    let (g, w) = (gateway.output(), worker.output());
    for (name, log) in [("gateway", &g), ("worker", &w)] {
        assert!(
            !log.contains("NOPERM") && !log.contains("denied"),
            "the {name} was refused something:\n{log}"
        );
        assert_no_secret(name, log, &s.pw.all());
    }
    // And the ACL log agrees: nothing the gateway, the worker or the CLI sent was refused
    // (newer servers than Debian's 7.0 refuse redis-rs's `CLIENT SETINFO`, which it ignores).
    let acl_log = s.redis.cli(&["ACL", "LOG"]).unwrap();
    let lines: Vec<&str> = acl_log.lines().map(str::trim).collect();
    let refused: Vec<&str> = lines
        .windows(2)
        .filter(|w| w[0] == "object" && w[1] != "client|setinfo")
        .map(|w| w[1])
        .collect();
    assert!(refused.is_empty(), "refused by ACL: {refused:?}\n{acl_log}");
}

/// Every binary, started against a wrong password, an unreachable server or a broken URL
/// with a password in it, fails naming the server by its redacted URL, and the password
/// is in none of its output.
#[test]
fn no_password_reaches_a_log_or_an_error() {
    let s = Secure::start(false);
    s.migrate();
    let redis_port = s.redis.port;
    let closed = seckill_testkit::free_port();
    let wrong = random_password();
    let mut secrets: Vec<String> = s.pw.all().iter().map(|p| p.to_string()).collect();
    secrets.push(wrong.clone());
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let redis_url =
        |user: &str, pw: &str, port: &str| format!("redis://{user}:{pw}@127.0.0.1:{port}/");
    let mysql_url =
        |user: &str, pw: &str, port: u16| format!("mysql://{user}:{pw}@127.0.0.1:{port}/seckill");

    struct Case {
        name: &'static str,
        binary: &'static str,
        role: &'static str,
        args: Vec<&'static str>,
        env: Vec<(&'static str, String)>,
        /// What the output must show instead of the URL with its password.
        shown: String,
    }
    let case =
        |name, binary, role, args: Vec<&'static str>, env: Vec<(&'static str, String)>, shown| {
            Case {
                name,
                binary,
                role,
                args,
                env,
                shown,
            }
        };
    let wrong_gw = redis_url("seckill-gateway", &wrong, &redis_port.to_string());
    let wrong_wk = redis_url("seckill-worker", &wrong, &redis_port.to_string());
    let wrong_cli = redis_url("seckill-cli", &wrong, &redis_port.to_string());
    let closed_gw = redis_url("seckill-gateway", &s.pw.gateway, &closed.to_string());
    let broken = redis_url("seckill-worker", &s.pw.worker, "notaport");
    let cases = vec![
        case(
            "gateway, wrong Redis password",
            "seckill-gateway",
            "gateway",
            vec![],
            vec![("SECKILL_REDIS__URL", wrong_gw)],
            format!("redis://seckill-gateway:***@127.0.0.1:{redis_port}/"),
        ),
        case(
            "gateway, Redis unreachable",
            "seckill-gateway",
            "gateway",
            vec![],
            vec![("SECKILL_REDIS__URL", closed_gw)],
            format!("redis://seckill-gateway:***@127.0.0.1:{closed}/"),
        ),
        case(
            "gateway, wrong MySQL password for migrations",
            "seckill-gateway",
            "gateway",
            vec!["--run-migrations"],
            vec![(
                "SECKILL_MYSQL__MIGRATE_URL",
                mysql_url(OWNER_USER, &wrong, s.db.port),
            )],
            format!("mysql://{OWNER_USER}:***@127.0.0.1:{}/seckill", s.db.port),
        ),
        case(
            "worker, wrong Redis password",
            "seckill-worker",
            "worker",
            vec![],
            vec![("SECKILL_REDIS__URL", wrong_wk)],
            format!("redis://seckill-worker:***@127.0.0.1:{redis_port}/"),
        ),
        case(
            "worker, a Redis URL that does not parse",
            "seckill-worker",
            "worker",
            vec![],
            vec![("SECKILL_REDIS__URL", broken)],
            "redis://seckill-worker:***@127.0.0.1:notaport/".into(),
        ),
        case(
            "worker --migrate, wrong MySQL password",
            "seckill-worker",
            "worker",
            vec!["--migrate"],
            vec![(
                "SECKILL_MYSQL__MIGRATE_URL",
                mysql_url(OWNER_USER, &wrong, s.db.port),
            )],
            format!("mysql://{OWNER_USER}:***@127.0.0.1:{}/seckill", s.db.port),
        ),
        case(
            "cli lag, wrong Redis password",
            "seckill",
            "cli",
            vec!["lag"],
            vec![("SECKILL_REDIS__URL", wrong_cli)],
            format!("redis://seckill-cli:***@127.0.0.1:{redis_port}/"),
        ),
        case(
            "cli, wrong MySQL password",
            "seckill",
            "cli",
            vec!["users", "promote", "nobody"],
            vec![("SECKILL_MYSQL__URL", mysql_url(APP_USER, &wrong, s.db.port))],
            format!("mysql://{APP_USER}:***@127.0.0.1:{}/seckill", s.db.port),
        ),
        case(
            "cli, MySQL unreachable",
            "seckill",
            "cli",
            vec!["users", "promote", "nobody"],
            vec![(
                "SECKILL_MYSQL__URL",
                mysql_url(APP_USER, &s.pw.mysql_app, closed),
            )],
            format!("mysql://{APP_USER}:***@127.0.0.1:{closed}/seckill"),
        ),
        case(
            "cli db migrate, wrong password",
            "seckill",
            "cli",
            vec!["db", "migrate"],
            vec![(
                "SECKILL_MYSQL__MIGRATE_URL",
                mysql_url(OWNER_USER, &wrong, s.db.port),
            )],
            format!("mysql://{OWNER_USER}:***@127.0.0.1:{}/seckill", s.db.port),
        ),
    ];
    for c in cases {
        let mut cmd = s.command(c.binary, c.role);
        cmd.args(&c.args)
            .env("SECKILL_AUTH__JWT_SECRET", JWT)
            .env(
                "SECKILL_GATEWAY__LISTEN",
                format!("127.0.0.1:{}", seckill_testkit::free_port()),
            )
            .env("SECKILL_WORKER__METRICS_ADDR", "")
            // Fail fast against the closed port (the CLI waits up to 10 s for MySQL).
            .env("SECKILL_GATEWAY__REDIS_TIMEOUT_MS", "200");
        if c.env
            .iter()
            .any(|(k, _)| k.ends_with("__URL") && k.contains("REDIS"))
        {
            // The credentials are in the URL this time.
            cmd.env("SECKILL_REDIS__USERNAME", "")
                .env("SECKILL_REDIS__PASSWORD", "");
        }
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        eprintln!("case: {}", c.name);
        let mut p = s.spawn(&c.name.replace([' ', ','], "_"), cmd);
        let out = p.wait_exit(Duration::from_secs(90));
        assert!(
            out.contains(&c.shown),
            "{}: the output does not name the server as {}:\n{out}",
            c.name,
            c.shown
        );
        assert_no_secret(c.name, &out, &secrets);
    }
}
