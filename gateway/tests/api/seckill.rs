//! The hot path: happy path, every refusal code, the sold-out flag, races.

use crate::helpers::{spawn_app, spawn_redis_only, spawn_with};
use futures::StreamExt;
use reqwest::StatusCode;
use seckill_gateway::auth::Role;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_succeeds_and_every_refusal_maps_to_its_code() {
    let app = spawn_redis_only().await;
    app.preheat("open", &["STOCK", "2", "LIMIT", "1"]).await;
    app.preheat("later", &["STOCK", "2", "START", "9999999999000"])
        .await;
    app.preheat("over", &["STOCK", "2", "START", "1", "END", "2"])
        .await;
    let u = |n: &str| app.token(n, Role::User);

    let r = app.reserve(&u("u1"), "open", 1).await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "queued");
    let rid = r.data()["reservation_id"].as_str().expect("reservation id");
    assert!(rid.contains('-'), "stream id expected, got {rid}");

    let cases = [
        ("u1", "open", 1, StatusCode::CONFLICT, "LIMIT_EXCEEDED"),
        ("u2", "open", 2, StatusCode::CONFLICT, "LIMIT_EXCEEDED"),
        ("u3", "later", 1, StatusCode::FORBIDDEN, "NOT_STARTED"),
        ("u3", "over", 1, StatusCode::GONE, "ENDED"),
        ("u3", "missing", 1, StatusCode::NOT_FOUND, "NO_ACTIVITY"),
        ("u3", "open", 0, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
    ];
    for (user, act, qty, status, code) in cases {
        let r = app.reserve(&u(user), act, qty).await;
        r.assert_envelope();
        assert_eq!(
            (r.status, r.error()),
            (status, code),
            "{user} {act} {qty}: {}",
            r.body
        );
        assert!(r.data().is_null());
    }
    assert_eq!(
        app.reserve(&u("u2"), "open", 1).await.status,
        StatusCode::OK
    );
    let r = app.reserve(&u("u4"), "open", 1).await;
    assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "SOLD_OUT"));

    let r = app
        .post(
            "/api/v1/seckill",
            None,
            r#"{"activity_id":"open","product_id":"p","quantity":1}"#,
        )
        .await;
    r.assert_envelope();
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert_eq!(app.status("open").await["remaining"], "0");
    assert_eq!(app.xlen("open").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_hammering_gets_429_but_a_fast_human_does_not() {
    let app = spawn_with(false, |s| {
        s.rate_limit.per_user_per_second = 5;
        s.rate_limit.per_user_burst = 10;
    })
    .await;
    app.preheat("rl", &["STOCK", "100"]).await;
    let t = app.token("bot", Role::User);
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(app.reserve(&t, "rl", 1).await);
    }
    let limited: Vec<_> = codes
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        !limited.is_empty(),
        "30 back-to-back requests must hit the limit"
    );
    limited[0].assert_envelope();
    assert_eq!(limited[0].error(), "RATE_LIMITED");
    // A person clicking 5 times quickly stays well inside the burst.
    let human = app.token("human", Role::User);
    for _ in 0..5 {
        assert_ne!(
            app.reserve(&human, "rl", 1).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sold_out_flag_short_circuits_then_expires_so_released_stock_sells() {
    let app = spawn_with(false, |s| s.gateway.sold_out_ttl_ms = 400).await;
    app.preheat("so", &["STOCK", "1"]).await;
    let u = |n: &str| app.token(n, Role::User);
    let r = app.reserve(&u("a"), "so", 1).await;
    let rid = r.data()["reservation_id"].as_str().expect("rid").to_owned();
    assert_eq!(app.reserve(&u("b"), "so", 1).await.error(), "SOLD_OUT");
    // Stock comes back behind the gateway's back (as the worker's sweeper would do it).
    app.redis(&["SECKILL.RELEASE", "so", &rid])
        .await
        .expect("release");
    // Within the flag's lifetime the gateway still answers locally...
    assert_eq!(app.reserve(&u("c"), "so", 1).await.error(), "SOLD_OUT");
    assert_eq!(
        app.status("so").await["remaining"],
        "1",
        "the flag must not touch Redis"
    );
    // ...and after it the released unit is sold again: no undersell.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = app.reserve(&u("c"), "so", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.status("so").await["remaining"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_user_clicking_20_times_in_parallel_gets_one() {
    let app = spawn_redis_only().await;
    app.preheat("dup", &["STOCK", "10", "LIMIT", "1"]).await;
    let t = app.token("clicker", Role::User);
    let replies = futures::future::join_all((0..20).map(|_| app.reserve(&t, "dup", 1))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::CONFLICT, "LIMIT_EXCEEDED")
        );
    }
    let st = app.status("dup").await;
    assert_eq!(
        (st["remaining"].as_str(), st["buyers"].as_str()),
        ("9", "1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_race_for_100_and_exactly_100_orders_exist() {
    let mut app = spawn_app().await;
    let activity = app.create_activity(100, "").await;
    let tokens: Vec<String> = (0..2000)
        .map(|i| app.token(&format!("racer{i}"), Role::User))
        .collect();
    let replies: Vec<_> = futures::stream::iter(tokens.iter())
        .map(|t| app.reserve(t, &activity, 1))
        .buffer_unordered(200)
        .collect()
        .await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let sold_out = replies
        .iter()
        .filter(|r| (r.status, r.error()) == (StatusCode::CONFLICT, "SOLD_OUT"))
        .count();
    assert_eq!(won, 100, "exactly the stock must be sold");
    assert_eq!(sold_out, 1900, "everyone else is told SOLD_OUT");
    let st = app.status(&activity).await;
    assert_eq!(
        (st["remaining"].as_str(), st["buyers"].as_str()),
        ("0", "100")
    );
    assert_eq!(app.xlen(&activity).await, 100);

    // The worker turns the 100 reservations into exactly 100 orders.
    app.start_worker().await;
    let sql = format!("SELECT COUNT(*) FROM orders WHERE activity_id = {activity}");
    let done = app
        .eventually(Duration::from_secs(30), || async {
            app.count(&sql).await == 100
        })
        .await;
    assert!(done, "orders: {}", app.count(&sql).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count(&sql).await, 100, "no extra orders");
}
