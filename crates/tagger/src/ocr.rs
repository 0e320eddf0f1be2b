//! OCR of images with Tesseract (Debian `tesseract-ocr`, with the `eng` and `chi-sim` data):
//! the recognised text goes through the same keyword, language and full-text path as a text
//! file's.
//!
//! Tesseract is C++ over a decoder of every image format (leptonica): it runs as an
//! [`isolate`] job, the child (this executable under `RLIMIT_AS` and `RLIMIT_CPU`) replacing
//! itself with `tesseract`, so the deadline's kill reaches Tesseract itself. Tesseract is
//! optional: without it (or without the child mode, which OCR requires) OCR is off, the
//! `ocr` extractor is left out of [`crate::extractor_versions`] (so installing Tesseract later
//! and running `disgrafs retag` OCRs what was stored before), and [`status`] says why.

use crate::Collector;
use crate::isolate::{self, Job, Limits};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

pub const VERSION: u32 = 1;

/// Larger image files are not OCRed.
pub const MAX_OCR_BYTES: u64 = 32 << 20;
/// Larger images (width × height, as the header says) are not OCRed: decoding one costs memory
/// and time in proportion.
pub const MAX_OCR_PIXELS: u64 = 40_000_000;
/// The most one image may take, whatever is left of the tagging deadline.
pub const OCR_TIMEOUT: Duration = Duration::from_secs(30);
/// The languages recognised, when Tesseract has their data.
const LANGUAGES: [&str; 2] = ["eng", "chi_sim"];
/// Set in the child's environment: the `-l` argument for Tesseract.
pub(crate) const ENV_LANGS: &str = "DISGRAFS_TAGGER_OCR_LANGS";
/// The program run.
const TESSERACT: &str = "tesseract";

/// The image types Tesseract's decoder (leptonica) reads.
fn supports(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/tiff" | "image/bmp" | "image/gif" | "image/webp"
    )
}

/// Whether OCR is on: the languages Tesseract will be asked for (`eng+chi_sim`), or why not.
pub fn status() -> Result<&'static str, &'static str> {
    static STATUS: OnceLock<Result<String, String>> = OnceLock::new();
    match STATUS.get_or_init(probe) {
        Ok(l) => Ok(l.as_str()),
        Err(e) => Err(e.as_str()),
    }
}

/// Asks Tesseract for its languages (itself an isolated job: even this runs the C++ binary).
fn probe() -> Result<String, String> {
    let limits = Limits {
        timeout: Duration::from_secs(10),
        memory_bytes: 512 << 20,
        max_output: 64 << 10,
    };
    let out = isolate::run(Job::OcrLanguages, Path::new("/dev/null"), &limits).map_err(|e| {
        format!("OCR off: tesseract did not run ({e}); install tesseract-ocr, tesseract-ocr-eng and tesseract-ocr-chi-sim")
    })?;
    let listed = String::from_utf8_lossy(&out);
    // The first line names the data directory; then one language per line.
    let have: Vec<&str> = listed.lines().skip(1).map(str::trim).collect();
    let langs: Vec<&str> = LANGUAGES.into_iter().filter(|l| have.contains(l)).collect();
    if langs.is_empty() {
        return Err(format!(
            "OCR off: tesseract has none of the {} data (install tesseract-ocr-eng or tesseract-ocr-chi-sim)",
            LANGUAGES.join(", ")
        ));
    }
    Ok(langs.join("+"))
}

/// What the child runs for [`Job::OcrText`] and [`Job::OcrLanguages`]: Tesseract, in place of
/// this process (returns only when it cannot be started).
pub(crate) fn exec(job: Job, path: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(TESSERACT);
    // One thread: tagging runs beside uploads on a small machine.
    cmd.env("OMP_THREAD_LIMIT", "1");
    if job == Job::OcrLanguages {
        cmd.arg("--list-langs");
    } else {
        let langs = std::env::var(ENV_LANGS).unwrap_or_else(|_| LANGUAGES[0].into());
        cmd.arg(path).arg("stdout").args(["-l", &langs]);
    }
    format!("cannot run {TESSERACT}: {}", cmd.exec())
}

pub(crate) fn tag_ocr(c: &mut Collector, path: &Path, mime: &str) {
    if status().is_err() {
        return;
    }
    if !supports(mime) {
        return;
    }
    if !crate::image::within_bounds(c, "ocr", path, MAX_OCR_BYTES, MAX_OCR_PIXELS) {
        return;
    }
    let mut limits = Limits {
        timeout: OCR_TIMEOUT,
        max_output: crate::text::MAX_TEXT_BYTES,
        ..Limits::default()
    };
    if let Some(left) = c.deadline.remaining() {
        limits.timeout = limits.timeout.min(left);
    }
    let out = match isolate::run(Job::OcrText, path, &limits) {
        Ok(out) => out,
        Err(e) => {
            c.warn(format!("ocr: recognition failed: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out);
    let chars = text.chars().filter(|ch| ch.is_alphanumeric()).count();
    // A few letters are what Tesseract reads into a photo with no text in it.
    if chars >= 4 {
        c.field("ocr_chars", chars.to_string());
        crate::tag_plain_text(c, &text);
    }
}
