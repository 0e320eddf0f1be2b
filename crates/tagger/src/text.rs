//! Text out of text-like files: a bounded prefix is read, decoded leniently, and stripped of
//! markup (HTML, Markdown) or turned into words (source code) before keyword extraction.
//!
//! Only the first [`MAX_TEXT_BYTES`] are read: keyphrases of a 2 GiB log are those of its first
//! megabytes, and the worker's memory and time stay bounded whatever the upload.

use crate::Collector;
use crate::budget::{Deadline, Expired, Ticker};
use crate::keywords::split_identifier;
use std::io::Read;
use std::path::Path;

/// The most text read from one file.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// How a text file is turned into plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Markdown,
    Html,
    Code,
}

/// The format of a detected MIME type, or None when the type is not text we extract words from
/// (CSV, JSON and other data are skipped: their "keywords" are column values).
pub fn format_of(mime: &str) -> Option<Format> {
    Some(match mime {
        "text/plain" => Format::Plain,
        "text/markdown" => Format::Markdown,
        "text/html" | "application/xhtml+xml" => Format::Html,
        m if m.starts_with("text/x-") || m == "text/javascript" || m == "text/css" => Format::Code,
        _ => return None,
    })
}

/// Reads at most `limit` bytes; the flag says whether the file had more.
pub fn read_prefix(path: &Path, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)?;
    let truncated = buf.len() > limit;
    buf.truncate(limit);
    Ok((buf, truncated))
}

/// Decodes UTF-8 leniently. Returns the text and whether invalid sequences were replaced; a
/// multi-byte character cut by `truncated` reading is dropped silently rather than reported.
pub fn decode(mut bytes: Vec<u8>, truncated: bool) -> (String, bool) {
    if truncated
        && let Err(e) = std::str::from_utf8(&bytes)
        && e.error_len().is_none()
    {
        bytes.truncate(e.valid_up_to());
    }
    match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    }
}

/// Plain text of `text` in `format`.
pub fn to_plain(text: &str, format: Format) -> String {
    to_plain_within(text, format, &Deadline::NEVER).unwrap_or_default()
}

/// [`to_plain`] that gives up at `deadline`.
pub fn to_plain_within(text: &str, format: Format, deadline: &Deadline) -> Result<String, Expired> {
    match format {
        Format::Plain => Ok(text.to_string()),
        Format::Markdown => markdown_text(text, deadline),
        Format::Html => html_text(text, deadline),
        Format::Code => code_text(text, deadline),
    }
}

/// Reads, converts and tags a text file.
pub(crate) fn tag_text_file(c: &mut Collector, path: &Path, format: Format) {
    let (bytes, truncated) = match read_prefix(path, MAX_TEXT_BYTES) {
        Ok(r) => r,
        Err(e) => {
            c.warn(format!("keywords: cannot read text: {e}"));
            return;
        }
    };
    c.out.work.bytes_read += bytes.len() as u64;
    if truncated {
        c.warn(format!(
            "keywords: only the first {} MiB of text were read",
            MAX_TEXT_BYTES >> 20
        ));
    }
    let (text, lossy) = decode(bytes, truncated);
    if lossy {
        c.warn("keywords: invalid UTF-8 replaced");
    }
    let Ok(plain) = to_plain_within(&text, format, &c.deadline) else {
        // `tag_file_with` reports the deadline.
        return;
    };
    c.field("text_bytes", plain.len().to_string());
    crate::tag_plain_text(c, &plain);
}

/// Markdown's text: paragraphs and headings become sentences; code blocks, URLs and raw HTML
/// are dropped (they are not prose).
fn markdown_text(md: &str, deadline: &Deadline) -> Result<String, Expired> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = String::with_capacity(md.len());
    let mut in_code_block = false;
    let mut ticker = Ticker::new(deadline);
    for event in Parser::new(md) {
        ticker.tick()?;
        match event {
            Event::Start(Tag::CodeBlock(_)) => in_code_block = true,
            Event::End(TagEnd::CodeBlock) => in_code_block = false,
            Event::Text(t) | Event::Code(t) if !in_code_block => out.push_str(&t),
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::TableCell
                | TagEnd::BlockQuote(_),
            ) => out.push_str("\n\n"),
            _ => {}
        }
    }
    Ok(out)
}

