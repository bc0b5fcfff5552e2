//! The OpenAPI document and the router agree, both ways, and every documented route answers.

use crate::helpers::spawn_app;
use seckill_gateway::routes::ROUTES;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status.as_u16(), 200);
    let doc = r.body;
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "OpenAPI 3 expected"
    );

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed, "openapi.json and routes::ROUTES differ");

    // Each documented route is really routed: never the router's 404 or 405.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "1");
        let r = if method == "GET" {
            app.get(&concrete, None).await
        } else {
            app.post(&concrete, None, "{}").await
        };
        let unrouted = r.status.as_u16() == 405
            || (r.status.as_u16() == 404 && r.body["message"] == "no such route");
        assert!(
            !unrouted,
            "{method} {path} is documented but not routed: {}",
            r.body
        );
    }
}
