//! Admin activity creation (MySQL + Redis preheat) and the public activity views.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use seckill_gateway::auth::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_activities_are_preheated_and_listed_with_live_stock() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let r = app
        .post(
            "/api/v1/admin/activities",
            Some(&admin),
            r#"{"title":"Phone sale","product_name":"phone","price_cents":19900,"stock":5,
                "per_user_limit":2,"start_at":"now","end_at":"2099-01-01T00:00:00Z"}"#,
        )
        .await;
    r.assert_envelope();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let d = r.data();
    let id = d["id"].as_u64().expect("id").to_string();
    assert_eq!(
        (d["stock"].as_u64(), d["remaining"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(d["state"], "open");
    assert_eq!(d["per_user_limit"], 2);
    let st = app.status(&id).await;
    assert_eq!((st["total"].as_str(), st["limit"].as_str()), ("5", "2"));
    assert_eq!(
        st["product"],
        d["product_id"].as_u64().expect("product").to_string()
    );

    // Reuse the product for a second activity.
    let body = format!(
        r#"{{"title":"again","product_id":{},"price_cents":100,"stock":3}}"#,
        d["product_id"]
    );
    let r2 = app
        .post("/api/v1/admin/activities", Some(&admin), body)
        .await;
    assert_eq!(r2.status, StatusCode::CREATED, "{}", r2.body);

    let t = app.token("buyer", Role::User);
    assert_eq!(app.reserve(&t, &id, 2).await.status, StatusCode::OK);
    let r = app.get(&format!("/api/v1/activities/{id}"), None).await;
    r.assert_envelope();
    assert_eq!(r.data()["remaining"].as_u64(), Some(3), "{}", r.body);
    let r = app.get("/api/v1/activities", None).await;
    let list = r.data().as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(
        |a| a["id"].as_u64().map(|n| n.to_string()) == Some(id.clone()) && a["remaining"] == 3
    ));

    for missing in ["/api/v1/activities/999999", "/api/v1/activities/abc"] {
        let r = app.get(missing, None).await;
        r.assert_envelope();
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{missing}"
        );
    }

    // A bad admin body changes nothing.
    let before = app.snapshot().await;
    let r = app
        .post(
            "/api/v1/admin/activities",
            Some(&admin),
            r#"{"title":"x","product_id":424242,"price_cents":1,"stock":1}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused admin body changed something"
    );
}
