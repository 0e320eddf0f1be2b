//! `disgrafs worker`: its refusals are one line at start-up. (Workers tagging beside
//! `serve --workers 0` nodes, killed mid-job, are in `nodes.rs`.)
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;

use common::*;
use std::process::Command;

/// Runs `worker` with `args` and expects it to refuse: exit status 1 (2 for clap's own
/// refusals), the one line on stderr containing `want`, nothing on stdout.
fn refused(args: &[&str], want: &str) {
    let out = Command::new(BIN)
        .arg("worker")
        .args(args)
        .env("DISGRAFS_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} started");
    assert!(out.stdout.is_empty(), "{args:?}: said it was running");
    let lines: Vec<_> = err
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
}

/// A bucket URL; nothing listens there, and no refusal here gets as far as trying it.
const S3: &str = "s3://b?endpoint=http://127.0.0.1:1";

#[test]
fn bad_urls_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("w");
    let d = d.to_str().unwrap();
    refused(
        &[
            "--data-dir",
            d,
            "--blobs",
            S3,
            "--meta",
            "mysql://u:p@localhost/db",
        ],
        "not a postgres:// URL",
    );
    refused(
        &["--data-dir", d, "--blobs", "ftp://bucket"],
        "expected `local` or s3://",
    );
    refused(&["--data-dir", d, "--workers", "0"], "at least 1");
    refused(&["--data-dir", d], "needs the serve nodes' blob store");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    refused(
        &[
            "--data-dir",
            d,
            "--blobs",
            S3,
            "--meta",
            &format!("postgres://u:pw@127.0.0.1:{port}/db"),
        ],
        "cannot connect",
    );
}

#[test]
fn a_worker_beside_a_serve_on_one_sqlite_directory_is_refused() {
    // SQLite belongs to one process: a second one on the directory would take back the first
    // one's running jobs as its own. The worker says so and what to do instead.
    let s = Server::start();
    refused(
        &["--data-dir", s.data.to_str().unwrap(), "--blobs", S3],
        "in use by another disgrafs process",
    );
    // The server is untouched.
    assert_eq!(s.get_json("/api/health")["files"], 0);
}
