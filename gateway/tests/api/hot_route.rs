//! `POST /api/v1/seckill` is served by the listener without warp's filter tree
//! (`src/hot_route.rs`). These requests go both ways, over HTTP to the gateway (the hot path)
//! and through `routes::all` (the warp route it replaces), each with its own buyer so neither
//! disturbs the other's limits, and must get the same status, headers and body.

use crate::helpers::{spawn_with, TestApp};
use seckill_gateway::auth::Role;
use serde_json::Value;

/// What a reply says, with what differs by nature blanked: the reservation id (each side
/// reserves its own), the buyer's id in messages (`side`: each side has its own buyers), the
/// headers hyper adds on the wire (`date`, `content-length`: the bodies are compared) and
/// the echoed `x-request-id`.
#[derive(Debug, PartialEq)]
struct Said {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn said(side: &str, status: u16, headers: &warp::http::HeaderMap, body: &[u8]) -> Said {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "content-length" | "x-request-id"))
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("<bytes>").to_owned(),
            )
        })
        .collect();
    headers.sort();
    let body = String::from_utf8_lossy(body).replace(&format!("'{side}"), "'<buyer>");
    let mut body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(id) = body.pointer_mut("/data/reservation_id") {
        *id = Value::from("<id>");
    }
    Said {
        status,
        headers,
        body,
    }
}

/// One request: the `Authorization` header, the body (`None`: no body, no Content-Length).
struct Case {
    name: &'static str,
    auth: Option<String>,
    body: Option<String>,
}

async fn hot(app: &TestApp, side: &str, case: &Case) -> Said {
    let mut req = app
        .client
        .post(app.url("/api/v1/seckill"))
        .header("content-type", "application/json");
    if let Some(a) = &case.auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = &case.body {
        req = req.body(b.clone());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("body");
    said(side, status, &headers, &body)
}

async fn through_warp(app: &TestApp, side: &str, case: &Case) -> Said {
    let mut req = warp::test::request()
        .method("POST")
        .path("/api/v1/seckill")
        .header("content-type", "application/json");
    if let Some(a) = &case.auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = &case.body {
        req = req.body(b.clone());
    }
    let res = req
        .reply(&seckill_gateway::routes::all(app.state.clone()))
        .await;
    said(side, res.status().as_u16(), res.headers(), res.body())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_route_answers_as_the_warp_route_did() {
    let app = spawn_with(true, |s| {
        // Two requests per buyer, then 429 (the bucket does not refill during the test).
        s.rate_limit.per_user_per_second = 1;
        s.rate_limit.per_user_burst = 2;
        s.gateway.body_limit_bytes = 512;
    })
    .await;
    let activity = app.create_activity(100, "").await;
    let product = app
        .status(&activity)
        .await
        .remove("product")
        .unwrap_or_default();
    let ok = format!(r#"{{"activity_id":"{activity}","product_id":"{product}","quantity":1}}"#);
    let bearer = |user: &str| Some(format!("Bearer {}", app.token(user, Role::User)));

    // Each case is sent as `h<n>` (hot) and `w<n>` (warp); the repeated ones show the limits.
    let cases = |side: &str| -> Vec<Case> {
        let u = |n: u32| format!("{side}{n}");
        vec![
            Case {
                name: "no token",
                auth: None,
                body: Some(ok.clone()),
            },
            Case {
                name: "not a bearer token",
                auth: Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".into()),
                body: Some(ok.clone()),
            },
            Case {
                name: "a forged token",
                auth: Some("Bearer abc.def.ghi".into()),
                body: Some(ok.clone()),
            },
            Case {
                name: "no body, no Content-Length",
                auth: bearer(&u(1)),
                body: None,
            },
            Case {
                name: "a body over the limit",
                auth: bearer(&u(2)),
                body: Some(format!("{ok}{}", " ".repeat(600))),
            },
            Case {
                name: "malformed JSON",
                auth: bearer(&u(3)),
                body: Some("{\"activity_id\":".into()),
            },
            Case {
                name: "an unknown activity",
                auth: bearer(&u(4)),
                body: Some(r#"{"activity_id":"987654","product_id":"p","quantity":1}"#.into()),
            },
            Case {
                name: "a winning reservation",
                auth: bearer(&u(5)),
                body: Some(ok.clone()),
            },
            Case {
                name: "the same buyer again: over the per-user purchase limit",
                auth: bearer(&u(5)),
                body: Some(ok.clone()),
            },
            Case {
                name: "the same buyer a third time: over the per-user rate",
                auth: bearer(&u(5)),
                body: Some(ok.clone()),
            },
        ]
    };
    let (hot_cases, warp_cases) = (cases("1000"), cases("2000"));
    for (h, w) in hot_cases.iter().zip(&warp_cases) {
        let (a, b) = (
            hot(&app, "1000", h).await,
            through_warp(&app, "2000", w).await,
        );
        assert_eq!(a, b, "{}: hot (left) and warp (right) differ", h.name);
    }
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for c in cases("3000") {
            v.push(hot(&app, "3000", &c).await.status);
        }
        v
    };
    assert_eq!(
        statuses,
        [401, 401, 401, 411, 413, 400, 404, 200, 409, 429],
        "the cases must cover what they name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_route_echoes_the_request_id_limits_the_client_and_is_counted() {
    let app = spawn_with(false, |s| {
        s.rate_limit.per_ip_per_second = 1;
        s.rate_limit.per_ip_burst = 3;
    })
    .await;
    let token = app.token("7", Role::User);
    let send = |id: &'static str| {
        app.client
            .post(app.url("/api/v1/seckill"))
            .bearer_auth(&token)
            .header("x-request-id", id)
            .header("content-type", "application/json")
            .body(r#"{"activity_id":"987654","product_id":"p","quantity":1}"#)
            .send()
    };
    let mut statuses = Vec::new();
    for id in ["req-1", "req-2", "req-3", "req-4"] {
        let res = send(id).await.expect("request");
        assert_eq!(
            res.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some(id)
        );
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [404, 404, 404, 429], "the per-client limit");
    // Through the routes directly: over HTTP this client is past its limit.
    let res = warp::test::request()
        .path("/metrics")
        .reply(&seckill_gateway::routes::all(app.state.clone()))
        .await;
    let metrics = String::from_utf8_lossy(res.body()).into_owned();
    for line in [
        r#"http_requests_total{route="seckill",status="404"} 3"#,
        r#"http_requests_total{route="seckill",status="429"} 1"#,
        r#"http_request_duration_seconds_count{route="seckill"} 4"#,
    ] {
        assert!(
            metrics.lines().any(|l| l.ends_with(line)),
            "no `{line}` in /metrics:\n{metrics}"
        );
    }
}
