//! TLS to every server, with the real binaries and a CA the test makes (rcgen): redis-server
//! on its `--tls-port` requiring a client certificate, MariaDB with `ssl_cert`/`ssl_key`/
//! `ssl_ca` and both seckill users `REQUIRE X509`, etcd on `https://` with
//! `--client-cert-auth`. A reservation goes end to end (gateway → Redis, worker → Redis and
//! MariaDB, migrations and the CLI → MariaDB, registration and `seckill members` → etcd), all
//! over TLS; a wrong CA is refused by each binary with an error that names the server (URL
//! redacted) and says its certificate is not trusted; a client without its certificate is
//! refused too.

#[path = "support/secure.rs"]
mod secure;
mod support;

use secure::*;
use serde_json::Value as Json;
use std::time::Duration;
use support::*;

const JWT: &str = "tls-test-signing-key-0123456789abcdefgh";

fn json(body: &str) -> Json {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn post(port: u16, path: &str, token: Option<&str>, body: &str) -> Json {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, text) = http("POST", port, path, &headers, Some(body)).unwrap();
    assert!((200..300).contains(&status), "POST {path}: {status} {text}");
    json(&text)
}

fn login(port: u16, user: &str, password: &str) -> String {
    let v = post(
        port,
        "/api/v1/auth/login",
        None,
        &format!(r#"{{"username":"{user}","password":"{password}"}}"#),
    );
    v["data"]["token"].as_str().unwrap().to_owned()
}

#[test]
fn a_sale_runs_over_tls_to_every_server_and_a_wrong_ca_is_refused() {
    let s = Secure::start_tls();
    let tls_port = s.redis.tls_port.unwrap();
    let etcd = s.etcd.as_ref().unwrap().endpoint();
    assert!(etcd.starts_with("https://"), "{etcd}");

    // Migrations (schema owner) and an administrator (application user), over TLS.
    s.migrate();
    let out = s.cli(
        &["users", "create-admin", "--username", "ops"],
        &[("SECKILL_ADMIN_PASSWORD", "ops-password-123")],
    );
    assert!(out.status.success(), "create-admin: {}", text(&out));
    // The MariaDB users cannot get in without TLS and a client certificate.
    let out = s.sql_as(APP_USER, &s.pw.mysql_app, "SELECT 1");
    assert!(
        !out.status.success() && text(&out).contains("Access denied"),
        "the application user got in without TLS: {}",
        text(&out)
    );

    let port = seckill_testkit::free_port();
    let mut cmd = s.command("seckill-gateway", "gateway");
    cmd.env("SECKILL_AUTH__JWT_SECRET", JWT)
        .env("SECKILL_GATEWAY__LISTEN", format!("127.0.0.1:{port}"));
    let gateway = s.spawn("gateway", cmd);
    wait_for("the gateway's /health", Duration::from_secs(30), || {
        (get(port, "/health").ok()?.0 == 200).then_some(())
    });
    let mut cmd = s.command("seckill-worker", "worker");
    cmd.env("SECKILL_WORKER__METRICS_ADDR", "")
        .env("SECKILL_WORKER__BLOCK_MS", "200")
        .env("SECKILL_WORKER__DISCOVER_INTERVAL_MS", "200");
    let worker = s.spawn("worker", cmd);

    let admin = login(port, "ops", "ops-password-123");
    let created = post(
        port,
        "/api/v1/admin/activities",
        Some(&admin),
        r#"{"title":"tls","product_name":"p","price_cents":100,"stock":5}"#,
    );
    let activity = created["data"]["id"].to_string();
    let product = created["data"]["product_id"].to_string();
    post(
        port,
        "/api/v1/auth/register",
        None,
        r#"{"username":"buyer","password":"buyer-password"}"#,
    );
    let token = login(port, "buyer", "buyer-password");
    let r = post(
        port,
        "/api/v1/seckill",
        Some(&token),
        &format!(r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":1}}"#),
    );
    assert_eq!(r["data"]["status"], "queued", "{r}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let auth = format!("Bearer {token}");
    loop {
        let (_, body) = http(
            "GET",
            port,
            &format!("/api/v1/seckill/result?activity_id={activity}"),
            &[("Authorization", &auth)],
            None,
        )
        .unwrap();
        if json(&body)["data"]["status"] == "success" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no order over TLS after 30 s ({body}); the worker's output:\n{}",
            worker.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both registered in etcd over TLS; the CLI reads them over TLS.
    let members = wait_for("both members in etcd", Duration::from_secs(30), || {
        let out = s.cli(&["members"], &[]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        (t.contains("gateway") && t.contains("worker")).then_some(t)
    });
    assert!(members.contains(&format!("127.0.0.1:{port}")), "{members}");
    // Every connection of the gateway and the worker to Redis is on the TLS port.
    let clients = s.redis.cli(&["CLIENT", "LIST"]).unwrap();
    let apps: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains("user=seckill-gateway") || l.contains("user=seckill-worker"))
        .collect();
    assert!(apps.len() >= 2, "{clients}");
    for c in &apps {
        assert!(
            c.contains(&format!("laddr=127.0.0.1:{tls_port} ")),
            "a connection not on the TLS port: {c}"
        );
    }
    for (name, p) in [("gateway", &gateway), ("worker", &worker)] {
        let log = p.output();
        assert!(
            !log.to_lowercase().contains("certificate"),
            "the {name} had a certificate problem:\n{log}"
        );
        assert_no_secret(name, &log, &s.pw.all());
    }

    // --- a wrong CA: each binary refuses the server, says so and names it.
    let other = seckill_testkit::TestPki::generate("other").unwrap();
    let wrong_ca = path_str(&other.ca);
    let refused = |what: &str, out: &str, shown: &str| {
        eprintln!("--- {what}:\n{out}");
        assert!(
            out.contains(shown) && out.contains("not trusted"),
            "{what}: the error must name {shown} and say its certificate is not trusted:\n{out}"
        );
        assert_no_secret(what, out, &s.pw.all());
    };
    let out = s.cli(&["lag"], &[("SECKILL_REDIS__TLS__CA_FILE", &wrong_ca)]);
    assert!(!out.status.success());
    refused(
        "seckill lag (Redis)",
        &text(&out),
        &format!("Failed to connect to Redis at rediss://127.0.0.1:{tls_port}/"),
    );
    let out = s.cli(
        &["users", "promote", "ops"],
        &[("SECKILL_MYSQL__TLS__CA_FILE", &wrong_ca)],
    );
    assert!(!out.status.success());
    refused(
        "seckill users promote (MySQL)",
        &text(&out),
        &format!(
            "Failed to connect to MySQL at mysql://{APP_USER}:***@127.0.0.1:{}/seckill?ssl-mode=verify_identity",
            s.db.port
        ),
    );
    let out = s.cli(&["members"], &[("SECKILL_ETCD__TLS__CA_FILE", &wrong_ca)]);
    assert!(!out.status.success());
    refused(
        "seckill members (etcd)",
        &text(&out),
        &format!("Failed to connect to etcd at [{etcd}]"),
    );
    let mut cmd = s.command("seckill-gateway", "gateway");
    cmd.env("SECKILL_AUTH__JWT_SECRET", JWT)
        .env(
            "SECKILL_GATEWAY__LISTEN",
            format!("127.0.0.1:{}", seckill_testkit::free_port()),
        )
        .env("SECKILL_REDIS__TLS__CA_FILE", &wrong_ca);
    let out = s
        .spawn("gateway-wrong-ca", cmd)
        .wait_exit(Duration::from_secs(30));
    refused(
        "seckill-gateway (Redis)",
        &out,
        &format!("Failed to connect to Redis at rediss://127.0.0.1:{tls_port}/"),
    );
    let mut cmd = s.command("seckill-worker", "worker");
    cmd.arg("--migrate")
        .env("SECKILL_MYSQL__MIGRATE_URL", s.owner_url())
        .env("SECKILL_MYSQL__TLS__CA_FILE", &wrong_ca);
    let out = s
        .spawn("worker-wrong-ca", cmd)
        .wait_exit(Duration::from_secs(30));
    refused(
        "seckill-worker --migrate (MySQL)",
        &out,
        &format!(
            "mysql://{OWNER_USER}:***@127.0.0.1:{}/seckill?ssl-mode=verify_identity",
            s.db.port
        ),
    );

    // --- mutual TLS: without its certificate the client is refused.
    let out = s.cli(
        &["lag"],
        &[
            ("SECKILL_REDIS__TLS__CERT_FILE", ""),
            ("SECKILL_REDIS__TLS__KEY_FILE", ""),
        ],
    );
    assert!(
        !out.status.success(),
        "Redis served a client without a certificate: {}",
        text(&out)
    );
    let out = s.cli(
        &["members"],
        &[
            ("SECKILL_ETCD__TLS__CERT_FILE", ""),
            ("SECKILL_ETCD__TLS__KEY_FILE", ""),
        ],
    );
    assert!(
        !out.status.success(),
        "etcd served a client without a certificate: {}",
        text(&out)
    );
}
