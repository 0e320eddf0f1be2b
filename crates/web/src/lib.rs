//! The disgrafs web page, embedded in the binary.
//!
//! `build.rs` builds `web/` with vite (or writes a fallback page when Node.js is missing) and
//! generates the asset table included below; [`router`] serves it: `/` and `/index.html` get the
//! page (revalidated on every load, so a new binary shows its new page), `/assets/*` get the
//! bundler's content-hashed files (cached for a year, immutable), other root files (the icon) are
//! cached for an hour.
//!
//! Architecture invariant: this crate knows nothing of the API; the page talks to `/api/*` over
//! HTTP, and the server merges this router beside its own.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file of the built page.
pub struct Asset {
    /// Path below the page root, e.g. `assets/index-3f2a9c1b.js`.
    pub path: &'static str,
    pub mime: &'static str,
    /// The name carries a content hash: the bytes behind it never change.
    pub immutable: bool,
    pub etag: &'static str,
    pub bytes: &'static [u8],
}

mod generated {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Whether the real page was built (false: the fallback page that says to install Node.js).
pub const BUILT: bool = generated::BUILT;

/// Every embedded file.
pub fn assets() -> &'static [Asset] {
    generated::ASSETS
}

/// Looks an embedded file up by its path below the page root.
pub fn asset(path: &str) -> Option<&'static Asset> {
    generated::ASSETS.iter().find(|a| a.path == path)
}

/// Routes for `/`, `/login`, `/index.html`, `/assets/{*path}` and the other files at the page root.
pub fn router() -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        // The page, for a one-time login link (`/login#CODE`; the page reads the code).
        .route("/login", get(index))
        .route("/assets/{*path}", get(hashed_asset));
    for a in assets().iter().filter(|a| !a.path.contains('/')) {
        router = router.route(
            &format!("/{}", a.path),
            get(move |headers: HeaderMap| async move { serve(a, &headers) }),
        );
    }
    router
}

async fn index(headers: HeaderMap) -> Response {
    match asset("index.html") {
        Some(a) => serve(a, &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hashed_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match asset(&format!("assets/{path}")) {
        Some(a) => serve(a, &headers),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn serve(a: &'static Asset, request: &HeaderMap) -> Response {
    let cache = if a.immutable {
        "public, max-age=31536000, immutable"
    } else if a.path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=3600"
    };
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    let mut response = if not_modified {
        Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
    } else {
        Response::builder()
            .header(header::CONTENT_TYPE, HeaderValue::from_static(a.mime))
            .body(Body::from(a.bytes))
    }
    .expect("static headers are valid");
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, HeaderValue::from_static(a.etag));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
