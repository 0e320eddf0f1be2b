//! The child-process mode of `isolate`: this test binary is its own child, as the `disgrafs`
//! binary is in production (its `main` calls `run_child_if_requested` first).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;

use disgrafs_tagger::isolate::{self, Failure, Job, Limits};
use std::path::Path;
use std::time::Duration;

fn pdf_in_a_child_gives_all_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "r.pdf", &common::pdf(&common::pdf_pages()));
    let t = disgrafs_tagger::tag_file(&path, "r.pdf").unwrap();
    assert_eq!(
        t.fields.get("pages").map(String::as_str),
        Some("3"),
        "{t:?}"
    );
    assert!(t.tags.iter().any(|x| x.name.contains("glacier")), "{t:?}");
}

fn garbage_pdf_in_a_child_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut junk = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\n".to_vec();
    junk.extend(common::noise(16 << 10, 11));
    let path = common::write(dir.path(), "junk.pdf", &junk);
    let t = disgrafs_tagger::tag_file(&path, "junk.pdf").unwrap();
    assert!(t.warnings.iter().any(|w| w.starts_with("pdf:")), "{t:?}");
}

/// Whether Tesseract can run here; under `DISGRAFS_REQUIRE_OCR=1` (scripts/deps.d/75-ocr.sh,
/// which installs it) its absence fails the test instead of skipping it.
fn ocr_on() -> bool {
    match disgrafs_tagger::ocr::status() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var("DISGRAFS_REQUIRE_OCR").as_deref() != Ok("1"),
                "DISGRAFS_REQUIRE_OCR=1 but {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn ocr_of_an_image_without_text_adds_nothing() {
    if !ocr_on() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "p.jpg", &common::jpeg_with_exif(1));
    let t = disgrafs_tagger::tag_file(&path, "p.jpg").unwrap();
    assert!(t.versions.contains_key("ocr"), "{t:?}");
    assert!(!t.fields.contains_key("ocr_chars"), "{t:?}");
    assert!(t.warnings.iter().all(|w| !w.starts_with("ocr")), "{t:?}");
}

fn ocr_skips_an_image_over_its_bounds() {
    if !ocr_on() {
        return;
    }
    // A PNG header claiming 20000 x 20000 pixels: never handed to Tesseract.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(20_000u32.to_be_bytes());
    png.extend(20_000u32.to_be_bytes());
    png.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "huge.png", &png);
    let t = disgrafs_tagger::tag_file(&path, "huge.png").unwrap();
    assert!(
        t.warnings.iter().any(|w| w.starts_with("ocr: skipped")),
        "{t:?}"
    );
}

fn limits(timeout_ms: u64) -> Limits {
    Limits {
        timeout: Duration::from_millis(timeout_ms),
        memory_bytes: 512 << 20,
        max_output: 1 << 20,
    }
}

fn child_panic_is_contained() {
    let r = isolate::run(Job::TestPanic, Path::new("/dev/null"), &limits(20_000));
    assert!(
        matches!(&r, Err(Failure::Panicked(m)) if m.contains("on purpose")),
        "{r:?}"
    );
}

fn child_hang_is_killed_at_the_deadline() {
    // `TimedOut` is returned only once the child has been killed and reaped: the job never ends
    // by itself.
    let r = isolate::run(Job::TestHang, Path::new("/dev/null"), &limits(500));
    assert!(matches!(r, Err(Failure::TimedOut(_))), "{r:?}");
}

fn child_memory_is_bounded() {
    // The job allocates without end (64 TiB before it would stop): only RLIMIT_AS ends it, with
    // an abort the parent sees as a dead child, not a timeout.
    let r = isolate::run(Job::TestAllocate, Path::new("/dev/null"), &limits(20_000));
    assert!(matches!(r, Err(Failure::Crashed(_))), "{r:?}");
}

fn main() {
    isolate::run_child_if_requested();
    let tests: [(&str, fn()); 7] = [
        (
            "pdf_in_a_child_gives_all_pages",
            pdf_in_a_child_gives_all_pages,
        ),
        (
            "garbage_pdf_in_a_child_is_a_warning",
            garbage_pdf_in_a_child_is_a_warning,
        ),
        ("child_panic_is_contained", child_panic_is_contained),
        (
            "child_hang_is_killed_at_the_deadline",
            child_hang_is_killed_at_the_deadline,
        ),
        ("child_memory_is_bounded", child_memory_is_bounded),
        (
            "ocr_of_an_image_without_text_adds_nothing",
            ocr_of_an_image_without_text_adds_nothing,
        ),
        (
            "ocr_skips_an_image_over_its_bounds",
            ocr_skips_an_image_over_its_bounds,
        ),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
