//! `disgrafs serve --blobs s3://…` against a real S3-compatible server (SeaweedFS, started and
//! stopped here; skipped with the reason when it is not installed, a failure under
//! DISGRAFS_REQUIRE_WEED=1): contents go to the bucket and come back byte-identical, whole and
//! by range, with credentials from the environment; a bad URL, a missing bucket or refused
//! credentials stop `serve` before it listens, with one line.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
#[path = "../../store/tests/weed/mod.rs"]
mod weed;

use common::{BIN, Server, bytes};
use std::process::Command;

fn serve_cmd(secret: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    cmd
}

/// `serve` that must refuse to start: its one line on stderr.
fn refusal(data: &std::path::Path, blobs: &str, secret: &str) -> String {
    let out = serve_cmd(secret)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--blobs", blobs])
        .env("DISGRAFS_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve started with --blobs {blobs}");
    assert!(
        out.stdout.is_empty(),
        "a refused server printed an address: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // One line (clap adds its "--help" hint under a flag it rejects itself).
    let lines: Vec<_> = err
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    err
}

#[test]
fn serve_keeps_contents_in_an_s3_bucket() {
    let Some(bin) = weed::weed_binary("serve_keeps_contents_in_an_s3_bucket") else {
        return;
    };
    let server = weed::Weed::start(&bin);
    server.create_bucket("media");
    let blobs = format!("s3://media/disgrafs?endpoint={}", server.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let s = Server::start_cmd(serve_cmd(weed::SECRET_KEY), &data, &["--blobs", &blobs]);
    let body = bytes(12_000_000, 7);
    let rec = s.put_ok("big.bin", &body);
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(s.content(&id), body);
    let part = s
        .http()
        .get(format!("{}/api/files/{id}/content", s.url))
        .header("Range", "bytes=9000000-9000999")
        .send()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &body[9_000_000..9_001_000]);
    assert_eq!(
        s.stored_blobs(),
        0,
        "contents went to the bucket, not the data directory"
    );
    drop(s);

    // Refusals at start-up, before the server listens.
    let other = dir.path().join("other");
    let e = refusal(&other, "s3://", weed::SECRET_KEY);
    assert!(e.contains("no bucket"), "{e}");
    let missing = format!("s3://missing?endpoint={}", server.endpoint());
    let e = refusal(&other, &missing, weed::SECRET_KEY);
    assert!(e.contains("does not exist"), "{e}");
    let e = refusal(&other, &blobs, "not-the-secret");
    assert!(e.contains("refused"), "{e}");
    // The first data directory remembers its bucket.
    let e = refusal(&data, "local", weed::SECRET_KEY);
    assert!(e.contains("keeps its blobs at s3://media/disgrafs"), "{e}");
}
