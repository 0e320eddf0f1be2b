//! Downloads: Range (single, suffix, open, multiple, unsatisfiable), conditional requests, HEAD,
//! Content-Disposition.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG};

fn get(s: &Server, id: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut r = s.http().get(format!("{}/api/files/{id}/content", s.url));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().unwrap()
}

#[test]
fn single_ranges() {
    let s = Server::start();
    let data = bytes(1000, 1);
    let id = s.put_ok("r.bin", &data)["id"].as_str().unwrap().to_owned();
    for (range, lo, hi) in [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=0-5000", 0, 999),
    ] {
        let r = get(&s, &id, &[("range", range)]);
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()[CONTENT_RANGE],
            format!("bytes {lo}-{hi}/1000").as_str(),
            "{range}"
        );
        assert_eq!(
            r.headers()[CONTENT_LENGTH],
            (hi - lo + 1).to_string().as_str()
        );
        assert_eq!(r.bytes().unwrap().as_ref(), &data[lo..=hi], "{range}");
    }
}

#[test]
fn unsatisfiable_and_malformed_ranges() {
    let s = Server::start();
    let id = s.put_ok("r.bin", &bytes(100, 2))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for range in ["bytes=100-", "bytes=200-300", "bytes=50-10"] {
        let r = get(&s, &id, &[("range", range)]);
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(r.headers()[CONTENT_RANGE], "bytes */100");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["code"], "range_not_satisfiable");
    }
    // A Range that is not a well-formed byte range, or asks for too many, is ignored: 200.
    let many = format!(
        "bytes={}",
        (0..40)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for range in ["bytes=abc", "items=0-1", many.as_str()] {
        let r = get(&s, &id, &[("range", range)]);
        assert_eq!(r.status(), 200, "{range}");
        assert_eq!(r.bytes().unwrap().len(), 100);
    }
    // Any range of an empty file is unsatisfiable; the whole of it is fine.
    let empty = s.put_ok("empty", b"")["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&s, &empty, &[("range", "bytes=0-")]).status(), 416);
    let r = get(&s, &empty, &[]);
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()[CONTENT_LENGTH].to_str().unwrap()
        ),
        (200, "0")
    );
}

#[test]
fn multiple_ranges_are_multipart_byteranges() {
    let s = Server::start();
    let data = bytes(5000, 3);
    let id = s.put_ok("m.bin", &data)["id"].as_str().unwrap().to_owned();
    let r = get(&s, &id, &[("range", "bytes=0-9,100-199,-10")]);
    assert_eq!(r.status(), 206);
    let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(&ct)
        .to_owned();
    let declared: usize = r.headers()[CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().unwrap().to_vec();
    assert_eq!(body.len(), declared);
    // Split on the boundary and check each part's Content-Range and bytes.
    let delim = format!("\r\n--{boundary}");
    let text_parts: Vec<&[u8]> = split(&body, delim.as_bytes());
    let parts: Vec<&[u8]> = text_parts
        .into_iter()
        .filter(|p| p.starts_with(b"\r\n"))
        .collect();
    assert_eq!(parts.len(), 3);
    for (part, (lo, hi)) in parts
        .iter()
        .zip([(0usize, 9usize), (100, 199), (4990, 4999)])
    {
        let head_end = find(part, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&part[..head_end]);
        assert!(
            head.contains(&format!("Content-Range: bytes {lo}-{hi}/5000")),
            "{head}"
        );
        assert_eq!(&part[head_end + 4..], &data[lo..=hi]);
    }
    assert!(body.ends_with(format!("--{boundary}--\r\n").as_bytes()));
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn split<'a>(mut h: &'a [u8], d: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(h, d) {
        out.push(&h[..i]);
        h = &h[i + d.len()..];
    }
    out.push(h);
    out
}

#[test]
fn etag_head_and_conditional_requests() {
    let s = Server::start();
    let data = bytes(4096, 4);
    let rec = s.put_ok("c.bin", &data);
    let id = rec["id"].as_str().unwrap();
    let etag = format!("\"{}\"", rec["hash"].as_str().unwrap());
    let r = get(&s, id, &[]);
    assert_eq!(r.headers()[ETAG], etag.as_str());
    assert_eq!(get(&s, id, &[("if-none-match", &etag)]).status(), 304);
    assert_eq!(
        get(&s, id, &[("if-none-match", "\"other\", *")]).status(),
        304
    );
    assert_eq!(get(&s, id, &[("if-none-match", "\"other\"")]).status(), 200);
    // If-Range with a stale tag: the whole file, not the range.
    let r = get(&s, id, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().len(), 4096);
    let r = get(&s, id, &[("range", "bytes=0-9"), ("if-range", &etag)]);
    assert_eq!(r.status(), 206);
    // HEAD: the headers of GET, no body.
    let h = s
        .http()
        .head(format!("{}/api/files/{id}/content", s.url))
        .send()
        .unwrap();
    assert_eq!(h.status(), 200);
    assert_eq!(h.headers()[CONTENT_LENGTH], "4096");
    assert_eq!(h.headers()[ETAG], etag.as_str());
    assert!(h.bytes().unwrap().is_empty());
    let r = s
        .http()
        .get(format!("{}/api/files/no-such-id/content", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["code"], "not_found");
}

#[test]
fn content_disposition_carries_utf8_names() {
    let s = Server::start();
    let name = "报告 \"final\" 2026.pdf";
    let id = s.put_ok(name, b"%PDF-1.4\n")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(&s, &id, &[]);
    let cd = r.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cd.starts_with("attachment; filename=\""), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%22final%22%202026.pdf"),
        "{cd}"
    );
    let inline = s
        .http()
        .get(format!("{}/api/files/{id}/content?inline=1", s.url))
        .send()
        .unwrap();
    assert!(
        inline.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    // Active content is never shown inline from this origin, whatever its name says.
    let html = s.put_ok("report.pdf", b"<!doctype html><script>alert(1)</script>")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .http()
        .get(format!("{}/api/files/{html}/content?inline=1", s.url))
        .send()
        .unwrap();
    assert!(
        r.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
}
