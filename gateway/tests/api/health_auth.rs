//! Health, metrics, request ids, register/login, dev-mode admin, role checks.

use crate::helpers::{spawn_app, spawn_redis_only, spawn_with};
use reqwest::StatusCode;
use seckill_gateway::auth::Role;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_healthy_then_503_fast_when_redis_dies() {
    let mut app = spawn_redis_only().await;
    let r = app.get("/health", None).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.data()["status"], "healthy");
    let ts = r.data()["timestamp"].as_str().unwrap_or("");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");

    app.preheat("h1", &["STOCK", "10"]).await;
    app.redis.kill();
    let token = app.token("u1", Role::User);
    for path in ["/health", "/api/v1/seckill"] {
        let started = Instant::now();
        let r = if path == "/health" {
            app.get(path, None).await
        } else {
            app.reserve(&token, "h1", 1).await
        };
        r.assert_envelope();
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?} with Redis down",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_reservations_and_ids_are_echoed() {
    let app = spawn_redis_only().await;
    app.preheat("m1", &["STOCK", "1"]).await;
    let t = app.token("u1", Role::User);
    app.reserve(&t, "m1", 1).await;
    app.reserve(&app.token("u2", Role::User), "m1", 1).await;
    let res = app
        .client
        .get(app.url("/metrics"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-123")
    );
    let text = res.text().await.unwrap_or_default();
    for want in [
        r#"seckill_gateway_http_requests_total{route="seckill",status="200"} 1"#,
        r#"seckill_gateway_http_requests_total{route="seckill",status="409"} 1"#,
        r#"seckill_gateway_reservations_total{outcome="reserved"} 1"#,
        r#"seckill_gateway_reservations_total{outcome="sold_out"} 1"#,
        r#"seckill_gateway_http_request_duration_seconds_bucket{route="seckill""#,
        r#"seckill_gateway_redis_command_duration_seconds_count{command="SECKILL.RESERVE",result="ok"} 1"#,
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    let r = app.get("/nope", None).await;
    assert!(!r.body["error"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_login() {
    let app = spawn_app().await;
    let creds = r#"{"username":"alice","password":"correct-horse"}"#;
    let r = app.post("/api/v1/auth/register", None, creds).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let user_id = r.data()["user_id"].as_str().expect("user_id").to_owned();

    let r = app.post("/api/v1/auth/register", None, creds).await;
    r.assert_envelope();
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "USERNAME_TAKEN")
    );

    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            r#"{"username":"bob","password":"short"}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );

    let r = app.post("/api/v1/auth/login", None, creds).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.data()["token"].as_str().expect("token");
    assert!(
        chrono::DateTime::parse_from_rfc3339(r.data()["expires_at"].as_str().unwrap_or("")).is_ok()
    );
    let caller = app.state.jwt.verify(token).expect("valid token");
    assert_eq!(caller.user.as_str(), user_id);
    assert_eq!(caller.role, Role::User);

    for bad in [
        r#"{"username":"alice","password":"wrong-password"}"#,
        r#"{"username":"nobody","password":"correct-horse"}"#,
    ] {
        let r = app.post("/api/v1/auth/login", None, bad).await;
        r.assert_envelope();
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE role = 'user'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_seeds_admin_and_admin_routes_need_the_role() {
    let app = spawn_with(true, |s| s.gateway.dev_mode = true).await;
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            r#"{"username":"admin","password":"admin"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["role"], "admin");
    let admin = r.data()["token"].as_str().expect("token").to_owned();

    let body = r#"{"title":"t","product_name":"p","price_cents":1,"stock":1}"#;
    let user = app.token("7", Role::User);
    let r = app
        .post("/api/v1/admin/activities", Some(&user), body)
        .await;
    r.assert_envelope();
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let r = app.post("/api/v1/admin/activities", None, body).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let r = app
        .post("/api/v1/admin/activities", Some(&admin), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_without_a_secret_outside_dev_mode() {
    let mut s = seckill_gateway::config::Settings::default();
    s.gateway.listen = "127.0.0.1:0".into();
    let err = seckill_gateway::startup::Application::build(s).await.err();
    let msg = format!("{:#}", err.expect("must refuse"));
    assert!(msg.contains("jwt_secret"), "{msg}");
}
