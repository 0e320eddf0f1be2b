//! The records that travel between the store, the server, the client and the page.
//!
//! These are plain data: they serialize to the JSON the HTTP API speaks, so a field renamed here
//! is an API change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest file name we accept, in bytes (what most file systems allow).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest folder path a file keeps, in bytes.
pub const MAX_FOLDER_BYTES: usize = 1024;
/// Most folders a folder path may nest.
pub const MAX_FOLDER_DEPTH: usize = 32;
/// Longest tag name, in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// How many leading bytes of a content decide its type by magic bytes: kept while an upload is
/// staged (to type the record at once) and read again by the tagger.
pub const HEAD_BYTES: usize = 8192;

/// A stored file as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRecord {
    pub id: String,
    pub name: String,
    /// The relative folder the file was uploaded from (`photos/2024`), `""` when it came alone.
    /// Each of its folders is also a user tag of the record.
    #[serde(default)]
    pub folder: String,
    pub size: u64,
    /// BLAKE3 of the content, lowercase hex.
    pub hash: String,
    pub mime: String,
    pub kind: FileKind,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub modified: OffsetDateTime,
    pub tags: Vec<TagRef>,
    /// Where automatic tagging of this content stands.
    pub tagging: TaggingState,
    /// Facts the extractors found that are not tags: `width`, `height`, `taken` (a date),
    /// `camera`, `duration_s`, `artist`, `language`, `pages`, ...
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
    /// Where a query's `text:` terms matched the content: the text around the best match, in
    /// parts, the matched words marked. Only in the results of a query with a text term.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snippet: Vec<SnippetPart>,
}

/// A piece of a [`FileRecord::snippet`]: plain text, or a word the query matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnippetPart {
    pub text: String,
    /// This part is a matched word (shown highlighted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hit: bool,
}

/// One tag on one file: the edge of the graph, seen from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagRef {
    pub name: String,
    pub kind: TagKind,
    /// The extractor that made an automatic tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
    /// Edge weight: the extractor's confidence for automatic tags, 1.0 for user tags.
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TagKind {
    /// Made by an extractor from the content; belongs to the content hash.
    Auto,
    /// Added by a person; belongs to the file record.
    User,
}

impl TagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TagKind::Auto => "auto",
            TagKind::User => "user",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(TagKind::Auto),
            "user" => Some(TagKind::User),
            _ => None,
        }
    }
}

/// Coarse kind of a file, from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Document,
    Image,
    Audio,
    Video,
    Archive,
    Code,
    Data,
    #[default]
    Other,
}

impl FileKind {
    pub const ALL: [FileKind; 8] = [
        FileKind::Document,
        FileKind::Image,
        FileKind::Audio,
        FileKind::Video,
        FileKind::Archive,
        FileKind::Code,
        FileKind::Data,
        FileKind::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Document => "document",
            FileKind::Image => "image",
            FileKind::Audio => "audio",
            FileKind::Video => "video",
            FileKind::Archive => "archive",
            FileKind::Code => "code",
            FileKind::Data => "data",
            FileKind::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TaggingState {
    Pending,
    Done,
    Failed,
}

impl TaggingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaggingState::Pending => "pending",
            TaggingState::Done => "done",
            TaggingState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(TaggingState::Pending),
            "done" => Some(TaggingState::Done),
            "failed" => Some(TaggingState::Failed),
            _ => None,
        }
    }
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {0} bytes; at most {max} are allowed", max = MAX_NAME_BYTES)]
    TooLong(usize),
    #[error("name contains a control or invisible formatting character (U+{0:04X})")]
    Control(u32),
    #[error("name contains '/' or '\\'; a folder goes into the file's folder path")]
    Separator,
    #[error("name '{0}' is reserved")]
    Reserved(String),
    #[error("folder path is {0} bytes; at most {max} are allowed", max = MAX_FOLDER_BYTES)]
    PathTooLong(usize),
    #[error("folder path nests {0} folders; at most {max} are allowed", max = MAX_FOLDER_DEPTH)]
    TooDeep(usize),
    #[error("folder path must be relative, with no empty folder ('/a', 'a//b', 'a/')")]
    NotRelative,
}

/// A file name that has been checked: a label, never a path. Blobs are stored under their hash,
/// so a name cannot reach the file system, but names that would be dangerous when a person saves
/// the file again (`..`, separators, control characters) are refused. Names are checked once, at
/// the edge where they enter (HTTP, tus metadata); everything behind takes this type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

