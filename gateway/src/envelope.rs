//! The JSON envelope of every reply: `{"code": <status>, "message": <text>, "data": <object|null>}`,
//! plus `"error": "<MACHINE_CODE>"` on refusals. Built only here.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a, T: Serialize> {
    pub code: u16,
    pub message: &'a str,
    pub data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// A success reply with `data`.
pub(crate) fn ok<T: Serialize>(status: StatusCode, data: T) -> Response {
    let body = Envelope {
        code: status.as_u16(),
        message: "ok",
        data: Some(data),
        error: None,
    };
    json(status, &body)
}

/// A refusal: `data` is null and `error` carries the machine code.
pub(crate) fn refusal(status: StatusCode, error: &str, message: &str) -> Response {
    let body: Envelope<'_, ()> = Envelope {
        code: status.as_u16(),
        message,
        data: None,
        error: Some(error),
    };
    json(status, &body)
}

/// A refusal that still carries data (e.g. `/health` reporting what is down).
pub(crate) fn refusal_with<T: Serialize>(
    status: StatusCode,
    error: &str,
    message: &str,
    data: T,
) -> Response {
    let body = Envelope {
        code: status.as_u16(),
        message,
        data: Some(data),
        error: Some(error),
    };
    json(status, &body)
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // Serializing plain structs of strings and numbers cannot fail; keep a fallback anyway so
    // a reply is never lost.
    let text = serde_json::to_string(body).unwrap_or_else(|_| {
        r#"{"code":500,"message":"reply could not be encoded","data":null,"error":"INTERNAL"}"#
            .to_owned()
    });
    let mut res = Response::new(text.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    // Every "not now" answer says when to come back (callers may set a later one).
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from_static("1"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> serde_json::Value {
        use http_body_util::BodyExt;
        let bytes = res.into_body().collect().await.map(|c| c.to_bytes());
        serde_json::from_slice(&bytes.unwrap_or_default()).unwrap_or_default()
    }

    #[tokio::test]
    async fn success_has_code_message_data_and_no_error() {
        let res = ok(StatusCode::OK, serde_json::json!({"a": 1}));
        assert_eq!(res.status(), StatusCode::OK);
        let v = body(res).await;
        assert_eq!(
            v,
            serde_json::json!({"code": 200, "message": "ok", "data": {"a": 1}})
        );
    }

    #[tokio::test]
    async fn refusal_code_equals_status_and_carries_machine_code() {
        let res = refusal(StatusCode::CONFLICT, "SOLD_OUT", "sold out");
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(
            res.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let v = body(res).await;
        assert_eq!(
            v,
            serde_json::json!({"code": 409, "message": "sold out", "data": null, "error": "SOLD_OUT"})
        );
    }
}
