//! Real WebDAV clients against /dav/: the litmus conformance suite (basic, copymove, props,
//! locks) on /dav/files/, rclone's webdav backend copying, syncing and checking a folder of
//! 1,000 files both ways, and cadaver. They come from Debian (`scripts/deps.d/70-dav.sh`); a test
//! skips with its reason when its client is missing, and fails instead under
//! `DISGRAFS_REQUIRE_DAV=1`, which that script sets.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// Whether `tool` can run here; false (with the reason printed) means skip.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_DAV").as_deref() != Ok("1"),
            "{tool} is missing but DISGRAFS_REQUIRE_DAV=1 (scripts/deps.d/70-dav.sh installs it)"
        );
        eprintln!("skipped: {tool} is not installed (scripts/deps.d/70-dav.sh installs it)");
    }
    found
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Checks of litmus' groups that fail here, each with its reason: the test fails when another
/// check fails, and when one of these passes (so this list stays true).
const LITMUS_KNOWN: &[(&str, &str)] = &[
    (
        "complex_cond_put",
        "dav-server 0.11's If-header parser indexes past the end of this header and panics; \
         the server answers 400 instead (dav.rs)",
    ),
    (
        "fail_complex_cond_put",
        "the same If-header parser panic in dav-server 0.11",
    ),
];

#[test]
fn litmus() {
    if !have("litmus") {
        return;
    }
    let s = Server::start_with(&["--workers", "0"]);
    let work = tempfile::tempdir().unwrap();
    // Basic, with the token as the password.
    let out = Command::new("litmus")
        .arg(format!("{}/dav/files/", s.url))
        .args([TEST_USER, &s.token])
        .env("TESTS", "basic copymove props locks")
        .env("HOME", work.path())
        .current_dir(work.path())
        .output()
        .unwrap();
    let log = text(&out);
    let mut failed = Vec::new();
    for line in log.lines() {
        // " 4. put_get................. pass", "19. name...... FAIL (reason)"
        if let Some((head, _)) = line.rsplit_once("FAIL") {
            let check = head.trim_end_matches(['.', ' ']);
            let check = check.rsplit(". ").next().unwrap_or(check).trim();
            failed.push(check.to_owned());
        }
    }
    // "<- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%"
    let passed: u32 = log
        .lines()
        .filter_map(|l| l.split_once("tests run: "))
        .filter_map(|(_, r)| r.split(' ').next()?.parse::<u32>().ok())
        .sum();
    let groups = log.matches("<- summary for").count();
    assert_eq!(groups, 4, "litmus ran all four groups:\n{log}");
    assert!(passed > 40, "litmus ran too few checks:\n{log}");
    let known: Vec<&str> = LITMUS_KNOWN.iter().map(|(c, _)| *c).collect();
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|c| !known.contains(&c.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "litmus checks failed: {unexpected:?}\n{log}"
    );
    let fixed: Vec<&&str> = known
        .iter()
        .filter(|c| !failed.iter().any(|f| f == *c))
        .collect();
    assert!(
        fixed.is_empty(),
        "now passing, drop from LITMUS_KNOWN: {fixed:?}"
    );
}