impl FileName {
    /// Checks `name` and brings it to Unicode NFC, so one name has one spelling (a query or a
    /// download name then matches however the client composed it).
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        use unicode_normalization::{UnicodeNormalization, is_nfc};
        let name = name.into();
        let name = if is_nfc(&name) {
            name
        } else {
            name.nfc().collect()
        };
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong(name.len()));
        }
        if let Some(c) = name.chars().find(|&c| invisible(c)) {
            return Err(NameError::Control(c as u32));
        }
        if name.contains('/') || name.contains('\\') {
            return Err(NameError::Separator);
        }
        if name == "." || name == ".." || name.trim().is_empty() {
            return Err(NameError::Reserved(name));
        }
        Ok(FileName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The relative folder a file was uploaded from: folder names joined by `/`, each one checked
/// by [`FileName`]'s rules (so no `..`, no `\\`, no controls, NFC), never absolute, bounded in
/// length and depth. The empty path is the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FolderPath(String);

impl FolderPath {
    pub fn new(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Ok(FolderPath::default());
        }
        let parts = raw
            .split('/')
            .map(|c| {
                if c.is_empty() {
                    Err(NameError::NotRelative)
                } else {
                    FileName::new(c)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parts.len() > MAX_FOLDER_DEPTH {
            return Err(NameError::TooDeep(parts.len()));
        }
        let path = parts
            .iter()
            .map(FileName::as_str)
            .collect::<Vec<_>>()
            .join("/");
        if path.len() > MAX_FOLDER_BYTES {
            return Err(NameError::PathTooLong(path.len()));
        }
        Ok(FolderPath(path))
    }

    /// Splits a relative file path (`a/b/c.txt`, as a folder upload names its files) into its
    /// folder and its name.
    pub fn split_file_path(raw: &str) -> Result<(FolderPath, FileName), NameError> {
        let (folder, name) = raw.rsplit_once('/').unwrap_or(("", raw));
        if raw.contains('/') && folder.is_empty() {
            return Err(NameError::NotRelative);
        }
        Ok((FolderPath::new(folder)?, FileName::new(name)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The folder names, outermost first.
    pub fn folders(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The tags a record uploaded from this folder gets: one per folder name that is a valid
    /// tag (a folder called `(old)` has none, since the query language reserves parentheses).
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for t in self.folders().filter_map(|f| normalize_tag(f).ok()) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        tags
    }
}

impl TryFrom<String> for FolderPath {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        FolderPath::new(&s)
    }
}

impl From<FolderPath> for String {
    fn from(p: FolderPath) -> String {
        p.0
    }
}

/// Characters a name may not carry: controls, and the invisible ones that make a name display
/// as another (U+202E turns `exe.pdf` around, zero-width characters hide in look-alikes), with
/// line and paragraph separators, private-use and unassigned code points. Clients escape the
/// same characters when they print a server's strings to a terminal.
pub fn invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
    )
}

impl std::ops::Deref for FileName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for FileName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        FileName::new(s)
    }
}

impl From<FileName> for String {
    fn from(n: FileName) -> String {
        n.0
    }
}

/// Why a tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagNameError {
    #[error("tag is empty")]
    Empty,
    #[error("tag is {0} bytes; at most {max} are allowed", max = MAX_TAG_BYTES)]
    TooLong(usize),
    #[error("tag contains a control character (U+{0:04X})")]
    Control(u32),
    #[error("tag contains '{0}', which the query language reserves")]
    Reserved(char),
}

/// Normalizes a tag name: trimmed, inner white space folded to one space, lowercased.
/// Tags compare by this form, so `Rust` and ` rust ` are one tag.
pub fn normalize_tag(raw: &str) -> Result<String, TagNameError> {
    let folded = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if folded.is_empty() {
        return Err(TagNameError::Empty);
    }
    if folded.len() > MAX_TAG_BYTES {
        return Err(TagNameError::TooLong(folded.len()));
    }
    if let Some(c) = folded.chars().find(|c| c.is_control()) {
        return Err(TagNameError::Control(c as u32));
    }
    if let Some(c) = folded.chars().find(|c| matches!(c, '"' | '(' | ')')) {
        return Err(TagNameError::Reserved(c));
    }
    Ok(folded)
}

/// A file's neighbour: another file that shares tags with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Related {
    pub file: FileRecord,
    /// Weighted overlap of the two files' tags (see [`crate::rank`]).
    pub score: f64,
    pub shared_tags: Vec<String>,
}

/// A tag with how many files carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagCount {
    pub name: String,
    pub kind: TagKind,
    pub files: u64,
}

/// Two tags that appear on the same files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoOccurrence {
    pub a: String,
    pub b: String,
    pub files: u64,
}

/// A bounded piece of the graph, for drawing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// True when the limit cut nodes off.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GraphNode {
    File {
        /// `f:<file id>`
        id: String,
        name: String,
        kind: FileKind,
        mime: String,
        size: u64,
    },
    Tag {
        /// `t:<tag name>`
        id: String,
        name: String,
        kind: TagKind,
        /// Files that carry this tag in the whole store.
        degree: u64,
    },
}

