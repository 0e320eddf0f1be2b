//! Kind and MIME type from magic bytes, with the name's extension as a fallback for formats that
//! have no magic (text, source code).

use disgrafs_core::FileKind;

/// Version of the kind extractor (2: text with a few invalid UTF-8 bytes is still text).
pub const VERSION: u32 = 2;

/// How many leading bytes of a content [`detect`] looks at: the store keeps this head of every
/// upload to type the record at once, and the tagger reads the same (one value, in core).
pub use disgrafs_core::HEAD_BYTES as HEAD_LEN;

#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub mime: String,
    pub kind: FileKind,
    /// The name's extension, lowercased, when the content agrees with it.
    pub agreeing_ext: Option<String>,
}

fn ext_of(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty()
        || ext.is_empty()
        || ext.len() > 10
        || !ext.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

/// Text formats recognised by extension once the bytes look like text.
fn text_ext(ext: &str) -> Option<(&'static str, FileKind)> {
    Some(match ext {
        "txt" | "text" | "log" => ("text/plain", FileKind::Document),
        "md" | "markdown" => ("text/markdown", FileKind::Document),
        "html" | "htm" => ("text/html", FileKind::Document),
        "csv" => ("text/csv", FileKind::Data),
        "tsv" => ("text/tab-separated-values", FileKind::Data),
        "json" => ("application/json", FileKind::Data),
        "yaml" | "yml" => ("application/yaml", FileKind::Data),
        "toml" => ("application/toml", FileKind::Data),
        "xml" => ("application/xml", FileKind::Data),
        "rs" => ("text/x-rust", FileKind::Code),
        "py" => ("text/x-python", FileKind::Code),
        "c" | "h" => ("text/x-c", FileKind::Code),
        "cc" | "cpp" | "hpp" | "cxx" => ("text/x-c++", FileKind::Code),
        "go" => ("text/x-go", FileKind::Code),
        "js" | "mjs" => ("text/javascript", FileKind::Code),
        "ts" | "tsx" => ("text/x-typescript", FileKind::Code),
        "java" => ("text/x-java", FileKind::Code),
        "sh" | "bash" => ("text/x-shellscript", FileKind::Code),
        "css" => ("text/css", FileKind::Code),
        "sql" => ("text/x-sql", FileKind::Code),
        _ => return None,
    })
}

fn kind_of_mime(mime: &str, t: Option<infer::MatcherType>) -> FileKind {
    use infer::MatcherType as M;
    // infer files some document formats under "archive" (PDF, EPUB, office zips).
    if mime == "application/pdf"
        || mime == "application/epub+zip"
        || mime == "application/rtf"
        || mime == "application/msword"
        || mime.starts_with("application/vnd.openxmlformats-officedocument")
        || mime.starts_with("application/vnd.oasis.opendocument")
        || mime.starts_with("application/vnd.ms-")
    {
        return FileKind::Document;
    }
    match t {
        Some(M::Image) => FileKind::Image,
        Some(M::Audio) => FileKind::Audio,
        Some(M::Video) => FileKind::Video,
        Some(M::Archive) => FileKind::Archive,
        Some(M::Doc | M::Book | M::Text) => FileKind::Document,
        Some(M::Font | M::App | M::Custom) => FileKind::Other,
        None if mime.starts_with("text/") => FileKind::Document,
        None => FileKind::Other,
    }
}

/// Extensions that name the same format as the detected MIME type.
fn ext_agrees(ext: &str, mime: &str, infer_ext: Option<&str>) -> bool {
    if infer_ext == Some(ext) {
        return true;
    }
    matches!(
        (ext, mime),
        ("jpeg" | "jpe", "image/jpeg")
            | ("tif", "image/tiff")
            | ("htm", "text/html")
            | ("tgz", "application/gzip")
            | ("oga" | "opus", "audio/ogg")
            | ("m4a", "audio/m4a" | "audio/x-m4a" | "video/mp4")
            | ("yml", "application/yaml")
    ) || text_ext(ext).is_some_and(|(m, _)| m == mime)
}

/// Looks like text: UTF-8 with few control characters. A few invalid sequences (a Latin-1 `é`,
/// a damaged byte) are tolerated, as is a multi-byte character cut at the end: the text
/// extractor decodes leniently and warns.
fn looks_like_text(head: &[u8]) -> bool {
    let invalid: usize = head.utf8_chunks().map(|c| c.invalid().len()).sum();
    let cut_at_end = match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => head.len() - e.valid_up_to(),
        _ => 0,
    };
    let few_invalid = invalid.saturating_sub(cut_at_end) * 64 <= head.len();
    few_invalid
        && !head
            .iter()
            .any(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b)))
}

/// Detects a content's type from its first [`HEAD_LEN`] bytes and its name.
pub fn detect(head: &[u8], name: &str) -> Detected {
    let ext = ext_of(name);
    if let Some(t) = infer::get(head) {
        let mime = t.mime_type().to_string();
        let kind = kind_of_mime(&mime, Some(t.matcher_type()));
        let agreeing_ext = ext.filter(|e| ext_agrees(e, &mime, Some(t.extension())));
        return Detected {
            mime,
            kind,
            agreeing_ext,
        };
    }
    if head.is_empty() {
        return Detected {
            mime: "application/x-empty".into(),
            kind: FileKind::Other,
            agreeing_ext: None,
        };
    }
    if looks_like_text(head) {
        if let Some((mime, kind)) = ext.as_deref().and_then(text_ext) {
            return Detected {
                mime: mime.into(),
                kind,
                agreeing_ext: ext,
            };
        }
        let trimmed = String::from_utf8_lossy(&head[..head.len().min(512)])
            .trim_start()
            .to_ascii_lowercase();
        if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
            return Detected {
                mime: "text/html".into(),
                kind: FileKind::Document,
                agreeing_ext: None,
            };
        }
        if trimmed.starts_with("#!") {
            return Detected {
                mime: "text/x-script".into(),
                kind: FileKind::Code,
                agreeing_ext: None,
            };
        }
        return Detected {
            mime: "text/plain".into(),
            kind: FileKind::Document,
            agreeing_ext: None,
        };
    }
    Detected {
        mime: "application/octet-stream".into(),
        kind: FileKind::Other,
        agreeing_ext: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_beats_extension() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let d = detect(png, "photo.png");
        assert_eq!(
            (d.mime.as_str(), d.kind, d.agreeing_ext.as_deref()),
            ("image/png", FileKind::Image, Some("png"))
        );
        // A PNG named .pdf is a PNG, and `pdf` is not claimed.
        let d = detect(png, "fake.pdf");
        assert_eq!((d.kind, d.agreeing_ext), (FileKind::Image, None));
        let d = detect(b"%PDF-1.7\n", "paper.pdf");
        assert_eq!(
            (d.mime.as_str(), d.kind, d.agreeing_ext.as_deref()),
            ("application/pdf", FileKind::Document, Some("pdf"))
        );
    }

    #[test]
    fn text_by_extension() {
        let d = detect(b"fn main() {}\n", "main.rs");
        assert_eq!(
            (d.kind, d.agreeing_ext.as_deref()),
            (FileKind::Code, Some("rs"))
        );
        let d = detect("# 标题\n".as_bytes(), "notes.md");
        assert_eq!(d.mime, "text/markdown");
        // Binary junk named .txt is not text.
        let d = detect(&[0u8, 1, 2, 3, 0xff, 0xfe], "junk.txt");
        assert_eq!((d.kind, d.agreeing_ext), (FileKind::Other, None));
        assert_eq!(detect(b"", "empty.txt").mime, "application/x-empty");
    }
}
