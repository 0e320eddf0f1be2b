//! Automatic tagging: a file's bytes in, tags out.
//!
//! The store's job queue calls [`tag_file`] once per distinct content (tags belong to the BLAKE3
//! hash, not to a file record). Every extractor is bounded in time and memory and must survive any
//! input; what it cannot read it skips with a warning.
//!
//! Architecture invariant: no network IO, no knowledge of HTTP or of the store; the input is a
//! local file path (the blob, or a spooled copy of a remote one).

use disgrafs_core::FileKind;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

mod kind;

pub use kind::{detect, Detected};

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
    /// Problems met on the way (a truncated file, a parser that gave up); tagging still succeeded
    /// with what was safe.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Every extractor's name and version: stored beside a content's tags, so that a rise is
/// noticed and `retag` re-runs it.
pub fn extractor_versions() -> Vec<(&'static str, u32)> {
    vec![("kind", kind::VERSION)]
}

/// Tags one file. `name` is the name the file was uploaded under: only a hint (its extension
/// becomes a tag when it agrees with the content).
pub fn tag_file(path: &Path, name: &str) -> Result<Tagging, TagError> {
    let io = |source| TagError::Io { path: path.display().to_string(), source };
    let mut head = Vec::with_capacity(8192);
    std::fs::File::open(path).map_err(io)?.take(8192).read_to_end(&mut head).map_err(io)?;
    let d = detect(&head, name);
    let mut tags = Vec::new();
    tags.push(AutoTag { name: d.kind.as_str().to_string(), extractor: "kind".into(), version: kind::VERSION, confidence: 1.0 });
    if let Some(ext) = &d.agreeing_ext {
        tags.push(AutoTag { name: ext.clone(), extractor: "kind".into(), version: kind::VERSION, confidence: 0.9 });
    }
    Ok(Tagging { mime: d.mime, kind: d.kind, tags, warnings: Vec::new() })
}
