//! Roles and methods: a demoted admin is refused on the very next admin request (the role is
//! read from the database, not from the day-long token); a wrong method gets 405 with `Allow`.

use crate::helpers::spawn_app;
use reqwest::StatusCode;

const NEW_ACTIVITY: &str = r#"{"title":"t","product_name":"p","price_cents":1,"stock":1}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admin_is_refused_on_the_next_admin_request() {
    let app = spawn_app().await;
    let creds = r#"{"username":"boss","password":"correct-horse"}"#;
    let r = app.post("/api/v1/auth/register", None, creds).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let pool = app.pool().await;
    seckill_db::users::set_role(&pool, "boss", "admin")
        .await
        .expect("promote");
    let r = app.post("/api/v1/auth/login", None, creds).await;
    assert_eq!(r.data()["role"], "admin", "{}", r.body);
    let token = r.data()["token"].as_str().expect("token").to_owned();
    let r = app
        .post("/api/v1/admin/activities", Some(&token), NEW_ACTIVITY)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Demoted: the token still says admin for a day, the database says otherwise.
    seckill_db::users::set_role(&pool, "boss", "user")
        .await
        .expect("demote");
    let before = app.count("SELECT COUNT(*) FROM activities").await;
    let r = app
        .post("/api/v1/admin/activities", Some(&token), NEW_ACTIVITY)
        .await;
    r.assert_envelope();
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "{}",
        r.body
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM activities").await, before);
    // Deleted altogether: the same.
    sqlx::query("DELETE FROM users WHERE username = 'boss'")
        .execute(&pool)
        .await
        .expect("delete");
    let r = app
        .post("/api/v1/admin/activities", Some(&token), NEW_ACTIVITY)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_gets_405_with_allow() {
    let app = crate::helpers::spawn_redis_only().await;
    let table = [
        ("GET", "/api/v1/seckill", "POST"),
        ("DELETE", "/health", "GET"),
        ("PUT", "/api/v1/orders/7/pay", "POST"),
        ("POST", "/api/v1/activities", "GET"),
        ("PATCH", "/", "GET, HEAD"),
        ("POST", "/docs", "GET, HEAD"),
    ];
    for (method, path, allow) in table {
        let res = app
            .client
            .request(method.parse().expect("method"), app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            res.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body: serde_json::Value = res.json().await.expect("envelope");
        assert_eq!(body["error"], "METHOD_NOT_ALLOWED");
    }
    // A path nobody serves is a 404 whatever the method.
    let res = app
        .client
        .delete(app.url("/no/such/thing"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
