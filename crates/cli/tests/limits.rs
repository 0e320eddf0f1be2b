//! Every request is bounded: bodies read into memory, multipart headers and parts, tags per
//! request; idle and slow clients cannot stop the server from serving others.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;

/// Asserts the JSON error shape with `code` and `status`.
fn refused(r: reqwest::blocking::Response, status: u16, code: &str) {
    assert_eq!(r.status().as_u16(), status);
    let v: serde_json::Value = r.json().expect("a JSON error body");
    assert_eq!(v["code"], code, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(!msg.is_empty() && !msg.contains('\n'), "{v}");
}

fn file_id(s: &Server) -> String {
    s.put_ok("a.txt", b"alpha")["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn json_bodies_are_bounded() {
    let s = Server::start();
    let id = file_id(&s);
    // A tag over a MiB long: refused while reading, whether or not the file exists.
    let huge = format!("{{\"tags\":[\"{}\"]}}", "x".repeat((1 << 20) + (64 << 10)));
    for target in [id.as_str(), "x"] {
        let r = s
            .http()
            .post(format!("{}/api/files/{target}/tags", s.url))
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .unwrap();
        refused(r, 413, "too_large");
    }
    // Too many tags in a small body.
    let many: Vec<String> = (0..5_000).map(|i| format!("t{i}")).collect();
    let r = s
        .http()
        .post(format!("{}/api/files/{id}/tags", s.url))
        .json(&serde_json::json!({ "tags": many }))
        .send()
        .unwrap();
    refused(r, 413, "too_large");
    // The file id is checked before any tag is looked at.
    let r = s
        .http()
        .post(format!("{}/api/files/nope/tags", s.url))
        .json(&serde_json::json!({ "tags": ["a", "a", "b"] }))
        .send()
        .unwrap();
    refused(r, 404, "not_found");
    // Duplicates collapse to one tag.
    let rec = s.tag(&id, &["dup", "Dup", "dup"]);
    let dups = rec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "dup")
        .count();
    assert_eq!(dups, 1, "{rec}");
}

fn multipart(s: &Server, body: Vec<u8>) -> reqwest::blocking::Response {
    s.http()
        .post(format!("{}/api/files", s.url))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body(body)
        .send()
        .unwrap()
}

/// A multipart body of `n` small file parts.
fn parts(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..n {
        write!(
            body,
            "--XYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"p{i}.txt\"\r\n\r\npart {i}\r\n"
        )
        .unwrap();
    }
    body.extend_from_slice(b"--XYZ--\r\n");
    body
}

#[test]
fn multipart_headers_and_parts_are_bounded() {
    let s = Server::start();
    // A header block that never ends: refused after a bound, not buffered to the end.
    let mut body =
        b"--XYZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\nX: ".to_vec();
    body.extend(std::iter::repeat_n(b'h', 100 << 10));
    refused(multipart(&s, body), 413, "too_large");
    // Too many parts.
    let body = parts(300);
    refused(multipart(&s, body), 413, "too_large");
    assert_eq!(s.get_json("/api/health")["files"], 0);
    assert_eq!(s.staging_files(), 0);
    // A multipart body within the bounds is stored.
    assert_eq!(multipart(&s, parts(3)).status(), 201);
    assert_eq!(s.get_json("/api/health")["files"], 3);
}

#[test]
fn every_refusal_is_the_json_error_body() {
    let s = Server::start();
    let id = file_id(&s);
    let c = s.http();
    // A missing query field.
    refused(
        c.put(format!("{}/api/files", s.url))
            .body("x")
            .send()
            .unwrap(),
        400,
        "bad_request",
    );
    // A JSON body without its Content-Type, and broken JSON, and JSON of the wrong shape.
    let tags = format!("{}/api/files/{id}/tags", s.url);
    refused(
        c.post(&tags).body("{\"tags\":[\"a\"]}").send().unwrap(),
        415,
        "bad_content_type",
    );
    refused(
        c.post(&tags)
            .header("content-type", "application/json")
            .body("{\"tags\":")
            .send()
            .unwrap(),
        400,
        "bad_request",
    );
    refused(
        c.post(&tags)
            .header("content-type", "application/json")
            .body("{\"tags\":7}")
            .send()
            .unwrap(),
        422,
        "invalid",
    );
    // Multipart with the wrong Content-Type, and without a boundary.
    refused(
        c.post(format!("{}/api/files", s.url))
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .unwrap(),
        415,
        "bad_content_type",
    );
    refused(
        c.post(format!("{}/api/files", s.url))
            .header("content-type", "multipart/form-data; boundary=")
            .body("x")
            .send()
            .unwrap(),
        400,
        "bad_request",
    );
    // A query value of the wrong type, no route, a method the route does not take.
    refused(
        c.get(format!("{}/api/files?limit=many", s.url))
            .send()
            .unwrap(),
        400,
        "bad_request",
    );
    refused(
        c.get(format!("{}/api/nothing-here", s.url)).send().unwrap(),
        404,
        "no_route",
    );
    refused(
        c.patch(format!("{}/api/files", s.url)).send().unwrap(),
        405,
        "method_not_allowed",
    );
}

/// Opens a connection and sends `bytes`, keeping the socket open.
fn hold(s: &Server, bytes: &[u8]) -> TcpStream {
    let mut t = TcpStream::connect(&s.addr).unwrap();
    t.write_all(bytes).unwrap();
    t
}

#[test]
fn slow_clients_do_not_stop_service_for_others() {
    let s = Server::start();
    let data = bytes(200_000, 5);
    let id = s.put_ok("kept.bin", &data)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut held = Vec::new();
    // Connections that never finish their headers.
    for _ in 0..300 {
        held.push(hold(
            &s,
            b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        ));
    }
    // Uploads that announce a body and send none: more than the blocking pool has threads.
    for i in 0..600 {
        let head = format!(
            "PUT /api/files?name=idle{i} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: 1000\r\n\r\n",
            s.addr,
            s.auth_line()
        );
        held.push(hold(&s, head.as_bytes()));
    }
    // And some that send one byte and stall.
    for i in 0..50 {
        let head = format!(
            "PUT /api/files?name=drip{i} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: 1000\r\n\r\nx",
            s.addr,
            s.auth_line()
        );
        held.push(hold(&s, head.as_bytes()));
    }
    // Everyone else is still served: downloads, uploads, queries, resumable uploads.
    assert_eq!(s.content(&id), data);
    let other = s.put_ok("other.txt", b"still here");
    assert_eq!(s.names("name:other"), ["other.txt"]);
    let r = s.tus_create_with(3, b"tus");
    assert_eq!(r.status(), 201);
    assert_eq!(s.get_json("/api/health")["files"], 3);
    assert_eq!(s.content(other["id"].as_str().unwrap()), b"still here");
    drop(held);
}

#[test]
fn an_offset_past_i64_is_past_the_end_not_the_first_page() {
    let s = Server::start();
    file_id(&s);
    for offset in [
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let v = s.get_json(&format!("/api/files?offset={offset}"));
        assert_eq!(
            v["files"].as_array().unwrap().len(),
            0,
            "offset {offset}: {v}"
        );
        assert_eq!(v["total"], 1);
    }
}

#[test]
fn the_openapi_document_declares_what_the_server_enforces() {
    let s = Server::start();
    let doc = s.get_json("/api/openapi.json");
    let params = &doc["paths"]["/api/files"]["get"]["parameters"];
    let param = |name: &str| {
        params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
            .clone()
    };
    assert!(
        param("sort")["schema"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"name".into())
    );
    assert_eq!(
        param("order")["schema"]["enum"],
        serde_json::json!(["asc", "desc"])
    );
    for (path, method) in [
        ("/api/uploads/", "post"),
        ("/api/uploads/{id}", "patch"),
        ("/api/uploads/{id}", "head"),
        ("/api/uploads/{id}", "delete"),
    ] {
        let op = &doc["paths"][path][method];
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"Tus-Resumable"),
            "{method} {path}: {names:?}"
        );
        assert!(
            op["responses"]["412"].is_object(),
            "{method} {path}: no 412"
        );
    }
}