impl GraphNode {
    pub fn id(&self) -> &str {
        match self {
            GraphNode::File { id, .. } | GraphNode::Tag { id, .. } => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphEdge {
    pub source: String,
    pub target: String,
    pub kind: TagKind,
    pub weight: f64,
}

pub fn file_node_id(file_id: &str) -> String {
    format!("f:{file_id}")
}

pub fn tag_node_id(tag: &str) -> String {
    format!("t:{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            FileName::new("report.pdf").map(String::from),
            Ok("report.pdf".into())
        );
        assert!(FileName::new("报告 2026.md").is_ok());
        assert_eq!(FileName::new(""), Err(NameError::Empty));
        assert_eq!(FileName::new(".."), Err(NameError::Reserved("..".into())));
        assert_eq!(FileName::new("../etc/passwd"), Err(NameError::Separator));
        assert_eq!(FileName::new("a\\b"), Err(NameError::Separator));
        assert_eq!(FileName::new("a\0b"), Err(NameError::Control(0)));
        assert_eq!(FileName::new("a\nb"), Err(NameError::Control(10)));
        assert_eq!(
            FileName::new("x".repeat(4096)),
            Err(NameError::TooLong(4096))
        );
    }

    #[test]
    fn names_that_display_as_another_are_refused() {
        // U+202E makes "invoice_fdp.exe" show as "invoice_exe.pdf".
        for (name, c) in [
            ("invoice_\u{202E}fdp.exe", 0x202E),
            ("pay\u{200B}pal.pdf", 0x200B),
            ("a\u{FEFF}b", 0xFEFF),
            ("a\u{2066}b", 0x2066),
            ("a\u{2028}b", 0x2028),
            ("a\u{E000}b", 0xE000),
            ("a\u{85}b", 0x85),
        ] {
            assert_eq!(FileName::new(name), Err(NameError::Control(c)), "{name:?}");
        }
        assert!(FileName::new("Straße 🦀.md").is_ok());
    }

    #[test]
    fn names_are_nfc() {
        let decomposed = "Cafe\u{301}.txt";
        assert_eq!(FileName::new(decomposed).unwrap().as_str(), "Caf\u{E9}.txt");
        assert_eq!(
            FileName::new(decomposed).unwrap(),
            FileName::new("Caf\u{E9}.txt").unwrap()
        );
    }

    #[test]
    fn folder_paths() {
        assert_eq!(FolderPath::new("").unwrap().as_str(), "");
        assert_eq!(FolderPath::new("a/B c").unwrap().as_str(), "a/B c");
        assert_eq!(
            FolderPath::new("Cafe\u{301}/x").unwrap().as_str(),
            "Caf\u{E9}/x"
        );
        for bad in ["/etc", "a//b", "a/", "/"] {
            assert_eq!(FolderPath::new(bad), Err(NameError::NotRelative), "{bad:?}");
        }
        assert_eq!(
            FolderPath::new("a/../b"),
            Err(NameError::Reserved("..".into()))
        );
        assert_eq!(FolderPath::new("a\\b"), Err(NameError::Separator));
        assert_eq!(FolderPath::new("a/\0"), Err(NameError::Control(0)));
        assert_eq!(FolderPath::new("a/\x1b[2J"), Err(NameError::Control(0x1b)));
        assert_eq!(
            FolderPath::new(&["x"; 33].join("/")),
            Err(NameError::TooDeep(33))
        );
        assert_eq!(
            FolderPath::new(&vec!["y".repeat(200); 6].join("/")),
            Err(NameError::PathTooLong(1205))
        );
        let (folder, name) = FolderPath::split_file_path("docs/api/README.md").unwrap();
        assert_eq!((folder.as_str(), name.as_str()), ("docs/api", "README.md"));
        let (folder, name) = FolderPath::split_file_path("README.md").unwrap();
        assert_eq!((folder.as_str(), name.as_str()), ("", "README.md"));
        assert_eq!(
            FolderPath::split_file_path("/README.md"),
            Err(NameError::NotRelative)
        );
        assert_eq!(
            FolderPath::split_file_path("../evil"),
            Err(NameError::Reserved("..".into()))
        );
    }

    #[test]
    fn folder_tags() {
        let p = FolderPath::new("Docs/API/(old)/docs").unwrap();
        assert_eq!(p.tags(), vec!["docs".to_string(), "api".to_string()]);
        assert!(FolderPath::default().tags().is_empty());
    }

    #[test]
    fn tags() {
        assert_eq!(normalize_tag("  Rust   Lang "), Ok("rust lang".into()));
        assert_eq!(normalize_tag("中文"), Ok("中文".into()));
        assert_eq!(normalize_tag(" "), Err(TagNameError::Empty));
        assert_eq!(normalize_tag("a(b"), Err(TagNameError::Reserved('(')));
    }
}
