//! The API against its own OpenAPI document: Schemathesis (`st`, from PyPI, installed by
//! scripts/deps.d/80-schemathesis.sh and found through DISGRAFS_SCHEMATHESIS) runs every check it
//! has (`--checks all`: no server errors, statuses, content types, headers and bodies as
//! documented, schema-valid requests accepted, schema-violating ones rejected, required headers
//! enforced, stateful sequences through the document's links) on a real server holding a few
//! files. The exceptions it is told about are in scripts/schemathesis/schemathesis.toml, each with
//! the rule of the API that a schema cannot state. Without `st` the test skips with the reason,
//! unless DISGRAFS_REQUIRE_SCHEMATHESIS=1 says it is installed.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;

use common::Server;
use std::path::{Path, PathBuf};
use std::process::Command;

fn st_binary() -> Option<PathBuf> {
    let found = std::env::var_os("DISGRAFS_SCHEMATHESIS")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "DISGRAFS_SCHEMATHESIS does not name Schemathesis' st"
        );
        eprintln!(
            "skipping: no Schemathesis (set DISGRAFS_SCHEMATHESIS; scripts/test installs it)"
        );
    }
    found
}

#[test]
fn the_api_keeps_its_openapi_document_under_schemathesis() {
    let Some(st) = st_binary() else {
        return;
    };
    let s = Server::start();
    // Something to find, tag, relate and download.
    let a = s.put_ok(
        "notes.md",
        b"# Graphs\n\nFiles and tags linked into a graph.\n",
    );
    s.put_ok("plan.txt", b"a plan for the graph file system\n");
    s.tag(a["id"].as_str().unwrap(), &["graph", "notes"]);
    s.wait_tagged();

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/schemathesis");
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(st)
        .arg("--config-file")
        .arg(config.join("schemathesis.toml"))
        .args(["run", &format!("{}/api/openapi.json", s.url)])
        .args(["-H", &format!("Authorization: Bearer {}", s.token)])
        .args(["--checks", "all", "--seed", "1", "--workers", "1"])
        // Bounded: at most this many cases per operation, and this long in all.
        .args(["--max-examples", "40", "--max-time", "150"])
        .args(["--no-color", "--report-dir"])
        .arg(reports.path())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &config)
        .current_dir(reports.path())
        .output()
        .expect("running st");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("passed"),
        "Schemathesis ran no test case:\n{text}"
    );
    // The server is still there and serving.
    assert_eq!(s.get_json("/api/health")["status"], "ok");
}
