//! Redis at `maxmemory` (policy `noeviction`) refuses the sale's writes: the gateway answers a
//! clear 503 envelope, not a 500 or a hang, and nothing is half-written (stock, buyer and
//! stream entry all there, or none). Once memory is available the sale goes on.

use crate::helpers::spawn_redis_only;
use reqwest::StatusCode;
use seckill_gateway::auth::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_is_a_clean_503_and_changes_nothing() {
    let app = spawn_redis_only().await;
    app.preheat("m1", &["STOCK", "10"]).await;
    let before = (app.status("m1").await, app.xlen("m1").await);
    // Below what Redis already uses: every deny-oom command is refused from now on.
    app.redis(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .await
        .expect("policy");
    app.redis(&["CONFIG", "SET", "maxmemory", "1"])
        .await
        .expect("maxmemory");
    let token = app.token("u1", Role::User);
    let r = app.reserve(&token, "m1", 1).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.error(), "SERVICE_UNAVAILABLE");
    assert_eq!(
        (app.status("m1").await, app.xlen("m1").await),
        before,
        "a refused reservation changed the activity"
    );
    assert_eq!(
        app.redis(&["SECKILL.HELD", "m1", "u1"]).await.ok(),
        Some(redis::Value::Int(0)),
        "no buyer recorded"
    );

    app.redis(&["CONFIG", "SET", "maxmemory", "0"])
        .await
        .expect("maxmemory off");
    let r = app.reserve(&token, "m1", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.xlen("m1").await, before.1 + 1);
}
