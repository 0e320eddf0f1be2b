//! Image labels end to end: `disgrafs serve --models DIR` labels an uploaded photo of a dog, and
//! the query `dog` finds it; without a models directory serve says in one line that labels are
//! off. The model comes from target/models (scripts/deps.d/77-labels.sh installs it and sets
//! `DISGRAFS_REQUIRE_LABELS=1`, under which a missing one fails instead of skipping).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn required() -> bool {
    std::env::var("DISGRAFS_REQUIRE_LABELS").as_deref() == Ok("1")
}

/// The models directory and darknet's dog photo (its eagle photo beside it); None (after saying why) to skip.
fn fixtures() -> Option<(PathBuf, PathBuf)> {
    let models = std::env::var_os("DISGRAFS_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models"));
    let dog = std::env::var_os("DISGRAFS_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/darknet/data"))
        .join("dog.jpg");
    for f in [
        models.join("efficientnet_lite0.onnx"),
        dog.clone(),
        dog.with_file_name("eagle.jpg"),
    ] {
        if !f.is_file() {
            assert!(
                !required(),
                "no {} but DISGRAFS_REQUIRE_LABELS=1",
                f.display()
            );
            eprintln!(
                "skipped: no {} (scripts/deps.d/77-labels.sh installs it)",
                f.display()
            );
            return None;
        }
    }
    Some((models, dog))
}

#[test]
fn an_uploaded_photo_of_a_dog_is_found_by_the_query_dog() {
    let Some((models, dog)) = fixtures() else {
        return;
    };
    let s = Server::start_with(&["--models", models.to_str().unwrap()]);
    s.put_ok("porch.jpg", &std::fs::read(&dog).unwrap());
    // A photo of something else: no `dog` on it.
    s.put_ok(
        "shore.jpg",
        &std::fs::read(dog.with_file_name("eagle.jpg")).unwrap(),
    );
    s.wait_tagged();
    assert_eq!(s.names("dog"), ["porch.jpg"]);
    assert_eq!(s.names("dog kind:image"), ["porch.jpg"]);
    assert_eq!(s.names("bird"), ["shore.jpg"]);
    let rec = s.get_json("/api/files?q=name:porch.jpg");
    let tags = rec["files"][0]["tags"].as_array().unwrap();
    let dog_tag = tags
        .iter()
        .find(|t| t["name"] == "dog")
        .unwrap_or_else(|| panic!("no dog tag in {rec}"));
    assert_eq!(dog_tag["extractor"], "labels", "{dog_tag}");
}

#[test]
fn without_models_serve_says_labels_are_off_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DISGRAFS_MODELS");
    let (mut child, _addr) = spawn_serve_with(cmd, &data, &["--workers", "0"], Stdio::piped());
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let line = loop {
        let mut l = String::new();
        assert!(err.read_line(&mut l).unwrap() > 0, "no labels line");
        if l.contains("image labels") {
            break l;
        }
    };
    child.kill().ok();
    child.wait().ok();
    assert!(
        line.starts_with("disgrafs: image labels off: no models directory"),
        "{line}"
    );
}
