//! `disgrafs serve --meta postgres://...`: metadata and the tagging queue on a real PostgreSQL
//! (the test binary's private cluster), and every refusal at start-up a one-line error with no
//! address printed: never a half-started server.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
#[path = "../../store/tests/support/pg.rs"]
mod pg;

use common::*;

#[test]
fn serves_and_tags_with_metadata_on_postgres() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.create_db("serve");
    let db = url.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_at(&data, &["--meta", &url]);
    let id = s.put_ok(
        "notes.md",
        b"# Rust graphs\n\nRust graphs and rust tagging.\n",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.tag(&id, &["mine"]);
    s.wait_tagged();
    let f = s.get_json(&format!("/api/files/{id}"));
    assert_eq!(f["tagging"], "done", "{f}");
    assert_eq!(
        s.content(&id),
        b"# Rust graphs\n\nRust graphs and rust tagging.\n"
    );
    assert_eq!(s.names("mine AND ext:md"), ["notes.md"]);
    // The records are in PostgreSQL, not in a SQLite file beside the blobs.
    assert_eq!(
        cluster.psql(&db, "SELECT name FROM files").unwrap(),
        "notes.md"
    );
    assert!(!data.join("disgrafs.db").exists());
    // A restart against the same database finds everything.
    let (data, _keep) = s.kill();
    let s = Server::start_at(&data, &["--meta", &url]);
    assert_eq!(s.names("mine"), ["notes.md"]);
}

/// Runs `serve` with `args` and expects it to refuse: exit 1, one line on stderr that contains
/// `want`, no address on stdout.
fn refused(args: &[&str], want: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("d"))
        .args(args)
        .env("DISGRAFS_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: printed an address");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("disgrafs: "), "{err}");
    assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    err
}

#[test]
fn bad_meta_urls_are_one_line_errors() {
    refused(
        &["--meta", "mysql://u:p@localhost/db"],
        "not a postgres:// URL",
    );
    refused(&["--meta", "postgres://u@127.0.0.1:notaport/db"], "--meta");
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = refused(
        &[
            "--meta",
            &format!("postgres://u:hunter2@127.0.0.1:{port}/db"),
        ],
        "cannot connect",
    );
    assert!(
        !err.contains("hunter2"),
        "the password is not printed: {err}"
    );
}

#[test]
fn bad_credentials_and_missing_databases_are_one_line_errors() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.create_db("creds");
    let wrong = url.replace(pg::PASSWORD, "wrong-password");
    let err = refused(&["--meta", &wrong], "password authentication failed");
    assert!(!err.contains("wrong-password"), "{err}");
    let missing = format!("{}/no_such_db", url.rsplit_once('/').unwrap().0);
    refused(&["--meta", &missing], "does not exist");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let Some(cluster) = pg::cluster() else { return };
    let url = cluster.create_db("newer");
    let db = url.rsplit('/').next().unwrap().to_string();
    // A first run creates the schema.
    drop(Server::start_with(&["--meta", &url]));
    // A later disgrafs migrated it further.
    cluster
        .psql(
            &db,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', true, '\\x00', 0)",
        )
        .unwrap();
    refused(&["--meta", &url], "newer than this disgrafs");
}
