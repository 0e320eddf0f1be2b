//! The `labels` extractor on real photos (Debian darknet's `dog.jpg`, `eagle.jpg`) with the
//! real model (installed into target/models by scripts/deps.d/77-labels.sh), through
//! `tag_file`; and the inputs it must refuse cleanly. Without the model the tests skip with the
//! reason, unless `DISGRAFS_REQUIRE_LABELS=1` (set by that script), which makes them fail.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use disgrafs_tagger::labels::{self, Labeler};
use disgrafs_tagger::{Tagging, tag_file};
use std::path::{Path, PathBuf};

fn required() -> bool {
    std::env::var("DISGRAFS_REQUIRE_LABELS").as_deref() == Ok("1")
}

/// The models directory, configured for this process; None (after saying why) to skip.
fn models() -> Option<PathBuf> {
    let dir = std::env::var_os("DISGRAFS_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models"));
    if !dir.join(labels::MODEL_FILE).is_file() {
        assert!(
            !required(),
            "no {} in {} but DISGRAFS_REQUIRE_LABELS=1",
            labels::MODEL_FILE,
            dir.display()
        );
        eprintln!(
            "skipped: no {} in {} (scripts/deps.d/77-labels.sh installs it)",
            labels::MODEL_FILE,
            dir.display()
        );
        return None;
    }
    labels::configure(&dir);
    Some(dir)
}

/// One of darknet's photos; None (after saying why) to skip.
fn photo(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("DISGRAFS_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/darknet/data"));
    let p = dir.join(name);
    if !p.is_file() {
        assert!(
            !required(),
            "no {} but DISGRAFS_REQUIRE_LABELS=1",
            p.display()
        );
        eprintln!("skipped: no {} (Debian package darknet)", p.display());
        return None;
    }
    Some(p)
}

fn labels_of(t: &Tagging) -> Vec<(&str, f64)> {
    t.tags
        .iter()
        .filter(|t| t.extractor == "labels")
        .map(|t| (t.name.as_str(), t.confidence))
        .collect()
}

fn tagged(path: &Path, name: &str) -> Tagging {
    let t = tag_file(path, name).expect("tag_file reads the file");
    eprintln!("{name}: {:?} warnings {:?}", labels_of(&t), t.warnings);
    t
}

fn confidence(t: &Tagging, name: &str) -> Option<f64> {
    labels_of(t)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| c)
}

#[test]
fn a_photo_of_a_dog_is_tagged_dog() {
    let (Some(_), Some(dog)) = (models(), photo("dog.jpg")) else {
        return;
    };
    let t = tagged(&dog, "dog.jpg");
    let c = confidence(&t, "dog").expect("tagged dog");
    // Shown by default, not only kept.
    assert!(c >= disgrafs_tagger::DEFAULT_MIN_CONFIDENCE, "dog at {c}");
    assert_eq!(t.versions.get("labels"), Some(&labels::VERSION));
    // No bird, vehicle or the like in a confident tag of a dog.
    assert!(confidence(&t, "bird").is_none());
}

#[test]
fn a_photo_of_an_eagle_is_tagged_bird() {
    let (Some(_), Some(eagle)) = (models(), photo("eagle.jpg")) else {
        return;
    };
    let t = tagged(&eagle, "eagle.jpg");
    let c = confidence(&t, "bird").expect("tagged bird");
    assert!(c >= disgrafs_tagger::DEFAULT_MIN_CONFIDENCE, "bird at {c}");
    assert!(confidence(&t, "bird-of-prey").is_some());
    assert!(confidence(&t, "dog").is_none());
}

/// The classifier itself, on a decoded photo: the top label of each darknet photo is of the
/// right kind (and the figures are printed for the record).
#[test]
fn the_classifier_ranks_the_right_classes_first() {
    let Some(dir) = models() else {
        return;
    };
    let labeler = Labeler::load(&dir).expect("the model loads");
    for (name, want) in [
        ("dog.jpg", "dog"),
        ("eagle.jpg", "bird"),
        ("giraffe.jpg", "ungulate"),
    ] {
        let Some(p) = photo(name) else {
            return;
        };
        let file = std::io::BufReader::new(std::fs::File::open(&p).unwrap());
        let img = labels::decode(file).expect("decodes");
        let start = std::time::Instant::now();
        let l = labeler.classify(&img).expect("classifies");
        eprintln!("{name} in {:?}: {l:?}", start.elapsed());
        assert!(
            l.iter().any(|l| l.name == want && l.ancestor),
            "{name}: no {want} in {l:?}"
        );
    }
}

#[test]
fn truncated_and_garbage_jpegs_get_no_label_and_no_panic() {
    let (Some(_), Some(dog)) = (models(), photo("dog.jpg")) else {
        return;
    };
    let bytes = std::fs::read(&dog).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the headers' end: the decoder has no scan to read.
    let cut = dir.path().join("cut.jpg");
    let sos = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("a start of scan");
    std::fs::write(&cut, &bytes[..sos + 8]).unwrap();
    // A JPEG start, then noise.
    let garbage = dir.path().join("garbage.jpg");
    let mut g = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    g.extend((0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&garbage, &g).unwrap();
    for (p, name) in [(&cut, "cut.jpg"), (&garbage, "garbage.jpg")] {
        let t = tagged(p, name);
        assert!(labels_of(&t).is_empty(), "{name}: {:?}", labels_of(&t));
        assert!(
            t.warnings.iter().any(|w| w.starts_with("labels:")),
            "{name}: {:?}",
            t.warnings
        );
    }
}

/// A PNG whose header claims 60000 × 60000 pixels: refused before any pixel is decoded.
#[test]
fn a_huge_header_image_is_refused_before_decoding() {
    if models().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.png");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(60_000u32.to_be_bytes());
    ihdr.extend(60_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png.extend(vec![0u8; 4096]);
    std::fs::write(&p, &png).unwrap();
    let start = std::time::Instant::now();
    let t = tagged(&p, "huge.png");
    assert_eq!(t.fields.get("width").map(String::as_str), Some("60000"));
    assert!(labels_of(&t).is_empty());
    assert!(
        t.warnings.iter().any(|w| w.starts_with("labels: skipped")),
        "{:?}",
        t.warnings
    );
    assert!(t.work.bytes_read < 64 << 10, "read {}", t.work.bytes_read);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // The decoder alone refuses it too (a caller without the header check), allocating nothing.
    assert!(labels::decode(std::io::Cursor::new(png)).is_err());
}

#[test]
fn without_the_model_files_the_labeler_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let e = Labeler::load(dir.path()).unwrap_err();
    assert!(e.contains(labels::MODEL_FILE), "{e}");
    // The model without its names is refused too.
    if let Some(models) = models() {
        std::fs::copy(
            models.join(labels::MODEL_FILE),
            dir.path().join(labels::MODEL_FILE),
        )
        .unwrap();
        let e = Labeler::load(dir.path()).unwrap_err();
        assert!(e.contains(labels::LABELS_FILE), "{e}");
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
