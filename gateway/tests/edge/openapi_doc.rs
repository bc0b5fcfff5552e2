//! The served OpenAPI document is well-formed OpenAPI 3 (every reference resolves, every
//! path parameter is declared, every operation answers and names its security; the
//! meta-schema check is `tests/schemathesis.rs`'s) and declares the bounds the gateway
//! enforces, with the values it enforces them with.

use crate::helpers::spawn_redis_only;
use serde_json::Value;

/// Every `$ref` in `v` (JSON pointers into the document).
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_and_declares_the_bounds() {
    let app = spawn_redis_only().await;
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status.as_u16(), 200);
    let doc = r.body;

    // Well-formed (the full check against the OpenAPI 3.1 meta-schema is
    // openapi-spec-validator's, in tests/schemathesis.rs): the required fields...
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3."));
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["info"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    // ...every reference resolves...
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // ...and every operation declares responses, its path parameters, a unique id, and a
    // security scheme that exists.
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let what = format!("{method} {path}");
            assert!(
                !op["responses"].as_object().expect("responses").is_empty(),
                "{what}"
            );
            assert!(ids.insert(op["operationId"].as_str().expect("operationId").to_owned()));
            for param in path.split('/').filter(|s| s.starts_with('{')) {
                let name = param.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                });
                assert!(declared, "{what}: path parameter {name} not declared");
            }
            for req in op["security"].as_array().into_iter().flatten() {
                for name in req.as_object().expect("requirement").keys() {
                    assert!(schemes.contains_key(name), "{what}: unknown scheme {name}");
                }
            }
            for (status, resp) in op["responses"].as_object().expect("responses") {
                assert!(status.parse::<u16>().is_ok(), "{what}: status {status}");
                assert!(resp["description"].is_string(), "{what} {status}");
            }
        }
    }

    // The bounds, as the gateway enforces them.
    let reserve = &doc["paths"]["/api/v1/seckill"]["post"];
    let body = &reserve["requestBody"]["content"]["application/json"]["schema"];
    let q = &body["properties"]["quantity"];
    assert_eq!(
        (q["type"].as_str(), q["minimum"].as_u64()),
        (Some("integer"), Some(1))
    );
    assert_eq!(q["maximum"].as_u64(), Some(seckill_core::limits::MAX_LIMIT));
    assert_eq!(
        body["properties"]["activity_id"]["anyOf"][0]["pattern"],
        "^[A-Za-z0-9_.:-]{1,64}$"
    );
    assert!(
        body["properties"]["admission"].is_object(),
        "the admission field"
    );
    let required: Vec<&str> = body["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["activity_id", "product_id", "quantity"]);
    assert_eq!(
        reserve["requestBody"]["x-max-body-bytes"].as_u64(),
        Some(app.state.settings.gateway.body_limit_bytes)
    );
    for status in ["401", "403", "409", "413", "425", "429"] {
        assert!(
            reserve["responses"][status].is_object(),
            "reserve lacks {status}"
        );
    }
    assert!(reserve["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert!(reserve["responses"]["425"]["headers"]["Retry-After"].is_object());
    let register = &doc["paths"]["/api/v1/auth/register"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"];
    assert_eq!(register["username"]["pattern"], "^[A-Za-z0-9_.-]{3,32}$");
    assert_eq!(
        (
            register["password"]["minLength"].as_u64(),
            register["password"]["maxLength"].as_u64()
        ),
        (Some(8), Some(128))
    );
    let admission = &doc["paths"]["/api/v1/seckill/admission"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"];
    // Optional fields may also be null (the parsers read null as absent).
    assert_eq!(
        admission["nonce"]["anyOf"][0]["pattern"],
        "^[A-Za-z0-9]{1,32}$"
    );
    assert_eq!(admission["nonce"]["anyOf"][1]["type"], "null");
    let order_id = &doc["paths"]["/api/v1/orders/{id}/pay"]["post"]["parameters"][0]["schema"];
    assert_eq!(order_id["pattern"], "^[0-9]{1,20}$");
    let stock = &doc["paths"]["/api/v1/admin/activities"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["stock"];
    assert_eq!(
        stock["maximum"].as_u64(),
        Some(seckill_core::limits::MAX_STOCK)
    );
    // The admin route says who may call it.
    let admin = &doc["paths"]["/api/v1/admin/activities"]["post"];
    assert!(admin["security"][0]["bearer"].is_array());
    assert!(admin["responses"]["403"].is_object());

    // The viewer that renders it offline.
    let page = app.client.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("/static/docs.js?v="), "{html}");
}