/// Elements whose content is not text.
const SKIPPED_ELEMENTS: [&str; 4] = ["script", "style", "noscript", "template"];
/// Elements that end a block of text (a keyphrase must not run across them).
const BLOCK_ELEMENTS: [&str; 24] = [
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "title",
    "tr",
    "td",
    "th",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "blockquote",
    "pre",
];

/// HTML's text: tags, comments, scripts and styles removed, common entities decoded. A lenient
/// hand-written scanner rather than a DOM parser: it only needs the words, and must be linear on
/// any input.
fn html_text(html: &str, deadline: &Deadline) -> Result<String, Expired> {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut ticker = Ticker::new(deadline);
    while let Some(lt) = rest.find(['<', '&']) {
        ticker.tick()?;
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if rest.starts_with('&') {
            let (decoded, used) = entity(rest);
            out.push_str(decoded.as_deref().unwrap_or("&"));
            rest = &rest[used..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if !tag.starts_with('/') && SKIPPED_ELEMENTS.contains(&name.as_str()) {
            // Skip to the matching close tag, case-insensitively.
            rest = rest
                .match_indices("</")
                .find(|(i, _)| {
                    rest.as_bytes()[i + 2..]
                        .get(..name.len())
                        .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
                })
                .map_or("", |(i, _)| &rest[i..]);
            continue;
        }
        out.push_str(if BLOCK_ELEMENTS.contains(&name.as_str()) {
            "\n\n"
        } else {
            " "
        });
    }
    out.push_str(rest);
    Ok(out)
}

/// Decodes the entity at the start of `s` (which starts with `&`): the text and bytes consumed.
fn entity(s: &str) -> (Option<String>, usize) {
    // Byte search: slicing the str at a fixed length could cut a character.
    let Some(semi) = s.as_bytes()[..s.len().min(12)]
        .iter()
        .position(|&b| b == b';')
    else {
        return (None, 1);
    };
    let body = &s[1..semi];
    let named = match body {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        "mdash" => Some('—'),
        "ndash" => Some('–'),
        "hellip" => Some('…'),
        _ => None,
    };
    let c = named.or_else(|| {
        let num = body.strip_prefix('#')?;
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(code)
    });
    match c {
        Some(c) => (Some(c.to_string()), semi + 1),
        None => (None, 1),
    }
}

/// Reserved words of common languages: they say which language a file is in, not what it is
/// about.
const CODE_KEYWORDS: &[&str] = &[
    "abstract",
    "as",
    "async",
    "await",
    "bool",
    "boolean",
    "break",
    "byte",
    "case",
    "catch",
    "char",
    "class",
    "const",
    "continue",
    "crate",
    "def",
    "default",
    "defer",
    "del",
    "delete",
    "do",
    "double",
    "dyn",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "extern",
    "false",
    "final",
    "finally",
    "float",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "go",
    "goto",
    "if",
    "impl",
    "implements",
    "import",
    "in",
    "include",
    "instanceof",
    "int",
    "interface",
    "is",
    "lambda",
    "let",
    "long",
    "loop",
    "match",
    "mod",
    "mut",
    "namespace",
    "new",
    "nil",
    "none",
    "None",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "private",
    "protected",
    "pub",
    "public",
    "raise",
    "ref",
    "return",
    "self",
    "Self",
    "short",
    "signed",
    "static",
    "str",
    "String",
    "struct",
    "super",
    "switch",
    "this",
    "throw",
    "throws",
    "trait",
    "true",
    "True",
    "False",
    "try",
    "type",
    "typedef",
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
    "i32",
    "i64",
    "isize",
    "f32",
    "f64",
    "undefined",
    "union",
    "unsafe",
    "unsigned",
    "use",
    "var",
    "void",
    "where",
    "while",
    "with",
    "yield",
    "std",
    "println",
    "printf",
    "vec",
    "Vec",
    "Option",
    "Result",
    "Some",
    "Ok",
    "Err",
    "unwrap",
];

/// Source code as words: identifiers split (`parseHttpRequest` → `parse Http Request`),
/// reserved words dropped, comments and strings kept as they are; each line is a sentence, so
/// keyphrases do not run from one statement into the next.
fn code_text(code: &str, deadline: &Deadline) -> Result<String, Expired> {
    let mut out = String::with_capacity(code.len() + code.len() / 4);
    let mut ticker = Ticker::new(deadline);
    for line in code.lines() {
        ticker.tick()?;
        let mut rest = line;
        while let Some(start) = rest.find(|c: char| c.is_alphabetic() || c == '_') {
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let ident = &rest[..end];
            rest = &rest[end..];
            if CODE_KEYWORDS.contains(&ident) {
                out.push_str(" , ");
            } else {
                split_identifier(ident, &mut out);
            }
        }
        out.push_str(rest);
        out.push_str("\n\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_text_(s: &str) -> String {
        html_text(s, &Deadline::NEVER).unwrap()
    }
    fn markdown_text_(s: &str) -> String {
        markdown_text(s, &Deadline::NEVER).unwrap()
    }
    fn code_text_(s: &str) -> String {
        code_text(s, &Deadline::NEVER).unwrap()
    }

    #[test]
    fn conversions_stop_at_the_deadline() {
        use crate::budget::CHECK_EVERY;
        let passed = Deadline::at(std::time::Instant::now());
        let lines = "a *b* <i>c</i>\n\n".repeat(CHECK_EVERY);
        for format in [Format::Markdown, Format::Html, Format::Code] {
            assert_eq!(
                to_plain_within(&lines, format, &passed),
                Err(Expired),
                "{format:?}"
            );
        }
        assert!(to_plain_within(&lines, Format::Plain, &passed).is_ok());
    }

    #[test]
    fn html_keeps_text_only() {
        let t = html_text_(
            "<html><head><title>Panda</title><style>p{color:red}</style><SCRIPT>var x=1;</SCRIPT></head>\
             <body><!-- hidden --><p>Giant &amp; red pandas&#33;</p><p class=\"a\">Bamboo &#x4e2d;</p>",
        );
        assert!(t.contains("Panda"), "{t}");
        assert!(t.contains("Giant & red pandas!"), "{t}");
        assert!(t.contains("Bamboo 中"), "{t}");
        assert!(
            !t.contains("color") && !t.contains("var") && !t.contains("hidden") && !t.contains('<'),
            "{t}"
        );
        // Unterminated markup does not loop or panic.
        assert_eq!(html_text_("a <b"), "a ");
        assert_eq!(html_text_("x &bogus"), "x &bogus");
        assert_eq!(html_text_("<script>never closed"), "");
    }

    #[test]
    fn markdown_drops_markup_and_code() {
        let t = markdown_text_(
            "# Graph *stores*\n\nSee [the docs](http://x.invalid/p).\n\n```\nlet x = 1;\n```\n",
        );
        assert!(t.contains("Graph stores"), "{t}");
        assert!(t.contains("the docs") && !t.contains("http"), "{t}");
        assert!(!t.contains("let x"), "{t}");
    }

    #[test]
    fn code_identifiers_split_and_reserved_words_dropped() {
        let t = code_text_(
            "fn parseHttpRequest(raw_bytes: &[u8]) -> Result<Request> { // parse the request\n}",
        );
        assert!(t.contains("parse Http Request"), "{t}");
        assert!(t.contains("raw bytes"), "{t}");
        assert!(t.contains("parse the request"), "{t}");
        assert!(!t.contains("fn ") && !t.contains("Result"), "{t}");
    }

    #[test]
    fn decode_is_lenient() {
        assert_eq!(decode(b"ok".to_vec(), false), ("ok".to_string(), false));
        let (s, lossy) = decode(b"bad \xff byte".to_vec(), false);
        assert!(lossy && s.contains('\u{fffd}'));
        // A character cut by the read limit is not "invalid".
        let mut cut = "中".as_bytes().to_vec();
        cut.pop();
        assert_eq!(
            decode([b"ab".as_slice(), &cut].concat(), true),
            ("ab".to_string(), false)
        );
    }
}