/// rclone's form of a password in its config (`rclone obscure`).
fn obscured(password: &str) -> String {
    let out = Command::new("rclone")
        .args(["obscure", password])
        .output()
        .unwrap();
    assert!(out.status.success(), "rclone obscure: {}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// rclone with the remote `dav:` at `dav_url`, Basic with the token (already obscured) as the
/// password.
fn rclone(dav_url: &str, pass: &str, config: &Path, args: &[&str]) {
    let out = Command::new("rclone")
        .args(args)
        .args(["--config"])
        .arg(config)
        .env("RCLONE_CONFIG_DAV_TYPE", "webdav")
        .env("RCLONE_CONFIG_DAV_URL", dav_url)
        .env("RCLONE_CONFIG_DAV_USER", TEST_USER)
        .env("RCLONE_CONFIG_DAV_PASS", pass)
        .env("RCLONE_CONFIG_DAV_VENDOR", "other")
        .args([
            "--transfers",
            "4",
            "--checkers",
            "4",
            "--retries",
            "1",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "rclone {args:?}:\n{}", text(&out));
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rclone_copy_sync_check_both_ways() {
    if !have("rclone") {
        return;
    }
    let s = Server::start_with(&["--workers", "0"]);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("rclone.conf");
    std::fs::write(&config, "").unwrap();
    let src = work.path().join("src");
    // 1,000 files in ten folders, of assorted sizes (some empty, some above one read chunk).
    for i in 0..1000u32 {
        let dir = src.join(format!("part{:02}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let len = match i % 50 {
            0 => 0,
            1 => 200_000,
            _ => (i as usize * 37) % 3000 + 1,
        };
        let body: Vec<u8> = (0..len)
            .map(|j| ((j as u32 * 31 + i) % 251) as u8)
            .collect();
        std::fs::write(dir.join(format!("file {i:04}.bin")), body).unwrap();
    }
    let url = format!("{}/dav/files/", s.url);
    let url = (url.as_str(), obscured(&s.token));
    let src_s = src.to_str().unwrap();

    // Up: copy, then check byte for byte (--download: webdav offers no hashes here).
    rclone(url.0, &url.1, &config, &["copy", src_s, "dav:set"]);
    rclone(
        url.0,
        &url.1,
        &config,
        &["check", "--download", src_s, "dav:set"],
    );
    assert_eq!(s.get_json("/api/health")["files"], 1000);

    // Sync a change: one file edited, one deleted, one added.
    std::fs::write(src.join("part03/file 0003.bin"), b"edited").unwrap();
    std::fs::remove_file(src.join("part04/file 0004.bin")).unwrap();
    std::fs::write(src.join("part05/new.bin"), b"new file").unwrap();
    rclone(url.0, &url.1, &config, &["sync", src_s, "dav:set"]);
    rclone(
        url.0,
        &url.1,
        &config,
        &["check", "--download", src_s, "dav:set"],
    );
    assert_eq!(s.get_json("/api/health")["files"], 1000);

    // Down: copy into an empty folder and sync into a stale one; byte-identical.
    let down = work.path().join("down");
    rclone(
        url.0,
        &url.1,
        &config,
        &["copy", "dav:set", down.to_str().unwrap()],
    );
    assert!(tree(&down) == tree(&src), "copy down is byte-identical");
    let stale = work.path().join("stale");
    std::fs::create_dir_all(stale.join("part00")).unwrap();
    std::fs::write(stale.join("part00/extra.bin"), b"not on the server").unwrap();
    rclone(
        url.0,
        &url.1,
        &config,
        &["sync", "dav:set", stale.to_str().unwrap()],
    );
    assert!(tree(&stale) == tree(&src), "sync down is byte-identical");
    rclone(
        url.0,
        &url.1,
        &config,
        &["check", "--download", "dav:set", stale.to_str().unwrap()],
    );
}

#[test]
fn cadaver_put_get_move_delete() {
    if !have("cadaver") {
        return;
    }
    let s = Server::start_with(&["--workers", "0"]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("up.txt"), b"through cadaver\n").unwrap();
    // cadaver (neon) answers the Basic challenge from ~/.netrc: the token as the password.
    let netrc = work.path().join(".netrc");
    std::fs::write(
        &netrc,
        format!("machine 127.0.0.1 login {TEST_USER} password {}\n", s.token),
    )
    .unwrap();
    std::fs::set_permissions(&netrc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let script = "mkcol box\ncd box\nput up.txt\nmove up.txt moved.txt\nget moved.txt back.txt\nls\ncd ..\nquit\n";
    let out = output_with_stdin(
        Command::new("cadaver")
            .arg(format!("{}/dav/files/", s.url))
            .current_dir(work.path())
            .env("HOME", work.path()),
        script,
    );
    let log = text(&out);
    assert_eq!(
        std::fs::read(work.path().join("back.txt")).ok().as_deref(),
        Some(&b"through cadaver\n"[..]),
        "{log}"
    );
    assert!(log.contains("moved.txt"), "{log}");
    let files = s.get_json("/api/files")["files"].clone();
    assert_eq!(files[0]["folder"], "box");
    assert_eq!(files[0]["name"], "moved.txt");
}
