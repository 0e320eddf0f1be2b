//! Automatic tagging: a file's bytes in, tags and facts out.
//!
//! The store's job queue calls [`tag_file`] once per distinct content (tags belong to the BLAKE3
//! hash, not to a file record). It detects the type from magic bytes ([`kind`]), then runs the
//! extractors that apply:
//!
//! | extractor   | module        | what it gives                                                |
//! |-------------|---------------|--------------------------------------------------------------|
//! | `kind`      | [`kind`]      | MIME, coarse kind tag, the extension tag when it agrees      |
//! | `keywords`  | [`keywords`]  | YAKE keyphrases of text, Markdown, HTML, source code, PDF    |
//! | `language`  | [`language`]  | language tag (`english`, `chinese`) and field `language`     |
//! | `pdf`       | [`pdf`]       | PDF text (all pages, in an isolated child) and field `pages` |
//! | `image`     | [`image`]     | `width`/`height`, orientation tag                           |
//! | `exif`      | [`image`]     | camera make/model, year taken + `taken`, `gps`               |
//! | `media`     | [`media`]     | artist, album, genre, year, `duration_s` (MP3, FLAC, Ogg, M4A)|
//! | `archive`   | [`archive`]   | keywords from entry names of zip and tar(.gz), `entries`      |
//! | `ocr`       | [`ocr`]       | text in images (Tesseract, isolated), then as for text; `ocr_chars` |
//! | `labels`    | [`labels`]    | what a photo shows (`dog`, `bird`): an ImageNet classifier    |
//! | `fulltext`  | [`Tagging::text`] | the text keywords were taken from, for full-text search  |
//!
//! Every extractor is bounded in work and memory and must survive any input; what it cannot read
//! it skips with a warning in [`Tagging::warnings`] (also logged with `tracing`). Work is linear
//! in the (bounded) input and counted in [`Tagging::work`]; every extractor also stops at the
//! caller's [`Deadline`] (checked in its loops and on every read a parser makes of the file), so
//! no input keeps a worker. Parsers known to panic or hang run through [`isolate`].
//!
//! Architecture invariant: no network IO, no knowledge of HTTP or of the store; the input is a
//! local file path (the blob, or a spooled copy of a remote one). User tags are not this crate's
//! business: it only proposes automatic ones.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

use disgrafs_core::{FileKind, normalize_tag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub mod archive;
pub mod budget;
pub mod image;
pub mod isolate;
pub mod keywords;
mod kind;
pub mod labels;
pub mod language;
pub mod media;
pub mod ocr;
pub mod pdf;
pub mod text;

pub use budget::{Deadline, Work};
pub use kind::{Detected, HEAD_LEN, detect};

/// Tags below this confidence are kept but not shown by default (the page and `disgrafs ls`
/// filter on it).
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.5;

/// How many keyphrases one document contributes.
pub const MAX_KEYWORDS: usize = 10;

/// One automatic tag an extractor proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoTag {
    /// Normalized tag name (see [`disgrafs_core::normalize_tag`]).
    pub name: String,
    /// The extractor that made it, e.g. `kind`, `keywords`.
    pub extractor: String,
    /// The extractor's version: when it rises, `retag` re-runs it.
    pub version: u32,
    /// 0.0 ..= 1.0.
    pub confidence: f64,
}

