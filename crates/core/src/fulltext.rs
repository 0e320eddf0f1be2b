//! Full-text search's words: one rule for the text that is indexed and for the words a query
//! looks for, so that both are cut the same way. Runs of CJK characters (which have no spaces
//! between words) are segmented with jieba; the databases' own tokenizers (SQLite FTS5's
//! `unicode61`, PostgreSQL's parser) then split the rest on white space and punctuation.
//!
//! Snippets come back from the database with [`HIT_START`] and [`HIT_END`] around each matched
//! word; the indexed text never contains either (see [`index_text`]), so they are unambiguous.

use jieba_rs::Jieba;
use std::ops::ControlFlow;
use std::sync::OnceLock;

/// Marks the start of a highlighted word in a snippet from the database.
pub const HIT_START: char = '\u{2}';
/// Marks the end of a highlighted word in a snippet from the database.
pub const HIT_END: char = '\u{3}';

/// The segmenter, built on first use: loading its dictionary takes a noticeable fraction of a
/// second, and pure-English workloads never need it.
fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// The most CJK text (bytes) handed to jieba at once.
pub const MAX_CJK_SLICE: usize = 16 << 10;

/// Han ideographs, kana and the CJK punctuation-free ranges jieba knows how to cut.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B.. and Compatibility Supplement
}

/// Cuts a run of CJK text into words with jieba, calling `f` for each; stops when `f` breaks.
/// In slices, so that a run without punctuation (a few MiB of it are possible) costs jieba
/// bounded memory and lets the caller stop between slices; a word cut at a slice's end is the
/// price, once per 16 KiB.
pub fn cut_cjk<'a, B>(
    run: &'a str,
    mut f: impl FnMut(&'a str) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let mut from = 0;
    while from < run.len() {
        let mut to = (from + MAX_CJK_SLICE).min(run.len());
        while !run.is_char_boundary(to) {
            to -= 1;
        }
        for token in jieba().cut(&run[from..to], true) {
            f(token.word)?;
        }
        from = to;
    }
    ControlFlow::Continue(())
}

/// Calls `f` with each maximal run of `text` whose characters are all CJK or all not.
fn runs<'a>(text: &'a str, mut f: impl FnMut(&'a str, bool)) {
    let mut start = 0;
    let mut cjk = None;
    for (i, c) in text.char_indices() {
        let this = is_cjk(c);
        if cjk.is_some_and(|prev| prev != this) {
            f(&text[start..i], !this);
            start = i;
        }
        cjk = Some(this);
    }
    if let Some(c) = cjk {
        f(&text[start..], c);
    }
}

/// The text as it is indexed: CJK runs cut into words separated by spaces, control characters
/// (the snippet markers among them) replaced by spaces. Linear in `text`.
pub fn index_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    runs(text, |run, cjk| {
        if cjk {
            let flow: ControlFlow<()> = cut_cjk(run, |w| {
                out.push(' ');
                out.push_str(w);
                ControlFlow::Continue(())
            });
            debug_assert!(flow.is_continue());
            out.push(' ');
        } else {
            out.extend(run.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
    });
    out
}

/// The words of a query's text term, lower case, in order: runs of letters and digits, CJK runs
/// cut as [`index_text`] cuts them. Nothing else survives, so a word can be quoted in either
/// database's full-text syntax without escaping.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    runs(text, |run, cjk| {
        if cjk {
            let flow: ControlFlow<()> = cut_cjk(run, |w| {
                out.push(w.to_string());
                ControlFlow::Continue(())
            });
            debug_assert!(flow.is_continue());
        } else {
            out.extend(
                run.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase),
            );
        }
    });
    out
}

/// A snippet as the database marks it ([`HIT_START`] and [`HIT_END`] around hits) in parts.
pub fn snippet_parts(marked: &str) -> Vec<crate::SnippetPart> {
    let mut parts = Vec::new();
    let mut hit = false;
    for piece in marked.split([HIT_START, HIT_END]) {
        if !piece.is_empty() {
            parts.push(crate::SnippetPart {
                text: piece.to_string(),
                hit,
            });
        }
        // The markers alternate; a piece after a start marker is a hit.
        hit = !hit;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_in_parts() {
        let p = snippet_parts("…the \u{2}borrow\u{3} checker\u{2}s\u{3}");
        let shown: Vec<(&str, bool)> = p.iter().map(|p| (p.text.as_str(), p.hit)).collect();
        assert_eq!(
            shown,
            [
                ("…the ", false),
                ("borrow", true),
                (" checker", false),
                ("s", true)
            ]
        );
    }

    #[test]
    fn index_and_query_cut_alike() {
        let indexed = index_text("我们学习机器学习 and Rust\u{2}x\u{3}");
        assert!(!indexed.contains(HIT_START) && !indexed.contains(HIT_END));
        assert!(indexed.contains(" 学习 "), "{indexed:?}");
        assert_eq!(words("机器学习"), ["机器", "学习"]);
        assert!(indexed.contains(" 机器 学习 "), "{indexed:?}");
        assert_eq!(
            words("Don't \"a\" OR x NEAR("),
            ["don", "t", "a", "or", "x", "near"]
        );
        assert_eq!(words("!!! ()"), Vec::<String>::new());
    }
}
