//! Bad input gets a clear error and loses or corrupts nothing stored before.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::time::Duration;

/// A file stored before the abuse, checked after it.
fn sentinel(s: &Server) -> (String, Vec<u8>) {
    let data = bytes(50_000, 99);
    (
        s.put_ok("sentinel.bin", &data)["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        data,
    )
}

fn intact(s: &Server, (id, data): &(String, Vec<u8>)) {
    assert_eq!(&s.content(id), data, "a file stored before was damaged");
}

#[test]
fn hostile_names() {
    let s = Server::start();
    let before = sentinel(&s);
    let long = "n".repeat(4096);
    for name in [
        "../../etc/passwd",
        "a/b",
        "a\\b",
        "..",
        ".",
        "nul\0byte",
        "bell\u{7}",
        "new\nline",
        "",
        long.as_str(),
    ] {
        let (status, v) = s.put(name, b"x".to_vec());
        assert!(status == 422 || status == 400, "{name:?}: {status}");
        assert!(
            !v["error"].as_str().unwrap_or("").is_empty(),
            "{name:?}: {v}"
        );
        assert!(!v["error"].as_str().unwrap().contains('\n'), "one line");
    }
    // The same through multipart.
    assert_eq!(s.post_part("../evil", b"x").status(), 422);
    // PUT without a name at all.
    let r = s
        .http()
        .put(format!("{}/api/files", s.url))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.get_json("/api/health")["files"], 1);
    intact(&s, &before);
    // Nothing escaped the data directory.
    assert!(!s.data.parent().unwrap().join("evil").exists());
}

#[test]
fn empty_files_are_files() {
    let s = Server::start();
    let rec = s.put_ok("empty.txt", b"");
    assert_eq!(rec["size"], 0);
    assert_eq!(rec["hash"], b3(b""));
    assert!(s.content(rec["id"].as_str().unwrap()).is_empty());
}

#[test]
fn malformed_multipart() {
    let s = Server::start();
    let before = sentinel(&s);
    let r = s
        .http()
        .post(format!("{}/api/files", s.url))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhalf a part and no closing boundary")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<serde_json::Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed multipart body")
    );
    let r = s
        .http()
        .post(format!("{}/api/files", s.url))
        .header("content-type", "multipart/form-data")
        .body("junk")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http()
        .post(format!("{}/api/files", s.url))
        .multipart(reqwest::blocking::multipart::Form::new().text("a", "b"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "no file part");
    assert_eq!(s.get_json("/api/health")["files"], 1);
    assert_eq!(s.staging_files(), 0);
    intact(&s, &before);
}

#[test]
fn body_shorter_than_content_length_and_client_disconnects() {
    let s = Server::start();
    let before = sentinel(&s);
    // Announce 1 MiB, send 1000 bytes, hang up.
    let mut req =
        b"PUT /api/files?name=short.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&[7u8; 1000]);
    s.raw(&req, Duration::from_millis(300));
    // And a chunked upload cut mid-stream.
    s.raw(b"PUT /api/files?name=cut.bin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n400\r\nabc", Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.names("name:short").len() + s.names("name:cut").len(),
        0,
        "no visible file"
    );
    assert_eq!(s.staging_files(), 0, "no partial file left");
    assert_eq!(s.stored_blobs(), 1);
    intact(&s, &before);
}

#[test]
fn body_longer_than_content_length() {
    let s = Server::start();
    // Content-Length says 5; the rest is not part of this request (it is parsed as the next one
    // and refused), and the stored file has exactly the announced bytes.
    let out = s.raw(b"PUT /api/files?name=five.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello, this is extra", Duration::from_millis(1500));
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert!(
        out.contains("HTTP/1.1 400"),
        "the trailing bytes are refused: {out}"
    );
    let f = s.get_json("/api/files?q=name:five");
    assert_eq!(f["files"][0]["size"], 5);
    assert_eq!(s.content(f["files"][0]["id"].as_str().unwrap()), b"hello");
}

#[test]
fn uploads_over_the_limit_are_413() {
    let s = Server::start_with(&["--max-upload", "1MiB"]);
    let before = sentinel(&s);
    // Refused from the announced length, before any body byte is read.
    let out = s.raw(
        b"PUT /api/files?name=big.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048577\r\n\r\n",
        Duration::from_millis(1500),
    );
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("\"code\":\"too_large\""), "{out}");
    // Chunked (no length announced): cut off while streaming.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(vec![0u8; 2 << 20]));
    let r = s
        .http()
        .put(format!("{}/api/files?name=chunked.bin", s.url))
        .body(body)
        .send();
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(s.staging_files(), 0);
    assert_eq!(s.get_json("/api/health")["files"], 1);
    intact(&s, &before);
}

/// A full disk: the data directory on a 16 MiB tmpfs. Needs root (mount); skips otherwise.
#[test]
fn disk_full_is_507_and_loses_nothing() {
    if euid() != 0 {
        eprintln!("SKIP disk_full_is_507_and_loses_nothing: needs root to mount a tmpfs");
        assert!(
            std::env::var_os("DISGRAFS_REQUIRE_PRIVILEGED").is_none(),
            "privileged test skipped in CI"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status()
                .ok();
        }
    }
    let _guard = Unmount(mnt.clone());
    let s = Server::start_at(&mnt.join("data"), &[]);
    let before = sentinel(&s);
    let (status, v) = s.put("huge.bin", bytes(32 << 20, 5));
    assert_eq!(status, 507, "{v}");
    assert_eq!(v["code"], "storage_full");
    assert_eq!(s.staging_files(), 0, "the partial file is removed");
    intact(&s, &before);
    // Once space is back, uploads work again.
    s.put_ok("fits.bin", &bytes(1 << 20, 6));
    assert_eq!(s.get_json("/api/health")["files"], 2);
    drop(s);
}

fn euid() -> u32 {
    // /proc/self/status "Uid: real effective ..." — no libc needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

#[test]
fn unknown_ids_and_methods() {
    let s = Server::start();
    for path in [
        "/api/files/nope",
        "/api/files/nope/content",
        "/api/files/nope/related",
    ] {
        let r = s.http().get(format!("{}{path}", s.url)).send().unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.json::<serde_json::Value>().unwrap()["code"], "not_found");
    }
    let r = s
        .http()
        .get(format!("{}/api/files?sort=colour", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn other_sites_pages_cannot_change_the_store() {
    let s = Server::start();
    let before = sentinel(&s);
    let r = s
        .http()
        .put(format!("{}/api/files?name=x", s.url))
        .header("origin", "https://evil.example")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .http()
        .delete(format!("{}/api/files/{}", s.url, before.0))
        .header("origin", "null")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // The page's own origin, and clients that send no Origin, may.
    let r = s
        .http()
        .put(format!("{}/api/files?name=y", s.url))
        .header("origin", format!("http://{}", s.addr))
        .body("y")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    intact(&s, &before);
}