/// Everything tagging learned of one content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Tagging {
    pub mime: String,
    pub kind: FileKind,
    pub tags: Vec<AutoTag>,
    /// Facts that are not tags: `width`, `height`, `orientation`, `taken` (RFC 3339 full-date),
    /// `taken_at` (RFC 3339 date-time, only when the camera recorded its UTC offset), `camera`,
    /// `gps` (`lat,lon` in decimal degrees), `duration_s`, `artist`, `album`, `genre`, `year`,
    /// `title`, `language` (ISO 639-3), `pages`, `entries`, `text_bytes`.
    pub fields: BTreeMap<String, String>,
    /// Problems met on the way (a truncated file, a parser that gave up); tagging still succeeded
    /// with what was safe.
    pub warnings: Vec<String>,
    /// [`extractor_versions`] as they were when this tagging was made: the store keeps it beside
    /// the tags and re-tags when an extractor's version rose (`disgrafs_store::Retag::is_due`).
    pub versions: BTreeMap<String, u32>,
    /// What the extractors did (bytes read, words scanned...): bounded whatever the input.
    #[serde(default)]
    pub work: Work,
    /// The text keywords were taken from (as bounded as they are: at most
    /// [`text::MAX_TEXT_BYTES`] read), prepared for the full-text index by
    /// [`disgrafs_core::fulltext::index_text`]; empty when the content has no text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// The version of what [`Tagging::text`] holds: raise it when the indexed text changes (a new
/// source of text, another cut), and `retag` re-indexes.
pub const FULLTEXT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The deadline passed; `extractor` was stopped (what it had done is in `work`).
    #[error("tagging stopped at its deadline, in the {extractor} extractor")]
    Deadline { extractor: &'static str, work: Work },
}

/// Every extractor with its current version. Raise an extractor's version when its output for
/// the same bytes changes; the store re-runs tagging for contents tagged with a lower one.
pub fn extractor_versions() -> Vec<(&'static str, u32)> {
    let mut v = vec![
        ("kind", kind::VERSION),
        ("keywords", keywords::VERSION),
        ("language", language::VERSION),
        ("pdf", pdf::VERSION),
        ("image", image::VERSION),
        ("exif", image::EXIF_VERSION),
        ("media", media::VERSION),
        ("archive", archive::VERSION),
        ("fulltext", FULLTEXT_VERSION),
    ];
    // Only when it can run: contents tagged without it are due once it can.
    if ocr::status().is_ok() {
        v.push(("ocr", ocr::VERSION));
    }
    if labels::status().is_ok() {
        v.push(("labels", labels::VERSION));
    }
    v
}

/// Accumulates one content's tags, fields and warnings; normalizes and deduplicates tag names.
#[derive(Debug)]
pub(crate) struct Collector {
    out: Tagging,
    deadline: Deadline,
}

impl Collector {
    /// Proposes a tag; a name that does not normalize is dropped (with a warning), and a name
    /// proposed twice keeps its highest confidence.
    pub(crate) fn tag(&mut self, extractor: &str, version: u32, raw: &str, confidence: f64) {
        let name = match normalize_tag(raw) {
            Ok(n) => n,
            Err(e) => {
                self.warn(format!("{extractor}: tag {raw:?} dropped: {e}"));
                return;
            }
        };
        let confidence = if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if let Some(t) = self.out.tags.iter_mut().find(|t| t.name == name) {
            if confidence > t.confidence {
                t.confidence = confidence;
                t.extractor = extractor.to_string();
                t.version = version;
            }
            return;
        }
        self.out.tags.push(AutoTag {
            name,
            extractor: extractor.to_string(),
            version,
            confidence,
        });
    }

    pub(crate) fn field(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        if !value.trim().is_empty() {
            self.out.fields.insert(key.to_string(), value);
        }
    }

    /// Opens the content for an extractor, metered (the bytes read count into
    /// [`Tagging::work`] through [`Collector::count_read`]; reads fail once the deadline has
    /// passed); a failure is that extractor's warning.
    pub(crate) fn open(
        &mut self,
        extractor: &str,
        path: &Path,
    ) -> Option<budget::Metered<std::fs::File>> {
        std::fs::File::open(path)
            .map(|f| budget::Metered::new(f, self.deadline))
            .map_err(|e| self.warn(format!("{extractor}: cannot open: {e}")))
            .ok()
    }

    pub(crate) fn count_read<R>(&mut self, file: &budget::Metered<R>) {
        self.out.work.bytes_read += file.bytes;
    }

    pub(crate) fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        tracing::warn!(target: "disgrafs_tagger", "{msg}");
        self.out.warnings.push(msg);
    }
}

