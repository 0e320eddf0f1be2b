//! `disgrafs serve` settings: flags over environment over the config file.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;

#[test]
fn config_file_sets_limits_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("disgrafs.toml");
    std::fs::write(
        &cfg,
        "max_upload = \"1KiB\"\nworkers = 1\nmin_confidence = 0.5\n",
    )
    .unwrap();
    let s = Server::start_at(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(s.put("big", vec![0; 2048]).0, 413);
    s.put_ok("small", &[0; 512]);
    drop(s);
    let s = Server::start_at(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap(), "--max-upload", "4KiB"],
    );
    s.put_ok("big", &[1; 2048]);
    assert_eq!(
        s.get_json("/api/health")["files"],
        2,
        "the data directory kept the first run's file"
    );
}

#[test]
fn bad_settings_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "colour = \"blue\"\n").unwrap();
    for args in [
        vec!["serve", "--config", cfg.to_str().unwrap()],
        vec!["serve", "--config", "/no/such.toml"],
        vec!["serve", "--min-confidence", "7"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("disgrafs: "), "{err}");
    }
    // A data directory that cannot be created.
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/proc/nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot open the data directory /proc/nope")
    );
}

#[test]
fn one_process_per_data_directory() {
    let s = Server::start();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&s.data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another disgrafs process"), "{err}");
    // The first server is unharmed.
    s.put_ok("still.txt", b"fine");
}
