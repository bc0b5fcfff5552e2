//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from the code:
//! the paths and methods come from [`routes::ROUTES`] (one operation per route, found by its
//! label, so a route without a description here makes the build of the document fail loudly
//! in the tests), request bodies from the parsers' own `schema()` functions (built from the
//! constants they check), response data from the response types (`ToSchema`), and the
//! gateway's limits (body size, id alphabet, quantity bounds) from the settings in force.
//!
//! Built once at startup ([`document`]); a small viewer that works offline is at `/docs`.

use crate::config::Settings;
use crate::models::{
    new_activity_schema, ActivityView, AdmissionRequest, AdmissionTicketView, AdmissionView,
    ChallengeRequest, ChallengeView, Credentials, HealthView, LoginView, OrderView, ReadyView,
    RegisteredView, ReservationView, ReserveRequest, ResultView,
};
use crate::routes::{RouteSpec, ROUTES};
use serde_json::json;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ComponentsBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required,
};
use utoipa::{PartialSchema, ToSchema};

/// Schema builders shared by the request types' `schema()` functions.
pub(crate) mod schema {
    use seckill_core::ids::MAX_ID_LEN;
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
    use utoipa::openapi::KnownFormat;

    fn described(b: ObjectBuilder, desc: &str) -> ObjectBuilder {
        b.description((!desc.is_empty()).then(|| desc.to_owned()))
    }

    /// The id alphabet of `seckill_core::ids` as a pattern.
    pub(crate) fn id_pattern() -> String {
        format!("^[A-Za-z0-9_.:-]{{1,{MAX_ID_LEN}}}$")
    }

    /// An id: a string in the id alphabet, or a non-negative integer. (`anyOf`, not `oneOf`:
    /// the alternatives never overlap, and generators need not check that they do not.)
    pub(crate) fn id(desc: &str) -> Schema {
        AnyOfBuilder::new()
            .description(Some(desc))
            .item(string("", 1, MAX_ID_LEN, Some(&id_pattern())))
            .item(integer("", 0, u64::MAX))
            .into()
    }

    pub(crate) fn integer(desc: &str, min: u64, max: u64) -> Schema {
        described(ObjectBuilder::new().schema_type(Type::Integer), desc)
            .minimum(Some(usize::try_from(min).unwrap_or(usize::MAX)))
            .maximum(Some(usize::try_from(max).unwrap_or(usize::MAX)))
            .into()
    }

    pub(crate) fn string(desc: &str, min: usize, max: usize, pattern: Option<&str>) -> Schema {
        described(ObjectBuilder::new().schema_type(Type::String), desc)
            .min_length(Some(min))
            .max_length(Some(max))
            .pattern(pattern)
            .into()
    }

    pub(crate) fn date_time(desc: &str) -> Schema {
        described(ObjectBuilder::new().schema_type(Type::String), desc)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }

    pub(crate) fn constant(value: &str, desc: &str) -> Schema {
        described(ObjectBuilder::new().schema_type(Type::String), desc)
            .enum_values(Some([value]))
            .into()
    }

    pub(crate) fn any_of(desc: &str, items: Vec<Schema>) -> Schema {
        let mut b = AnyOfBuilder::new().description(Some(desc));
        for i in items {
            b = b.item(i);
        }
        b.into()
    }

    /// A JSON object with these properties (name, schema, required). Unknown properties are
    /// ignored by the parsers, so they are allowed; the parsers read `null` as "absent", so
    /// an optional property may be null (a required one may not).
    pub(crate) fn object(desc: &str, props: &[(&str, Schema, bool)]) -> Schema {
        let mut b = described(ObjectBuilder::new().schema_type(Type::Object), desc);
        for (name, s, required) in props {
            if *required {
                b = b.property(*name, s.clone()).required(*name);
            } else {
                let null = ObjectBuilder::new().schema_type(Type::Null);
                b = b.property(*name, AnyOfBuilder::new().item(s.clone()).item(null));
            }
        }
        b.into()
    }
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Anyone,
    User,
    Admin,
}