/// Tags one file. `name` is the name the file was uploaded under: only a hint (its extension
/// becomes a tag when it agrees with the content, and picks the text format of text files).
///
/// Errors only when the file cannot be opened or read at all, or after
/// [`budget::DEFAULT_TIMEOUT`]; everything else is a warning.
pub fn tag_file(path: &Path, name: &str) -> Result<Tagging, TagError> {
    tag_file_with(path, name, &Deadline::after(budget::DEFAULT_TIMEOUT))
}

/// [`tag_file`] that stops at `deadline` with [`TagError::Deadline`].
pub fn tag_file_with(path: &Path, name: &str, deadline: &Deadline) -> Result<Tagging, TagError> {
    let io = |source| TagError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut head = Vec::with_capacity(HEAD_LEN);
    std::fs::File::open(path)
        .map_err(io)?
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    let d = detect(&head, name);
    let mut c = Collector {
        out: Tagging::default(),
        deadline: *deadline,
    };
    c.out.work.bytes_read = head.len() as u64;
    c.out.mime = d.mime.clone();
    c.out.kind = d.kind;
    c.out.versions = extractor_versions()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    c.tag("kind", kind::VERSION, d.kind.as_str(), 1.0);
    if let Some(ext) = &d.agreeing_ext {
        c.tag("kind", kind::VERSION, ext, 0.9);
    }

    // Each extractor is isolated from the others' failures: a panic in one (a library bug we did
    // not foresee) costs its tags only.
    let mime = d.mime.as_str();
    if let Some(format) = text::format_of(mime) {
        guarded(&mut c, "keywords", |c| text::tag_text_file(c, path, format))?;
    } else if mime == "application/pdf" {
        guarded(&mut c, "pdf", |c| pdf::tag_pdf(c, path))?;
    } else {
        match d.kind {
            FileKind::Image => {
                guarded(&mut c, "image", |c| image::tag_image(c, path))?;
                guarded(&mut c, "ocr", |c| ocr::tag_ocr(c, path, mime))?;
                guarded(&mut c, "labels", |c| labels::tag_labels(c, path, mime))?;
            }
            FileKind::Audio | FileKind::Video if media::supports(mime) => {
                guarded(&mut c, "media", |c| media::tag_media(c, path))?
            }
            FileKind::Archive => {
                guarded(&mut c, "archive", |c| archive::tag_archive(c, path, mime))?
            }
            _ => {}
        }
    }
    Ok(c.out)
}

/// Runs one extractor, turning a panic into a warning (extractors are written not to panic;
/// this is the last line for the libraries they call) and a passed deadline into the error: an
/// extractor stopped by it may have left its work half done, which must not be recorded as the
/// content's tags.
fn guarded(
    c: &mut Collector,
    extractor: &'static str,
    f: impl FnOnce(&mut Collector),
) -> Result<(), TagError> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)));
    if let Err(payload) = result {
        c.warn(format!(
            "{extractor}: extractor panicked: {}",
            isolate::panic_message(&*payload)
        ));
    }
    if c.deadline.passed() {
        return Err(TagError::Deadline {
            extractor,
            work: c.out.work,
        });
    }
    Ok(())
}

/// Runs the keyword and language extractors on plain text; shared by text files and PDFs.
pub(crate) fn tag_plain_text(c: &mut Collector, plain: &str) {
    if !c.out.text.is_empty() {
        c.out.text.push('\n');
    }
    c.out
        .text
        .push_str(&disgrafs_core::fulltext::index_text(plain));
    let lang = language::tag_language(c, plain);
    let extractor = keywords::Yake::default();
    let mut work = Work::default();
    let found = keywords::KeywordExtractor::extract_within(
        &extractor,
        plain,
        lang,
        MAX_KEYWORDS,
        &c.deadline,
        &mut work,
    );
    c.out.work.add(&work);
    // On `Err`, the deadline passed: `guarded` reports it.
    for k in found.unwrap_or_default() {
        c.tag("keywords", keywords::VERSION, &k.text, k.confidence);
    }
}
