//! Result polling, order listing, pay and cancel (with the real worker writing the orders).

use crate::helpers::{spawn_app, TestApp};
use reqwest::StatusCode;
use seckill_gateway::auth::Role;
use std::time::Duration;

async fn wait_for_order(app: &TestApp, token: &str, activity: &str) -> u64 {
    let path = format!("/api/v1/seckill/result?activity_id={activity}");
    let mut last = serde_json::Value::Null;
    for _ in 0..150 {
        let r = app.get(&path, Some(token)).await;
        if r.data()["status"] == "success" {
            return r.data()["order_id"].as_u64().expect("order id");
        }
        last = r.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no order for {activity}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_polling_pay_and_cancel() {
    let mut app = spawn_app().await;
    let activity = app.create_activity(5, "").await;
    let alice = app.token("101", Role::User);
    let bob = app.token("102", Role::User);
    let carol = app.token("103", Role::User);
    let result = format!("/api/v1/seckill/result?activity_id={activity}");

    let r = app.get(&result, Some(&alice)).await;
    r.assert_envelope();
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "NOT_FOUND"),
        "no reservation yet"
    );
    let r = app.get("/api/v1/seckill/result", Some(&alice)).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );

    assert_eq!(
        app.reserve(&alice, &activity, 1).await.status,
        StatusCode::OK
    );
    assert_eq!(app.reserve(&bob, &activity, 1).await.status, StatusCode::OK);
    let r = app.get(&result, Some(&alice)).await;
    assert_eq!(
        r.data()["status"],
        "queued",
        "before the worker runs: {}",
        r.body
    );

    app.start_worker().await;
    let alice_order = wait_for_order(&app, &alice, &activity).await;
    let bob_order = wait_for_order(&app, &bob, &activity).await;

    let r = app.get("/api/v1/orders", Some(&alice)).await;
    r.assert_envelope();
    let list = r.data().as_array().expect("orders");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["id"].as_u64(), list[0]["status"].as_str()),
        (Some(alice_order), Some("pending"))
    );
    assert_eq!(list[0]["amount_cents"], 999);

    // Pay: pending -> paid once; then no longer pending.
    let pay = format!("/api/v1/orders/{alice_order}/pay");
    let r = app.post(&pay, Some(&alice), "").await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "paid");
    for path in [pay.clone(), format!("/api/v1/orders/{alice_order}/cancel")] {
        let r = app.post(&path, Some(&alice), "").await;
        r.assert_envelope();
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::CONFLICT, "ORDER_NOT_PENDING"),
            "{path}"
        );
    }
    // Someone else's order is not found.
    let r = app
        .post(&format!("/api/v1/orders/{bob_order}/pay"), Some(&alice), "")
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::NOT_FOUND, "NOT_FOUND"));

    // Cancel: pending -> cancelled, stock back exactly once, released_at set.
    assert_eq!(app.status(&activity).await["remaining"], "3");
    let cancel = format!("/api/v1/orders/{bob_order}/cancel");
    let r = app.post(&cancel, Some(&bob), "").await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "cancelled");
    assert!(r.data()["released_at"].is_string(), "{}", r.body);
    assert_eq!(app.status(&activity).await["remaining"], "4");
    let r = app.post(&cancel, Some(&bob), "").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "ORDER_NOT_PENDING")
    );
    assert_eq!(
        app.status(&activity).await["remaining"],
        "4",
        "released once"
    );
    let r = app.get(&result, Some(&bob)).await;
    assert_eq!(r.data()["status"], "failed", "{}", r.body);
    // After a cancel the user may buy again.
    assert_eq!(app.reserve(&bob, &activity, 1).await.status, StatusCode::OK);

    // Paying after the window closed is refused and changes nothing.
    let short = app.create_activity(5, r#","payment_window_secs":1"#).await;
    assert_eq!(app.reserve(&carol, &short, 1).await.status, StatusCode::OK);
    let carol_order = wait_for_order(&app, &carol, &short).await;
    // Past the window by the database's clock, which is what the pay statement compares.
    let expired =
        format!("SELECT COUNT(*) FROM orders WHERE id = {carol_order} AND expires_at < NOW(3)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.count(&expired).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "order {carol_order} never passed its 1 s payment window"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = app.snapshot().await;
    let r = app
        .post(
            &format!("/api/v1/orders/{carol_order}/pay"),
            Some(&carol),
            "",
        )
        .await;
    r.assert_envelope();
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "ORDER_NOT_PENDING"),
        "{}",
        r.body
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused late payment changed something"
    );

    let r = app.post("/api/v1/orders/abc/pay", Some(&carol), "").await;
    assert_eq!((r.status, r.error()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
}