/// Asserts a 429 in the JSON error shape with a `Retry-After` of whole seconds.
fn rate_limited(r: reqwest::blocking::Response) {
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(wait >= 1, "{wait}");
    refused(r, 429, "rate_limited");
}

#[test]
fn request_rates_are_limited_per_client() {
    // One request a second, three at once: thirty in a row cannot all pass.
    let s = Server::start_with(&["--rate-limit", "1/3"]);
    let c = s.http();
    let health = format!("{}/api/health", s.url);
    let statuses: Vec<_> = (0..30)
        .map(|_| c.get(&health).send().unwrap())
        .map(|r| {
            if r.status() == 429 {
                rate_limited(r);
                429
            } else {
                r.status().as_u16()
            }
        })
        .collect();
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    // Another client (a token is its own client, whoever it is) is not held back by this one.
    let r = c
        .get(&health)
        .header("authorization", "Bearer someone-else")
        .send()
        .unwrap();
    assert_ne!(r.status(), 429);
    // Settings that are no rate are one-line errors.
    let bad = ["0", "x", "1/0", "/3", "off/3"];
    for b in bad {
        let out = std::process::Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                b,
                "--data-dir",
            ])
            .arg(s.data.join("never"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{b}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{b}: {err}");
        assert!(err.contains("rate limit"), "{b}: {err}");
    }
}

#[test]
fn uploads_in_flight_are_bounded_per_client() {
    let s = Server::start_with(&["--uploads-per-client", "2"]);
    let id = file_id(&s);
    // Two uploads that announce a body and stall: this client's slots.
    let stalled = |i: usize| {
        hold(
            &s,
            format!(
                "PUT /api/files?name=stalled{i} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: 1000\r\n\r\nx",
                s.addr,
                s.auth_line()
            )
            .as_bytes(),
        )
    };
    // A third is refused once the server has taken both (it reads their heads on its own time:
    // under the suite's load, seconds). Each round opens two new stalled uploads, so one whose
    // connection the server never took does not decide the test; what the server answered the
    // stalled ones, if anything, is in the failure.
    let mut third = None;
    let mut held = vec![stalled(0), stalled(1)];
    let mut answered = Vec::new();
    for round in 1..=3 {
        for _ in 0..300 {
            let r = s
                .http()
                .put(format!("{}/api/files", s.url))
                .query(&[("name", "third.txt")])
                .body("3")
                .send()
                .unwrap();
            if r.status() == 429 {
                third = Some(r);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if third.is_some() {
            break;
        }
        for t in &mut held {
            t.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 512];
            let n = std::io::Read::read(t, &mut buf).unwrap_or(0);
            answered.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if round < 3 {
            held = vec![stalled(2 * round), stalled(2 * round + 1)];
        }
    }
    let third = third.unwrap_or_else(|| {
        panic!("no third upload refused while two were in flight; they were answered {answered:?}")
    });
    rate_limited(third);
    // Everything else is still served.
    assert_eq!(s.content(&id), b"alpha");
    // A stalled upload that goes away gives its slot back.
    held.pop();
    let mut stored = false;
    for _ in 0..100 {
        let (status, _) = s.put("fourth.txt", b"4".to_vec());
        if status == 201 {
            stored = true;
            break;
        }
        assert_eq!(status, 429);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(stored, "the freed slot was not given back");
    drop(held);
}
