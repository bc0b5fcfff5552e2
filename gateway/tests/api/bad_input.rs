//! Bad input of every kind gets a 4xx envelope and changes nothing in Redis or MySQL.

use crate::helpers::spawn_app;
use seckill_gateway::auth::{Claims, Jwt, Role};

/// URL-safe base64 without padding, as JWT segments are written (to forge them).
fn b64url(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_envelope_and_changes_nothing() {
    let app = spawn_app().await;
    let activity = app.create_activity(10, "").await;
    let good = app.token("42", Role::User);

    let claims = Claims {
        sub: "42".into(),
        role: Role::Admin,
        exp: now() + 3600,
        iat: now(),
    };
    let payload = b64url(
        serde_json::to_string(&claims)
            .unwrap_or_default()
            .as_bytes(),
    );
    let alg_none = format!("{}.{payload}.", b64url(br#"{"alg":"none","typ":"JWT"}"#));
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = payload.clone(); // claims admin with the user's signature
        parts.join(".")
    };
    let wrong_key = Jwt::new(b"some-other-secret-some-other-secret!", 3600)
        .issue("42", Role::User, now())
        .map(|t| t.0)
        .unwrap_or_default();
    let expired = Jwt::new(crate::helpers::SECRET.as_bytes(), 60)
        .issue("42", Role::User, now() - 7200)
        .map(|t| t.0)
        .unwrap_or_default();

    let product = app
        .status(&activity)
        .await
        .remove("product")
        .unwrap_or_default();
    assert!(
        !product.is_empty(),
        "admin-created activities name their product"
    );
    let ok_body = format!(r#"{{"activity_id":{activity},"product_id":"{product}","quantity":1}}"#);
    let body_cases: Vec<(&str, String, u16)> = vec![
        ("malformed JSON", "{\"activity_id\":".into(), 400),
        ("not an object", "[1,2]".into(), 400),
        ("empty body without Content-Length", String::new(), 411),
        (
            "wrong types",
            r#"{"activity_id":true,"product_id":{},"quantity":"1"}"#.into(),
            400,
        ),
        ("missing fields", r#"{"activity_id":1}"#.into(), 400),
        (
            "quantity 0",
            ok_body.replace("\"quantity\":1", "\"quantity\":0"),
            400,
        ),
        (
            "quantity -1",
            ok_body.replace("\"quantity\":1", "\"quantity\":-1"),
            400,
        ),
        (
            "quantity huge",
            ok_body.replace("\"quantity\":1", "\"quantity\":1e20"),
            400,
        ),
        (
            "quantity float",
            ok_body.replace("\"quantity\":1", "\"quantity\":1.5"),
            400,
        ),
        (
            "quantity over limit",
            ok_body.replace("\"quantity\":1", "\"quantity\":5"),
            409,
        ),
        (
            "another activity's product",
            ok_body.replace(
                &format!("\"product_id\":\"{product}\""),
                "\"product_id\":\"999999\"",
            ),
            400,
        ),
        (
            "bad id chars",
            r#"{"activity_id":"a{x}","product_id":"p","quantity":1}"#.into(),
            400,
        ),
        (
            "unknown activity",
            r#"{"activity_id":"987654","product_id":"p","quantity":1}"#.into(),
            404,
        ),
    ];
    let token_cases: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        ("tampered claims", tampered),
        ("wrong key", wrong_key),
        ("expired", expired),
        ("malformed", "abc.def.ghi".into()),
        ("garbage", "%%%".into()),
    ];

    // Some state a bad request could disturb: a user, a reservation in the stream.
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            r#"{"username":"carol","password":"correct-horse"}"#,
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(
        app.reserve(&app.token("7", Role::User), &activity, 1)
            .await
            .status
            .as_u16(),
        200
    );
    let before = app.snapshot().await;

    for (name, body, status) in body_cases {
        let r = app.post("/api/v1/seckill", Some(&good), body).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.body);
        r.assert_envelope();
    }
    for (name, token) in &token_cases {
        let r = app
            .post("/api/v1/seckill", Some(token), ok_body.clone())
            .await;
        assert_eq!(r.status.as_u16(), 401, "{name}: {}", r.body);
        r.assert_envelope();
        assert_eq!(r.error(), "UNAUTHORIZED");
        let r = app
            .post(
                "/api/v1/admin/activities",
                Some(token),
                r#"{"title":"t","product_name":"p","price_cents":1,"stock":1}"#,
            )
            .await;
        assert_eq!(r.status.as_u16(), 401, "admin with {name}: {}", r.body);
    }
    // Other endpoints: bad bodies and paths.
    let others: Vec<(&str, &str, String, u16)> = vec![
        ("POST", "/api/v1/auth/register", "{".into(), 400),
        (
            "POST",
            "/api/v1/auth/register",
            r#"{"username":1,"password":2}"#.into(),
            400,
        ),
        (
            "POST",
            "/api/v1/auth/login",
            r#"{"username":"x"}"#.into(),
            400,
        ),
        (
            "POST",
            "/api/v1/admin/activities",
            r#"{"title":"t","stock":-5}"#.into(),
            400,
        ),
        ("GET", "/api/v1/seckill", String::new(), 405),
        ("GET", "/no/such/route", String::new(), 404),
    ];
    let admin = app.admin_token();
    for path in [
        "/api/v1/seckill",
        "/api/v1/auth/register",
        "/api/v1/admin/activities",
    ] {
        let r = app.post_oversized(path, &admin, 10 * 1024 * 1024).await;
        assert_eq!(r.status.as_u16(), 413, "10 MB body to {path}: {}", r.body);
        r.assert_envelope();
        assert_eq!(r.error(), "PAYLOAD_TOO_LARGE");
    }
    for (method, path, body, status) in others {
        let r = if method == "GET" {
            app.get(path, Some(&good)).await
        } else {
            app.post(path, Some(&admin), body).await
        };
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        r.assert_envelope();
    }

    // Not a row, not a key: MySQL and Redis are exactly as before.
    assert_eq!(app.snapshot().await, before, "bad input changed something");
}
