//! The storefront files: served at `/` and `/static/*` from the binary, with the cache headers
//! that keep the sale fast (`no-cache` page, immutable versioned assets, ETag/304), and
//! without disturbing the API routes around them.
//!
//! The first test serves the static filter alone; the second serves the gateway's whole route
//! table (a private redis-server with the module; MySQL is not needed) over a real socket.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use seckill_gateway::config::{Secret, Settings};
use seckill_gateway::startup::Application;
use seckill_gateway::static_files;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves `static_files::routes()` alone on a loopback port until the sender is dropped.
async fn serve_static() -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(static_files::routes())
            .incoming(listener)
            .graceful(async move {
                let _ = rx.await;
            })
            .run(),
    );
    (addr, tx)
}

fn header(res: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `?v=` URL of `name` inside the page.
fn versioned_url(page: &str, name: &str) -> String {
    let start = page
        .find(&format!("/static/{name}?v="))
        .unwrap_or_else(|| panic!("the page does not link a versioned {name}"));
    let end = start + page[start..].find('"').expect("closing quote");
    page[start..end].to_owned()
}

#[tokio::test]
async fn page_and_assets_carry_content_type_and_cache_headers() {
    let (addr, _stop) = serve_static().await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");

    let res = client.get(url("/")).send().await.expect("GET /");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    assert!(header(&res, "content-security-policy".parse().unwrap()).contains("script-src 'self'"));
    let etag = header(&res, ETAG).to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    let page = res.text().await.expect("body");
    assert!(page.contains("<title>seckill"), "not the storefront page");
    assert!(page.contains(r#"aria-live="polite""#));

    // Revalidation of the page is a bodiless 304.
    let res = client
        .get(url("/"))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("GET / again");
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");

    for (name, ctype, marker) in [
        (
            "app.js",
            "text/javascript; charset=utf-8",
            "/api/v1/seckill",
        ),
        ("app.css", "text/css; charset=utf-8", "--accent"),
        ("favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let res = client
            .get(url(&versioned_url(&page, name)))
            .send()
            .await
            .expect("asset");
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(header(&res, CONTENT_TYPE), ctype, "{name}");
        let cache = header(&res, CACHE_CONTROL);
        assert!(
            cache.starts_with("public, max-age=") && cache.contains("immutable"),
            "{name}: {cache}"
        );
        assert_eq!(
            header(&res, "x-content-type-options".parse().unwrap()),
            "nosniff"
        );
        assert!(res.text().await.expect("body").contains(marker), "{name}");
    }

    let res = client
        .head(url("/static/app.js"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE), "text/javascript; charset=utf-8");

    for path in [
        "/static/nope.js",
        "/static/",
        "/static/app.js/x",
        "/api/v1/activities",
        "/index",
    ] {
        let res = client.get(url(path)).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_gateway_serves_the_page_next_to_the_api() {
    let redis = tokio::task::spawn_blocking(seckill_testkit::RedisServer::start)
        .await
        .expect("join")
        .expect("redis-server with the module (run cargo build -p seckill-module)");
    let mut settings = Settings::default();
    settings.gateway.listen = "127.0.0.1:0".into();
    settings.auth.jwt_secret = Some(Secret::new("static-files-test-jwt-secret-0123456789"));
    settings.redis.url = redis.url();
    settings.mysql.url = Secret::new(format!(
        "mysql://root@127.0.0.1:{}/none",
        seckill_testkit::free_port()
    ));
    let app = Application::build(settings).await.expect("gateway builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");

    let res = client.get(url("/")).send().await.expect("GET /");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    assert!(res.headers().contains_key("x-request-id"));
    assert!(res.text().await.expect("body").contains("<title>seckill"));

    let res = client
        .get(url("/static/app.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, CACHE_CONTROL).starts_with("public, max-age="));

    // The API is untouched: JSON envelopes, its own 404 and 405.
    let res = client.get(url("/health")).send().await.expect("health");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE), "application/json");
    for (method, path, status) in [
        ("GET", "/static/missing.js", StatusCode::NOT_FOUND),
        ("GET", "/no/such/route", StatusCode::NOT_FOUND),
        ("POST", "/", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/api/v1/seckill", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let res = client
            .request(method.parse().unwrap(), url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), status, "{method} {path}");
        assert_eq!(
            header(&res, CONTENT_TYPE),
            "application/json",
            "{method} {path}"
        );
        let body: serde_json::Value = res.json().await.expect("envelope");
        assert_eq!(body["code"].as_u64(), Some(u64::from(status.as_u16())));
        assert!(body["error"].is_string());
    }
    let res = client
        .post(url("/api/v1/seckill"))
        .body("{}")
        .send()
        .await
        .expect("seckill");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let _ = tx.send(());
    served.await.expect("gateway stops");
}
