//! Byte-for-byte round trips, streamed and multipart, and content deduplication.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

#[test]
fn put_and_get_back_every_size() {
    let s = Server::start();
    for (len, seed) in [(0usize, 1u64), (1, 2), (1 << 20, 3), (100 << 20, 4)] {
        let data = bytes(len, seed);
        let rec = s.put_ok(&format!("f{len}.bin"), &data);
        assert_eq!(rec["size"], len as u64);
        assert_eq!(rec["hash"], b3(&data));
        let back = s.content(rec["id"].as_str().unwrap());
        assert_eq!(back.len(), len);
        assert!(back == data, "content of {len} bytes differs");
    }
    // No staging files left behind.
    assert_eq!(s.staging_files(), 0);
}

#[test]
fn multipart_several_files_at_once() {
    let s = Server::start();
    let files = [
        (0usize, "empty.txt"),
        (1, "one.bin"),
        (1 << 20, "mib.bin"),
        (100 << 20, "big.bin"),
    ];
    let mut form =
        reqwest::blocking::multipart::Form::new().text("note", "a plain field is ignored");
    for (i, (len, name)) in files.iter().enumerate() {
        form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(bytes(*len, 10 + i as u64))
                .file_name(name.to_string()),
        );
    }
    let r = s
        .http()
        .post(format!("{}/api/files", s.url))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().unwrap();
    let got = v["files"].as_array().unwrap();
    assert_eq!(got.len(), 4);
    for (i, (len, name)) in files.iter().enumerate() {
        assert_eq!(got[i]["name"], *name);
        let back = s.content(got[i]["id"].as_str().unwrap());
        assert_eq!(b3(&back), b3(&bytes(*len, 10 + i as u64)), "{name}");
    }
}

#[test]
fn identical_content_is_stored_once_and_freed_with_its_last_reference() {
    let s = Server::start();
    let data = bytes(300_000, 7);
    let a = s.put_ok("a.bin", &data);
    let b = s.put_ok("b.bin", &data);
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["hash"], b["hash"]);
    assert_eq!(s.stored_blobs(), 1);
    let del = |id: &serde_json::Value| {
        s.http()
            .delete(format!("{}/api/files/{}", s.url, id.as_str().unwrap()))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(del(&a["id"]), 204);
    assert_eq!(
        s.stored_blobs(),
        1,
        "the other record still uses the content"
    );
    assert_eq!(s.content(b["id"].as_str().unwrap()), data);
    assert_eq!(del(&b["id"]), 204);
    assert_eq!(s.stored_blobs(), 0, "the last reference frees the blob");
    assert_eq!(del(&b["id"]), 404);
    let h = s.get_json("/api/health");
    assert_eq!(
        (h["files"].as_u64(), h["blobs"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn two_uploads_of_the_same_content_at_once() {
    let s = Server::start();
    let data = bytes(20 << 20, 8);
    let results: Vec<serde_json::Value> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (s, data) = (&s, data.clone());
                sc.spawn(move || s.put_ok(&format!("same{i}.bin"), &data))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| r["hash"] == b3(&data)));
    assert_eq!(s.stored_blobs(), 1);
    for r in &results {
        assert_eq!(b3(&s.content(r["id"].as_str().unwrap())), b3(&data));
    }
    assert_eq!(s.get_json("/api/health")["files"], 4);
}
