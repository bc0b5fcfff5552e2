//! `/ready`: 200 while Redis and MySQL answer, 503 naming what is down otherwise; `/health`
//! (liveness and Redis) is not affected by MySQL.

use crate::helpers::{spawn_app, spawn_redis_only};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_needs_redis_and_mysql() {
    let app = spawn_app().await;
    let r = app.get("/ready", None).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "ready");
    assert_eq!(r.data()["redis"], "up");
    assert_eq!(r.data()["mysql"], "up");

    // A gateway whose MySQL is unreachable is alive (health 200) but not ready.
    let app = spawn_redis_only().await;
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
    let r = app.get("/ready", None).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.error(), "SERVICE_UNAVAILABLE");
    assert_eq!(r.data()["mysql"], "down");
    assert_eq!(r.data()["redis"], "up");
    assert!(r.body["message"].as_str().unwrap_or("").contains("mysql"));
}
