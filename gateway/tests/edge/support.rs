//! What the edge tests share: raw replies with headers, admission calls, minted tokens.

use crate::helpers::{TestApp, SECRET};
use reqwest::StatusCode;
use seckill_core::admission::AdmissionKeys;
use serde_json::Value;

/// A reply with its headers (the helpers' `Reply` drops them).
pub(crate) struct Raw {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Raw {
    pub(crate) fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn send(req: reqwest::RequestBuilder) -> Raw {
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    Raw {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub(crate) async fn post_json(app: &TestApp, path: &str, token: &str, body: Value) -> Raw {
    send(
        app.client
            .post(app.url(path))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

/// `POST /api/v1/seckill/admission` without proof of work.
pub(crate) async fn admission(app: &TestApp, token: &str, activity: &str) -> Raw {
    post_json(
        app,
        "/api/v1/seckill/admission",
        token,
        serde_json::json!({ "activity_id": activity }),
    )
    .await
}

/// `POST /api/v1/seckill` for one unit of `activity` (product `p`), with `admission` if given.
pub(crate) async fn reserve(
    app: &TestApp,
    token: &str,
    activity: &str,
    admission: Option<&str>,
) -> Raw {
    let mut body = serde_json::json!({"activity_id": activity, "product_id": "p", "quantity": 1});
    if let Some(a) = admission {
        body["admission"] = Value::from(a);
    }
    post_json(app, "/api/v1/seckill", token, body).await
}

/// The key the test gateways sign admission tokens with (derived from the JWT secret).
pub(crate) fn keys() -> AdmissionKeys {
    AdmissionKeys::derive(SECRET.as_bytes())
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
