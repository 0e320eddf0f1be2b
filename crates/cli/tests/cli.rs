//! The `disgrafs` command against a real server: put, ls, info, tag, get, graph, rm, and its
//! one-line failures.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

fn cli(s: &Server, args: &[&str]) -> (i32, String, String) {
    let dir = s.data.parent().unwrap().to_path_buf();
    let out = s
        .cmd()
        .args(args)
        .env("XDG_STATE_HOME", dir.join("state"))
        .current_dir(&dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(s: &Server, args: &[&str]) -> String {
    let (code, out, err) = cli(s, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

#[test]
fn put_tag_query_get_rm() {
    let s = Server::start();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::write(tree.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(tree.join("sub/b.md"), b"# beta\n").unwrap();
    let big = bytes(5 << 20, 3);
    std::fs::write(tree.join("sub/deeper/c.bin"), &big).unwrap();

    let out = ok(&s, &["put", tree.to_str().unwrap(), "--json"]);
    let recs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 3);
    for r in recs {
        for k in ["id", "name", "size", "hash", "mime", "tags"] {
            assert!(!r[k].is_null(), "{k} missing in {r}");
        }
    }
    let c = recs.iter().find(|r| r["name"] == "c.bin").unwrap();
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["hash"], b3(&big));

    let out = ok(&s, &["tag", "add", id, "Project-X", "keep", "--json"]);
    let rec: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        rec["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "project-x" && t["kind"] == "user")
    );

    let out = ok(&s, &["ls", "project-x", "AND", "NOT", "draft", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["files"][0]["id"], id);
    let table = ok(&s, &["ls"]);
    assert!(
        table.lines().next().unwrap().starts_with("ID")
            && table.contains("c.bin")
            && table.contains("#project-x"),
        "{table}"
    );

    let info = ok(&s, &["info", id]);
    assert!(info.contains(&format!("blake3    {}", b3(&big))), "{info}");

    let dest = work.path().join("back.bin");
    ok(&s, &["get", id, "-o", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), big);

    let dot = ok(&s, &["graph", "project-x", "--format", "dot"]);
    assert!(
        dot.starts_with("graph disgrafs {") && dot.contains("\"t:project-x\""),
        "{dot}"
    );
    let json = ok(&s, &["graph", "--format", "json"]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["nodes"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );

    ok(&s, &["tag", "rm", id, "keep"]);
    ok(&s, &["rm", id]);
    let (code, _, err) = cli(&s, &["info", id]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("disgrafs: ") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn get_resumes_a_partial_download() {
    let s = Server::start();
    let data = bytes(3 << 20, 4);
    let id = s.put_ok("resume.bin", &data)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("out.bin");
    // An earlier run got the first MiB.
    std::fs::write(work.path().join("out.bin.part"), &data[..1 << 20]).unwrap();
    ok(&s, &["get", &id, "-o", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!work.path().join("out.bin.part").exists());
    // A damaged partial file is caught by the hash check and not kept.
    std::fs::write(work.path().join("bad.bin.part"), vec![0u8; 1 << 20]).unwrap();
    let (code, _, err) = cli(
        &s,
        &[
            "get",
            &id,
            "-o",
            work.path().join("bad.bin").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("hashes to"), "{err}");
    assert!(!work.path().join("bad.bin").exists());
}

#[test]
fn get_never_writes_through_a_planted_part_file() {
    let s = Server::start();
    let id = s.put_ok("report.pdf", b"the download")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // cwd of `cli` is the server's temp dir: `get` without -o writes `report.pdf` there.
    let dir = s.data.parent().unwrap().to_path_buf();
    let victim = dir.join("bashrc");
    std::fs::write(&victim, b"# precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("report.pdf.part")).unwrap();
    let (code, _, err) = cli(&s, &["get", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("report.pdf.part"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"# precious\n");
    assert!(!dir.join("report.pdf").exists());
    // A hard link is refused the same way.
    std::fs::remove_file(dir.join("report.pdf.part")).unwrap();
    std::fs::hard_link(&victim, dir.join("report.pdf.part")).unwrap();
    let (code, _, err) = cli(&s, &["get", &id]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"# precious\n");
    // Once it is gone, the download works.
    std::fs::remove_file(dir.join("report.pdf.part")).unwrap();
    ok(&s, &["get", &id]);
    assert_eq!(
        std::fs::read(dir.join("report.pdf")).unwrap(),
        b"the download"
    );
}

#[test]
fn failures_are_one_line_and_nonzero() {
    let s = Server::start();
    let (code, _, err) = cli(&s, &["ls", "rust", "AND"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad query") && err.contains("query ended"),
        "{err}"
    );
    let (code, _, err) = cli(&s, &["ls", "--server", "http://127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach http://127.0.0.1:1"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = cli(&s, &["put", "/no/such/file"]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/file"), "{err}");
    let (code, out, _) = cli(&s, &["--help"]);
    assert_eq!(code, 0);
    for cmd in [
        "serve", "put", "get", "ls", "info", "tag", "rm", "graph", "bench",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn get_writes_an_empty_file() {
    let s = Server::start();
    let id = s.put_ok("empty.txt", b"")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("out");
    ok(&s, &["get", &id, "-o", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"", "exists and is empty");
    assert!(!work.path().join("out.part").exists());
}

/// Runs a client command with stdout a pipe whose reader is already gone, as in `| head -1`
/// once head has exited.
fn into_closed_pipe(s: &Server, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    s.cmd()
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .output()
        .unwrap()
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let s = Server::start();
    let id = s.put_ok("p.txt", b"piped")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = id.as_str();
    for args in [
        vec!["info", id],
        vec!["info", "--json", id],
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["graph", "--format", "dot"],
    ] {
        let out = into_closed_pipe(&s, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        // Exit 0, as ripgrep does (SIGPIPE stays ignored; see cli/src/output.rs).
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
