//! The page may not be framed by other sites and loads nothing from elsewhere; stored files,
//! PDFs included, carry a policy of their own.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

fn csp(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn the_page_cannot_be_framed_and_loads_only_from_here() {
    let s = Server::start();
    for path in ["/", "/index.html"] {
        let r = s.http().get(format!("{}{path}", s.url)).send().unwrap();
        if r.status() == 404 {
            continue; // `/index.html` is not a route of every build
        }
        assert_eq!(r.status(), 200, "{path}");
        let policy = csp(&r);
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy:?}"
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        // Images (the Markdown preview's too) only from this origin, data: and blob: URLs.
        let img = policy
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("img-src"))
            .unwrap_or_else(|| panic!("no img-src in {policy:?}"));
        assert_eq!(img, "img-src 'self' data: blob:");
        assert!(!policy.contains("http:") && !policy.contains("https:") && !policy.contains('*'));
    }
}

#[test]
fn stored_files_carry_their_own_policy() {
    let s = Server::start();
    let pdf = s.put_ok("doc.pdf", b"%PDF-1.4\n%%EOF\n")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let html = s.put_ok("page.html", b"<script>alert(1)</script>")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |id: &str| {
        s.http()
            .get(format!("{}/api/files/{id}/content?inline=1", s.url))
            .send()
            .unwrap()
    };
    let r = get(&pdf);
    assert!(csp(&r).contains("frame-ancestors 'self'"), "{:?}", csp(&r));
    let r = get(&html);
    let policy = csp(&r);
    assert!(policy.contains("sandbox") && policy.contains("default-src 'none'"));
    // Not the page's policy: a stored HTML file is never treated as the page.
    assert!(!policy.contains("script-src 'self'"), "{policy:?}");
}
