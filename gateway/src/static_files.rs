//! The storefront: the files of `gateway/static/`, embedded in the binary (so it serves them
//! from any working directory) and served at `/` (the page), `/docs` (the API's OpenAPI
//! document, rendered offline by `docs.js`) and `/static/<name>` (assets).
//!
//! Caching keeps the sale fast without ever showing a stale page after a deploy:
//! - `index.html` is `Cache-Control: no-cache` (revalidated on every visit, cheaply, with its
//!   `ETag`) and refers to each asset as `/static/<name>?v=<content hash>`;
//! - assets are `public, max-age=31536000, immutable`: a new build changes the hash in the
//!   page, hence the URL, so browsers and CDNs never need to revalidate them.
//!
//! Every reply carries a strong `ETag` and answers `If-None-Match` with 304. The page gets a
//! strict Content-Security-Policy (same-origin scripts, styles and API calls only).

use std::sync::OnceLock;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// One embedded file.
struct Asset {
    /// Name under `/static/`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX_HTML: &str = include_str!("../static/index.html");
const DOCS_HTML: &str = include_str!("../static/docs.html");

/// The assets, in the order their URLs are versioned inside `index.html`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../static/app.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../static/favicon.svg"),
    },
    Asset {
        name: "docs.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../static/docs.css"),
    },
    Asset {
        name: "docs.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../static/docs.js"),
    },
];

/// `Cache-Control` of `index.html`.
pub const INDEX_CACHE_CONTROL: &str = "no-cache";
/// `Cache-Control` of the assets (their URLs change with their content).
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A file ready to serve: its body and strong ETag.
struct Served {
    body: &'static [u8],
    etag: String,
    content_type: &'static str,
    cache_control: &'static str,
    is_page: bool,
}

/// FNV-1a, 64 bits: a stable content fingerprint for ETags and `?v=` (not a security hash).
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `index.html` with every `"/static/<name>"` reference turned into `"/static/<name>?v=<hash>"`.
pub fn versioned_index(html: &str, assets: &[(&str, &[u8])]) -> String {
    assets.iter().fold(html.to_owned(), |page, (name, bytes)| {
        page.replace(
            &format!("\"/static/{name}\""),
            &format!("\"/static/{name}?v={}\"", fingerprint(bytes)),
        )
    })
}

/// The pages (`/`, `/docs`) and the assets.
struct Files {
    index: Served,
    docs: Served,
    assets: Vec<(&'static str, Served)>,
}

fn served() -> &'static Files {
    static SERVED: OnceLock<Files> = OnceLock::new();
    SERVED.get_or_init(|| {
        let pairs: Vec<(&str, &[u8])> = ASSETS.iter().map(|a| (a.name, a.bytes)).collect();
        let page = |html: &str| {
            let body: &'static [u8] = Box::leak(
                versioned_index(html, &pairs)
                    .into_bytes()
                    .into_boxed_slice(),
            );
            Served {
                body,
                etag: format!("\"{}\"", fingerprint(body)),
                content_type: "text/html; charset=utf-8",
                cache_control: INDEX_CACHE_CONTROL,
                is_page: true,
            }
        };
        let assets = ASSETS
            .iter()
            .map(|a| {
                let s = Served {
                    body: a.bytes,
                    etag: format!("\"{}\"", fingerprint(a.bytes)),
                    content_type: a.content_type,
                    cache_control: ASSET_CACHE_CONTROL,
                    is_page: false,
                };
                (a.name, s)
            })
            .collect();
        Files {
            index: page(INDEX_HTML),
            docs: page(DOCS_HTML),
            assets,
        }
    })
}

/// Whether an `If-None-Match` value matches `etag` (`*`, a list, weak forms included).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

fn respond(file: &Served, if_none_match: Option<String>) -> Response {
    let fresh = if_none_match.is_some_and(|v| etag_matches(&v, &file.etag));
    let mut res = if fresh {
        let mut r = Response::new(bytes::Bytes::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(file.body.into())
    };
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(h, header::CACHE_CONTROL, file.cache_control);
    set(h, header::ETAG, &file.etag);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !fresh {
        set(h, header::CONTENT_TYPE, file.content_type);
    }
    if file.is_page {
        set(h, header::CONTENT_SECURITY_POLICY, CSP);
        set(h, header::REFERRER_POLICY, "no-referrer");
        set(h, header::X_FRAME_OPTIONS, "DENY");
    }
    res
}

fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

fn if_none_match(
) -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("if-none-match")
        .or(warp::any().map(|| None))
        .unify()
}

/// `GET|HEAD /`, `GET|HEAD /docs` and `GET|HEAD /static/<name>`; anything else is rejected
/// as not found, so the API's routes and rejections are unaffected.
pub fn routes() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let index = warp::path::end()
        .and(get_or_head())
        .and(if_none_match())
        .map(|inm: Option<String>| respond(&served().index, inm));
    let docs = warp::path!("docs")
        .and(get_or_head())
        .and(if_none_match())
        .map(|inm: Option<String>| respond(&served().docs, inm));
    let asset = warp::path("static")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(get_or_head())
        .and(if_none_match())
        .and_then(|name: String, inm: Option<String>| async move {
            served()
                .assets
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, file)| respond(file, inm))
                .ok_or_else(warp::reject::not_found)
        });
    index.or(docs).or(asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_content_dependent() {
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }

    #[test]
    fn index_refers_to_versioned_assets() {
        let page = &served().index;
        let html = std::str::from_utf8(page.body).unwrap_or_default();
        for a in ASSETS.iter().filter(|a| !a.name.starts_with("docs.")) {
            let want = format!("\"/static/{}?v={}\"", a.name, fingerprint(a.bytes));
            assert!(html.contains(&want), "index.html lacks {want}");
        }
        assert!(!html.contains("\"/static/app.js\""));
    }

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        for name in ["app.css", "app.js", "favicon.svg"] {
            assert!(
                INDEX_HTML.contains(&format!("\"/static/{name}\"")),
                "{name}"
            );
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
        }
        for name in ["docs.css", "docs.js", "favicon.svg"] {
            assert!(DOCS_HTML.contains(&format!("\"/static/{name}\"")), "{name}");
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
        }
    }

    #[test]
    fn if_none_match_forms() {
        let e = "\"abc\"";
        assert!(etag_matches("\"abc\"", e));
        assert!(etag_matches("W/\"abc\"", e));
        assert!(etag_matches("\"x\", \"abc\"", e));
        assert!(etag_matches("*", e));
        assert!(!etag_matches("\"abd\"", e));
        assert!(!etag_matches("", e));
    }
}
