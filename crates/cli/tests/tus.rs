//! tus 1.0: discovery, creation, offsets, a resume after the connection is cut, termination.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use base64::Engine;
use common::*;
use std::time::Duration;

fn create(s: &Server, name: &str, len: usize) -> String {
    let meta = format!(
        "filename {}",
        base64::engine::general_purpose::STANDARD.encode(name)
    );
    let r = s
        .http()
        .post(format!("{}/api/uploads/", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", len)
        .header("Upload-Metadata", meta)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("upload-expires"));
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn head(s: &Server, loc: &str) -> reqwest::blocking::Response {
    s.http()
        .head(format!("{}{loc}", s.url))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .unwrap()
}

fn offset(s: &Server, loc: &str) -> u64 {
    let h = head(s, loc);
    assert_eq!(h.status(), 200);
    assert_eq!(h.headers()["cache-control"], "no-store");
    h.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn patch(s: &Server, loc: &str, off: u64, body: Vec<u8>) -> reqwest::blocking::Response {
    s.http()
        .patch(format!("{}{loc}", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", off)
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn discovery() {
    let s = Server::start_with(&["--max-upload", "1GiB"]);
    let r = s
        .http()
        .request(reqwest::Method::OPTIONS, format!("{}/api/uploads/", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    assert_eq!(
        r.headers()["tus-max-size"],
        (1u64 << 30).to_string().as_str()
    );
    let ext = r.headers()["tus-extension"].to_str().unwrap();
    for e in ["creation", "termination"] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
}

#[test]
fn upload_in_pieces_and_mismatched_offsets() {
    let s = Server::start();
    let data = bytes(3 << 20, 1);
    let loc = create(&s, "pieces.bin", data.len());
    assert_eq!(offset(&s, &loc), 0);
    let r = patch(&s, &loc, 0, data[..1 << 20].to_vec());
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["upload-offset"],
        (1u64 << 20).to_string().as_str()
    );
    // A client that lost track sends the wrong offset: 409, nothing written.
    let r = patch(&s, &loc, 0, data[..100].to_vec());
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["code"],
        "offset_mismatch"
    );
    assert_eq!(offset(&s, &loc), 1 << 20);
    let r = patch(&s, &loc, 1 << 20, data[1 << 20..].to_vec());
    assert_eq!(r.status(), 204);
    let id = r.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    assert_eq!(head(&s, &loc).headers()["disgrafs-file-id"], id.as_str());
    assert_eq!(s.content(&id), data);
    assert_eq!(
        s.get_json(&format!("/api/files/{id}"))["name"],
        "pieces.bin"
    );
    // More bytes than declared are refused.
    let loc = create(&s, "small.bin", 10);
    assert_eq!(patch(&s, &loc, 0, vec![1; 11]).status(), 413);
}

#[test]
fn resume_after_the_connection_is_cut() {
    use std::io::Write;
    let s = Server::start();
    let data = bytes(8 << 20, 2);
    let loc = create(&s, "cut.bin", data.len());
    // Send a PATCH that announces everything, deliver 3 MiB, then drop the connection.
    let sent = 3 << 20;
    {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        write!(
            c,
            "PATCH {loc} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            data.len()
        )
        .unwrap();
        c.write_all(&data[..sent]).unwrap();
        c.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    // The server keeps what arrived.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let off = loop {
        let off = offset(&s, &loc);
        if off == sent as u64 || std::time::Instant::now() > until {
            break off;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(off, sent as u64);
    let r = patch(&s, &loc, off, data[off as usize..].to_vec());
    assert_eq!(r.status(), 204);
    let id = r.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    assert_eq!(b3(&s.content(&id)), b3(&data));
}

#[test]
fn termination_and_protocol_errors() {
    let s = Server::start();
    let loc = create(&s, "t.bin", 100);
    patch(&s, &loc, 0, vec![0; 50]);
    let r = s
        .http()
        .delete(format!("{}{loc}", s.url))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(head(&s, &loc).status(), 404);
    assert_eq!(patch(&s, &loc, 50, vec![0; 50]).status(), 404);
    // Wrong or missing version, wrong content type, missing length, bad name, hostile ids.
    let loc = create(&s, "u.bin", 10);
    let r = s
        .http()
        .patch(format!("{}{loc}", s.url))
        .header("Upload-Offset", 0)
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![0; 5])
        .send()
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = s
        .http()
        .patch(format!("{}{loc}", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", 0)
        .header("Content-Type", "text/plain")
        .body(vec![0; 5])
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = s
        .http()
        .post(format!("{}/api/uploads/", s.url))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let bad = format!(
        "filename {}",
        base64::engine::general_purpose::STANDARD.encode("../../etc/passwd")
    );
    let r = s
        .http()
        .post(format!("{}/api/uploads/", s.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", 5)
        .header("Upload-Metadata", bad)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(head(&s, "/api/uploads/..%2F..%2Fdisgrafs.db").status(), 404);
}

#[test]
fn the_client_library_resumes_an_upload_it_started_before() {
    let s = Server::start();
    let data = bytes(2 << 20, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resume.bin");
    std::fs::write(&path, &data).unwrap();
    let loc = create(&s, "resume.bin", data.len());
    patch(&s, &loc, 0, data[..700_000].to_vec());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = disgrafs_client::Client::new(&s.url).unwrap();
    // The first progress report tells where the upload started.
    let first = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let f = first.clone();
    let rec = rt
        .block_on(c.upload(
            &path,
            "resume.bin",
            Some(format!("{}{loc}", s.url)),
            |_| {},
            Some(std::sync::Arc::new(move |n| {
                f.compare_exchange(
                    0,
                    n,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .ok();
            })),
        ))
        .unwrap();
    assert_eq!(rec.hash, b3(&data));
    // It started at the server's offset, not at zero.
    assert!(first.load(std::sync::atomic::Ordering::Relaxed) > 700_000);
    assert_eq!(s.get_json("/api/health")["files"], 1);
}
