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
            "PATCH {loc} HTTP/1.1\r\nHost: localhost\r\n{}Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            s.auth_line(),
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
    let c = s.client();
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

#[test]
fn head_finishes_an_upload_whose_bytes_are_all_there() {
    let s = Server::start();
    let loc = create(&s, "late.txt", 5);
    let id = loc.rsplit('/').next().unwrap().to_owned();
    // Every byte arrived but the server failed before the record (simulated: the store takes
    // the last bytes, and no request finishes the upload).
    let (data, dir) = s.kill();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = disgrafs_store::Store::open_local(&data, 0.0).await.unwrap();
        let lease = store
            .lock_upload(&id, Duration::from_secs(5))
            .await
            .unwrap();
        let body = futures_once(b"hello");
        let done = store.append_upload(&lease, 0, 5, body).await.unwrap();
        assert_eq!(done.offset, 5);
        assert!(done.stop.is_none());
        lease.release().await.unwrap();
    });
    drop(rt);
    let s = Server::start_at(&data, &[]);
    let h = head(&s, &loc);
    assert_eq!(h.status(), 200);
    assert_eq!(h.headers()["upload-offset"], "5");
    let file = h.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    assert_eq!(s.content(&file), b"hello");
    // Asking again finds the same file, not a second one.
    assert_eq!(head(&s, &loc).headers()["disgrafs-file-id"], file.as_str());
    assert_eq!(s.get_json("/api/health")["files"], 1);
    drop(dir);
}

/// A body of one piece, as the store takes it.
fn futures_once(
    b: &'static [u8],
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> {
    futures::stream::iter([Ok(bytes::Bytes::from_static(b))])
}

#[test]
fn a_failed_creation_with_upload_says_where_to_resume() {
    let s = Server::start();
    let r = s.tus_create_with(3, b"too long");
    assert_eq!(r.status(), 413);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(offset(&s, &loc), 0);
    assert_eq!(patch(&s, &loc, 0, b"abc".to_vec()).status(), 204);
}

#[test]
fn an_idle_patch_does_not_hold_the_upload() {
    use std::io::Write;
    let s = Server::start();
    let loc = create(&s, "idle.txt", 3);
    // A PATCH whose body never comes (a half-open connection).
    let mut idle = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        idle,
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\n{}Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 3\r\n\r\n",
        s.addr,
        s.auth_line()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The client resumes on a new connection and finishes.
    let r = patch(&s, &loc, 0, b"abc".to_vec());
    assert_eq!(r.status(), 204);
    assert!(r.headers().contains_key("disgrafs-file-id"));
    drop(idle);
}

#[test]
fn live_uploads_are_bounded() {
    let s = Server::start();
    let (data, dir) = s.kill();
    // As many uploads in progress as the server takes, written straight into its database
    // (creating ten thousand through HTTP would only be slower).
    stopped_sql(
        &data,
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
         INSERT INTO uploads (id, length, name, metadata, updated)
         SELECT printf('%032x', i), 1, 'x', '', CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM n",
    );
    let s = Server::start_at(&data, &[]);
    let creation = || {
        s.http()
            .post(format!("{}/api/uploads/", s.url))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", 1)
            .header("Upload-Metadata", "filename YS50eHQ=")
            .send()
            .unwrap()
    };
    let r = creation();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["code"],
        "server_busy"
    );
    // Cancelling one makes room for one.
    let r = s
        .http()
        .delete(format!("{}/api/uploads/{:032x}", s.url, 7))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(creation().status(), 201);
    assert_eq!(creation().status(), 503);
    drop(dir);
}

#[test]
fn parts_no_upload_records_are_swept_at_start_up() {
    let s = Server::start();
    let loc = create(&s, "kept.txt", 6);
    assert_eq!(patch(&s, &loc, 0, b"abc".to_vec()).status(), 204);
    let id = loc.rsplit('/').next().unwrap().to_owned();
    let (data, dir) = s.kill();
    let parts = data.join("tmp/tus");
    let recorded: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    // What a crash leaves: a part of an upload whose row is gone, a part of a live upload that
    // was written and never recorded, and a stray file.
    let planted = [
        format!("{:032x}-{:020}-{}", 42, 0, "f".repeat(32)),
        format!("{id}-{:020}-{}", 3, "e".repeat(32)),
        "junk.json.tmp".to_string(),
    ];
    for p in &planted {
        std::fs::write(parts.join(p), b"zzz").unwrap();
    }
    let s = Server::start_at(&data, &[]);
    let left: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, recorded, "only the recorded part stays");
    // The upload resumes where it was, and its bytes are the ones sent.
    assert_eq!(offset(&s, &loc), 3);
    let r = patch(&s, &loc, 3, b"def".to_vec());
    assert_eq!(r.status(), 204);
    let file = r.headers()["disgrafs-file-id"].to_str().unwrap().to_owned();
    assert_eq!(s.content(&file), b"abcdef");
    drop(dir);
}

#[test]
fn expiry_removes_idle_uploads_and_never_one_being_written() {
    use std::io::{Read, Write};
    let s = Server::start_with(&["--upload-expiry-secs", "1"]);
    let writing = create(&s, "slow.txt", 6);
    let mut w = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        w,
        "PATCH {writing} HTTP/1.1\r\nHost: {}\r\n{}Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 6\r\n\r\nabc",
        s.addr,
        s.auth_line()
    )
    .unwrap();
    let idle = create(&s, "idle.txt", 6);
    // The idle one goes within a few expiry rounds.
    let mut gone = false;
    for _ in 0..100 {
        if head(&s, &idle).status() == 404 {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "the idle upload was not expired");
    // The one being written all that time was left alone: it finishes.
    w.write_all(b"def").unwrap();
    w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    let n = w.read(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(reply.starts_with("http/1.1 204"), "{reply}");
    let file = reply
        .lines()
        .find_map(|l| l.strip_prefix("disgrafs-file-id: "))
        .expect("the stored file's id")
        .trim()
        .to_owned();
    assert_eq!(s.content(&file), b"abcdef");
}

/// A part the upload's offset counts is durable: its file and its directory are fsynced before
/// the PATCH is answered (seen with strace; skipped without it, or where ptrace is refused).
#[test]
fn a_part_is_fsynced_with_its_directory_before_it_counts() {
    let probe = std::process::Command::new("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIP a_part_is_fsynced_with_its_directory_before_it_counts: strace missing or ptrace refused"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(BIN);
    let s = Server::start_cmd(cmd, &dir.path().join("data"), &[]);
    let loc = create(&s, "durable.txt", 6);
    assert_eq!(patch(&s, &loc, 0, b"abc".to_vec()).status(), 204);
    let id = loc.rsplit('/').next().unwrap().to_owned();
    // The server is strace's child: a killed strace would leave it running, detached.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", s.pid())).unwrap();
    for pid in children.split_whitespace() {
        // SAFETY: a signal to the server this test started, by its PID.
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    }
    drop(s);
    let trace = std::fs::read_to_string(&log).unwrap();
    let parts = dir.path().join("data/tmp/tus");
    let part_synced = trace
        .lines()
        .any(|l| l.contains(&format!("<{}/{id}-", parts.display())) && l.contains("= 0"));
    let dir_synced = trace
        .lines()
        .any(|l| l.contains(&format!("<{}>)", parts.display())) && l.contains("= 0"));
    assert!(part_synced, "the part's file was not fsynced:\n{trace}");
    assert!(dir_synced, "the parts' directory was not fsynced:\n{trace}");
}
