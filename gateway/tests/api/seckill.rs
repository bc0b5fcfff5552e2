//! The hot path: happy path, every refusal code, the sold-out flag, races.

use crate::helpers::{spawn_app, spawn_redis_only, spawn_with};
use futures::StreamExt;
use reqwest::StatusCode;
use seckill_gateway::auth::Role;
use std::time::{Duration, Instant};

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
    let r2 = app.reserve(&u("u2"), "open", 1).await;
    assert_eq!(r2.status, StatusCode::OK, "{}", r2.body);
    let rid2 = r2.data()["reservation_id"]
        .as_str()
        .expect("reservation id");
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
    // The two successes, and nothing else, are in the stream under their own users.
    assert_eq!(
        app.stream_entries("open").await,
        [
            (rid.to_owned(), "u1".to_owned()),
            (rid2.to_owned(), "u2".to_owned())
        ]
    );
    for other in ["later", "over", "missing"] {
        assert_eq!(
            app.xlen(other).await,
            0,
            "a refusal wrote to {other}'s stream"
        );
    }
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
    const TTL: Duration = Duration::from_millis(1_000);
    let app = spawn_with(false, |s| {
        s.gateway.sold_out_ttl_ms = TTL.as_millis() as u64
    })
    .await;
    app.preheat("so", &["STOCK", "1"]).await;
    let u = |n: &str| app.token(n, Role::User);
    let r = app.reserve(&u("a"), "so", 1).await;
    let rid = r.data()["reservation_id"].as_str().expect("rid").to_owned();
    // The flag is set while b's request is in flight: not before `armed`, at the latest by
    // `armed_by`.
    let armed = Instant::now();
    assert_eq!(app.reserve(&u("b"), "so", 1).await.error(), "SOLD_OUT");
    let armed_by = Instant::now();
    // Stock comes back behind the gateway's back (as the worker's sweeper would do it).
    app.redis(&["SECKILL.RELEASE", "so", &rid])
        .await
        .expect("release");
    assert_eq!(app.status("so").await["remaining"], "1");
    // Within the flag's lifetime the gateway still answers locally, without asking Redis...
    let r = app.reserve(&u("c"), "so", 1).await;
    assert!(
        armed.elapsed() < TTL,
        "the machine is too slow to observe a {TTL:?} flag: {:?} passed",
        armed.elapsed()
    );
    assert_eq!(r.error(), "SOLD_OUT", "{}", r.body);
    assert_eq!(
        app.status("so").await["remaining"],
        "1",
        "the flag must not touch Redis"
    );
    // ...and once it expired the released unit is sold again: no undersell. Polled: every
    // answer before that is the flag's (Redis still has the unit), and the sale comes no
    // earlier than the flag's lifetime and not much later.
    let deadline = armed_by + TTL + Duration::from_secs(3);
    let sold_at = loop {
        let r = app.reserve(&u("c"), "so", 1).await;
        if r.status == StatusCode::OK {
            break Instant::now();
        }
        assert_eq!(r.error(), "SOLD_OUT", "{}", r.body);
        assert_eq!(app.status("so").await["remaining"], "1", "answered locally");
        assert!(
            Instant::now() < deadline,
            "released stock still hidden {:?} after the flag was set (ttl {TTL:?})",
            armed_by.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        sold_at >= armed + TTL,
        "the flag expired after {:?}, before its ttl {TTL:?}",
        sold_at - armed
    );
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
    let won = replies
        .iter()
        .find(|r| r.status == StatusCode::OK)
        .and_then(|r| r.data()["reservation_id"].as_str())
        .expect("reservation id");
    assert_eq!(
        app.stream_entries("dup").await,
        [(won.to_owned(), "clicker".to_owned())],
        "one reservation, the one answered, in the stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_race_for_100_and_exactly_100_orders_exist() {
    let mut app = spawn_app().await;
    let activity = app.create_activity(100, "").await;
    let users: Vec<String> = (0..2000).map(|i| format!("racer{i}")).collect();
    let tokens: Vec<String> = users.iter().map(|u| app.token(u, Role::User)).collect();
    let (app_ref, act) = (&app, activity.as_str());
    let replies: Vec<_> = futures::stream::iter(users.iter().zip(&tokens))
        .map(|(u, t)| async move { (u.clone(), app_ref.reserve(t, act, 1).await) })
        .buffer_unordered(200)
        .collect()
        .await;
    // What the gateway acknowledged: (activity, reservation id, user) of every 200.
    let mut acknowledged: Vec<(u64, String, String)> = replies
        .iter()
        .filter(|(_, r)| r.status == StatusCode::OK)
        .map(|(u, r)| {
            let rid = r.data()["reservation_id"].as_str().expect("reservation id");
            (
                activity.parse().expect("numeric id"),
                rid.to_owned(),
                u.clone(),
            )
        })
        .collect();
    acknowledged.sort();
    let sold_out = replies
        .iter()
        .filter(|(_, r)| (r.status, r.error()) == (StatusCode::CONFLICT, "SOLD_OUT"))
        .count();
    assert_eq!(acknowledged.len(), 100, "exactly the stock must be sold");
    assert_eq!(sold_out, 1900, "everyone else is told SOLD_OUT");
    let st = app.status(&activity).await;
    assert_eq!(
        (st["remaining"].as_str(), st["buyers"].as_str()),
        ("0", "100")
    );
    // Each acknowledged id is the stream entry of the user it was answered to.
    let mut in_stream: Vec<(u64, String, String)> = app
        .stream_entries(&activity)
        .await
        .into_iter()
        .map(|(id, user)| (activity.parse().expect("numeric id"), id, user))
        .collect();
    in_stream.sort();
    assert_eq!(
        in_stream, acknowledged,
        "the stream holds what was acknowledged"
    );

    // The worker turns exactly the acknowledged reservations into orders: once it has
    // drained the stream (lag 0, nothing pending) MySQL holds that set, no row more or less.
    app.start_worker().await;
    app.wait_drained(Duration::from_secs(60)).await;
    assert_eq!(
        app.orders().await,
        acknowledged,
        "orders in MySQL (activity, reservation id, user) != the acknowledged reservations"
    );
}