/// What the success reply carries.
enum Data {
    /// `data` is this component (by name).
    One(&'static str),
    /// `data` is an array of this component.
    Many(&'static str),
    /// Not an envelope: another content type.
    Raw(&'static str, Box<Schema>),
}

/// One operation's description: everything but its method and path (those are the route's).
struct Doc {
    summary: &'static str,
    tag: &'static str,
    auth: Auth,
    body: Option<Schema>,
    /// Path parameter `{id}`: a numeric id.
    path_id: bool,
    /// Query parameter `activity_id` (required).
    query_activity: bool,
    ok: (u16, Data),
    errors: &'static [u16],
    /// Also answers 202 with the `ok` data when replicas did not confirm in time.
    pending: bool,
    description: &'static str,
}

fn doc(route: &RouteSpec) -> Option<Doc> {
    let d = |summary, tag, auth, ok, errors| Doc {
        summary,
        tag,
        auth,
        body: None,
        path_id: false,
        query_activity: false,
        ok,
        errors,
        description: "",
        pending: false,
    };
    Some(match route.label {
        "seckill" => Doc {
            body: Some(ReserveRequest::schema()),
            description: "The hot path: one atomic SECKILL.RESERVE. When the activity requires \
                admission, `admission` must carry a token from POST /api/v1/seckill/admission \
                for this user and activity, unexpired, whose turn has come (425 until then); \
                without one: 403 ADMISSION_REQUIRED / ADMISSION_INVALID / ADMISSION_EXPIRED, \
                409 ADMISSION_USED, and nothing changes. Refusals: 409 SOLD_OUT / \
                LIMIT_EXCEEDED, 403 NOT_STARTED, 410 ENDED, 404 NO_ACTIVITY. With \
                redis.min_replicas > 0 the answer is 200 only once that many replicas hold the \
                reservation; 202 with status `pending` when they did not confirm in time (GET \
                /api/v1/seckill/result tells the outcome).",
            pending: true,
            ..d(
                "Reserve units of an activity",
                "sale",
                Auth::User,
                (200, Data::One("ReservationView")),
                &[400, 401, 403, 404, 409, 410, 411, 413, 425, 429, 503],
            )
        },
        "seckill_challenge" => Doc {
            body: Some(ChallengeRequest::schema()),
            description: "A signed proof-of-work challenge for this user and activity (any \
                time before the sale ends, valid for admission.challenge_ttl_secs). Find letters \
                and digits `nonce` such that SHA-256(challenge + \":\" + nonce) starts with \
                `difficulty` zero bits, then ask for admission with both.",
            ..d(
                "Get a proof-of-work challenge",
                "sale",
                Auth::User,
                (200, Data::One("ChallengeView")),
                &[400, 401, 404, 409, 410, 411, 413, 429, 503],
            )
        },
        "seckill_admission" => Doc {
            body: Some(AdmissionRequest::schema()),
            description: "An admission token for this user and activity, issued once the sale \
                has opened (403 NOT_STARTED before). With proof of work (difficulty > 0) it \
                needs a solved challenge (403 POW_REQUIRED / POW_INVALID). Tokens asked for in \
                the opening window are usable in a random order over the following window \
                (`not_before`, `wait_ms`).",
            ..d(
                "Get an admission token",
                "sale",
                Auth::User,
                (200, Data::One("AdmissionTicketView")),
                &[400, 401, 403, 404, 409, 410, 411, 413, 429, 503],
            )
        },
        "seckill_result" => Doc {
            query_activity: true,
            ..d(
                "The caller's reservation outcome",
                "sale",
                Auth::User,
                (200, Data::One("ResultView")),
                &[400, 401, 404, 429, 503],
            )
        },
        "health" => d(
            "Liveness (Redis reachable)",
            "system",
            Auth::Anyone,
            (200, Data::One("HealthView")),
            &[429, 503],
        ),
        "ready" => d(
            "Readiness (Redis and MySQL reachable)",
            "system",
            Auth::Anyone,
            (200, Data::One("ReadyView")),
            &[429, 503],
        ),
        "metrics" => d(
            "Prometheus metrics",
            "system",
            Auth::Anyone,
            (
                200,
                Data::Raw(
                    "text/plain",
                    Box::new(ObjectBuilder::new().schema_type(Type::String).into()),
                ),
            ),
            &[429],
        ),
        "openapi" => d(
            "This document",
            "system",
            Auth::Anyone,
            (
                200,
                Data::Raw(
                    "application/json",
                    Box::new(ObjectBuilder::new().schema_type(Type::Object).into()),
                ),
            ),
            &[429],
        ),
        "register" => Doc {
            body: Some(Credentials::schema_new()),
            description: "Hashing is bounded: when too many logins and registrations wait, 503 \
                OVERLOADED with Retry-After. Limited per client and per username (429).",
            ..d(
                "Create an account",
                "accounts",
                Auth::Anyone,
                (201, Data::One("RegisteredView")),
                &[400, 409, 411, 413, 429, 503],
            )
        },
        "login" => Doc {
            body: Some(Credentials::schema_login()),
            description: "Hashing is bounded: when too many logins and registrations wait, 503 \
                OVERLOADED with Retry-After. Limited per client and per username (429).",
            ..d(
                "Log in (a JWT)",
                "accounts",
                Auth::Anyone,
                (200, Data::One("LoginView")),
                &[400, 401, 411, 413, 429, 503],
            )
        },
        "activities" => d(
            "Activities with live stock (cached up to gateway.cache_refresh_ms)",
            "activities",
            Auth::Anyone,
            (200, Data::Many("ActivityView")),
            &[429, 503],
        ),
        "activity" => Doc {
            path_id: true,
            ..d(
                "One activity with live stock",
                "activities",
                Auth::Anyone,
                (200, Data::One("ActivityView")),
                &[404, 429, 503],
            )
        },
        "orders" => d(
            "The caller's orders, newest first",
            "orders",
            Auth::User,
            (200, Data::Many("OrderView")),
            &[401, 429, 503],
        ),
        "order_pay" => Doc {
            path_id: true,
            ..d(
                "Pay a pending order",
                "orders",
                Auth::User,
                (200, Data::One("OrderView")),
                &[401, 404, 409, 429, 503],
            )
        },
        "order_cancel" => Doc {
            path_id: true,
            ..d(
                "Cancel a pending order (its stock goes back on sale)",
                "orders",
                Auth::User,
                (200, Data::One("OrderView")),
                &[401, 404, 409, 429, 503],
            )
        },
        "admin_create_activity" => Doc {
            body: Some(new_activity_schema()),
            description: "The caller's role is checked in the database on every admin request: \
                a demoted admin is refused at once.",
            ..d(
                "Create (and preheat) an activity",
                "admin",
                Auth::Admin,
                (201, Data::One("ActivityView")),
                &[400, 401, 403, 409, 411, 413, 429, 503],
            )
        },
        _ => return None,
    })
}

fn reason(status: u16) -> &'static str {
    warp::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// The success envelope around `data`.
fn envelope(data: RefOr<Schema>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .description(Some("= the HTTP status")),
        )
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .property("data", data)
        .required("code")
        .required("message")
        .required("data")
        .into()
}

/// The refusal envelope.
fn error_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Every refusal: `code` = the HTTP status, `error` = the machine code (e.g. SOLD_OUT, \
             RATE_LIMITED, TOO_EARLY), `data` null or details (`retry_after_ms`, `not_before` on \
             425; what is down on 503 of /health and /ready).",
        ))
        .property("code", ObjectBuilder::new().schema_type(Type::Integer))
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some("null, or details of the refusal")),
        )
        .property("error", ObjectBuilder::new().schema_type(Type::String))
        .required("code")
        .required("message")
        .required("data")
        .required("error")
        .into()
}

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The document, for these settings (the body limit is theirs).
pub(crate) fn document(settings: &Settings) -> Result<OpenApi, String> {
    let body_limit = settings.gateway.body_limit_bytes;
    let mut paths = Paths::new();
    for route in ROUTES {
        let d = doc(route).ok_or_else(|| {
            format!(
                "route {} {} has no OpenAPI description",
                route.method, route.path
            )
        })?;
        let mut op = OperationBuilder::new()
            .summary(Some(d.summary))
            .description((!d.description.is_empty()).then_some(d.description))
            .operation_id(Some(route.label))
            .tag(d.tag);
        match d.auth {
            Auth::Anyone => {
                op = op.securities(Some(Vec::<SecurityRequirement>::new()));
            }
            Auth::User | Auth::Admin => {
                op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
            }
        }
        if d.path_id {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some("A numeric id (unknown or malformed: 404)."))
                    .schema(Some(schema::string("", 1, 20, Some("^[0-9]{1,20}$")))),
            );
        }
        if d.query_activity {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("activity_id")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .schema(Some(schema::string(
                        "The activity.",
                        1,
                        seckill_core::ids::MAX_ID_LEN,
                        Some(&schema::id_pattern()),
                    ))),
            );
        }
        let has_body = d.body.is_some();
        if let Some(body) = d.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .description(Some(format!(
                        "At most {body_limit} bytes (gateway.body_limit_bytes: 413 beyond, 411 \
                         without Content-Length, 408 when it does not arrive within the request \
                         deadline)."
                    )))
                    .content("application/json", json_content(body))
                    .extensions(Some(
                        ExtensionsBuilder::new()
                            .add("x-max-body-bytes", json!(body_limit))
                            .build(),
                    ))
                    .build(),
            ));
        }
        let pending = match (&d.ok.1, d.pending) {
            (Data::One(name), true) => Some(*name),
            _ => None,
        };
        let (status, data) = d.ok;
        let ok = match data {
            Data::One(name) => ResponseBuilder::new().description(reason(status)).content(
                "application/json",
                json_content(envelope(Ref::from_schema_name(name).into())),
            ),
            Data::Many(name) => ResponseBuilder::new().description(reason(status)).content(
                "application/json",
                json_content(envelope(
                    ArrayBuilder::new()
                        .items(Ref::from_schema_name(name))
                        .build()
                        .into(),
                )),
            ),
            Data::Raw(content_type, schema) => ResponseBuilder::new()
                .description(reason(status))
                .content(content_type, json_content(*schema)),
        };
        op = op.response(status.to_string(), ok.build());
        if let Some(name) = pending {
            {
                op = op.response(
                    "202",
                    ResponseBuilder::new()
                        .description(
                            "held, but not yet confirmed on redis.min_replicas replicas in time \
                             (status pending): GET /api/v1/seckill/result tells the outcome",
                        )
                        .content(
                            "application/json",
                            json_content(envelope(Ref::from_schema_name(name).into())),
                        )
                        .build(),
                );
            }
        }
        let mut errors: Vec<u16> = d.errors.to_vec();
        if d.auth == Auth::Admin {
            errors.push(403);
        }
        if has_body {
            // A body that trickles (408), has no length (411) or is too long (413).
            errors.extend([408, 411, 413]);
        }
        errors.sort_unstable();
        errors.dedup();
        for e in errors {
            let mut r = ResponseBuilder::new().description(reason(e)).content(
                "application/json",
                json_content(Ref::from_schema_name("Error")),
            );
            if matches!(e, 425 | 429 | 503) {
                r = r.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1)),
                        )
                        .description(Some("Seconds to wait before trying again."))
                        .build(),
                );
            }
            op = op.response(e.to_string(), r.build());
        }
        let method = match route.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            other => return Err(format!("route method {other} is not described")),
        };
        paths.add_path_operation(route.path, vec![method], op.build());
    }
    let mut components = ComponentsBuilder::new()
        .schema("Error", error_schema())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    for (name, schema) in [
        (ActivityView::name(), ActivityView::schema()),
        (AdmissionView::name(), AdmissionView::schema()),
        (OrderView::name(), OrderView::schema()),
        (HealthView::name(), HealthView::schema()),
        (ReadyView::name(), ReadyView::schema()),
        (RegisteredView::name(), RegisteredView::schema()),
        (LoginView::name(), LoginView::schema()),
        (ReservationView::name(), ReservationView::schema()),
        (ResultView::name(), ResultView::schema()),
        (ChallengeView::name(), ChallengeView::schema()),
        (AdmissionTicketView::name(), AdmissionTicketView::schema()),
    ] {
        components = components.schema(name, schema);
    }
    Ok(OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("seckill gateway")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Every JSON reply is the envelope {code, message, data} (+ error on \
                     refusals); code equals the HTTP status. A method a path does not serve gets \
                     405 with Allow. Clients are rate-limited (429 RATE_LIMITED, Retry-After).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_and_the_document_serializes() {
        let doc = document(&Settings::default()).unwrap();
        let text = doc.to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(
            v["paths"]["/api/v1/seckill"]["post"]["requestBody"]["x-max-body-bytes"],
            16384
        );
    }
}
