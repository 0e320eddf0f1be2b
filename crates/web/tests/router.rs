//! The embedded page's router: content types, cache headers, conditional requests, 404s.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

async fn get(
    path: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let res = disgrafs_web::router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        to_bytes(body, usize::MAX).await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn index_is_html_and_revalidated() {
    let (status, headers, body) = get("/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<title>disgrafs"), "{html}");
    if !disgrafs_web::BUILT {
        assert!(html.contains("install Node.js and npm, then rebuild"));
    }
}

#[tokio::test]
async fn etag_gives_not_modified() {
    let (_, headers, _) = get("/", None).await;
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, headers, body) = get("/", Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers[header::ETAG], etag.as_str());
}

#[tokio::test]
async fn hashed_assets_are_immutable_with_their_type() {
    if !disgrafs_web::BUILT {
        eprintln!(
            "skipped: the page was not built (no Node.js), only the fallback page is embedded"
        );
        return;
    }
    let js = disgrafs_web::assets()
        .iter()
        .find(|a| a.path.starts_with("assets/") && a.path.ends_with(".js"))
        .expect("a script");
    let (status, headers, body) = get(&format!("/{}", js.path), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(body, js.bytes);
    let css = disgrafs_web::assets()
        .iter()
        .find(|a| a.path.ends_with(".css"))
        .expect("a style sheet");
    let (_, headers, _) = get(&format!("/{}", css.path), None).await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let (status, headers, _) = get("/favicon.svg", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=3600");
}

#[tokio::test]
async fn every_script_the_page_loads_is_embedded() {
    let html =
        String::from_utf8(disgrafs_web::asset("index.html").unwrap().bytes.to_vec()).unwrap();
    let refs = |attr: &str| {
        html.split(&format!("{attr}=\"/"))
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for part in refs("src").iter().chain(&refs("href")) {
        let path = &part[..part.find('"').unwrap()];
        if !path.is_empty() && !path.starts_with("api/") {
            assert!(
                disgrafs_web::asset(path).is_some(),
                "index.html refers to /{path}, which is not embedded"
            );
        }
    }
}

#[tokio::test]
async fn unknown_asset_is_404() {
    let (status, _, _) = get("/assets/nope-123.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
