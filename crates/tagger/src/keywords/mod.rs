//! Keyphrase extraction: plain text in, ranked keyphrases out.
//!
//! The method sits behind [`KeywordExtractor`] so that another (TextRank, TF-IDF with a
//! corpus-wide IDF kept by the store) can replace YAKE without touching the callers. Text is
//! expected already stripped of markup (see [`crate::text`]); tokenization, stop words and
//! stemming are shared by every method.

use crate::budget::{Deadline, Expired, Work};

mod stopwords;
mod tokenize;
mod yake;

pub use tokenize::{Piece, is_cjk, tokenize as for_each_piece};
pub use whatlang::Lang;
pub use yake::{MAX_CONSIDERED_PER_KEYWORD, Yake, YakeConfig, confidence};

/// Version of the keyword extractor: raise it when its output for the same bytes changes
/// (tokenizer, stop words, scoring, confidence mapping), so `retag` re-runs it. 2: words over
/// [`MAX_WORD_CHARS`] are not keywords.
pub const VERSION: u32 = 2;

/// A word longer than this (a DNA sequence on one line, base64, a minified script) names no
/// subject, and is not a keyword candidate: it separates candidates like punctuation. The bound
/// is also what keeps the duplicate check's cost per comparison a constant.
pub const MAX_WORD_CHARS: usize = 64;

/// Is `word` over [`MAX_WORD_CHARS`]? Looks at most that many characters.
pub fn is_overlong(word: &str) -> bool {
    word.len() > MAX_WORD_CHARS && word.chars().nth(MAX_WORD_CHARS).is_some()
}

/// One keyphrase of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyword {
    /// Lowercased surface form, words joined by spaces (CJK words joined as written).
    pub text: String,
    /// The method's own score (for YAKE, lower is better).
    pub score: f64,
    /// 0..=1, higher is better; the document's best keyword is high.
    pub confidence: f64,
}

/// A keyphrase method.
pub trait KeywordExtractor: Send + Sync {
    /// Short name, recorded as the tags' extractor detail.
    fn name(&self) -> &'static str;
    /// The `top` best keyphrases of `text`, best first. `lang` (when detected) picks the stemmer.
    fn extract(&self, text: &str, lang: Option<whatlang::Lang>, top: usize) -> Vec<Keyword> {
        self.extract_within(text, lang, top, &Deadline::NEVER, &mut Work::default())
            .unwrap_or_default()
    }
    /// [`KeywordExtractor::extract`] that gives up at `deadline`, counting its work into `work`.
    fn extract_within(
        &self,
        text: &str,
        lang: Option<whatlang::Lang>,
        top: usize,
        deadline: &Deadline,
        work: &mut Work,
    ) -> Result<Vec<Keyword>, Expired>;
}

/// Is this lowercased word a stop word (English or Chinese list, or too short)?
pub fn is_stop_word(lower: &str) -> bool {
    stopwords::is_stop(lower, lower.starts_with(tokenize::is_cjk))
}

/// Splits a programming identifier into words: `parseHTTPRequest_v2` → `parse HTTP Request v2`.
/// Used for source code and for names inside archives.
pub fn split_identifier(ident: &str, out: &mut String) {
    let chars: Vec<char> = ident.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == '.' || c == '$' {
            out.push(' ');
            continue;
        }
        if i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // camelCase boundary, or the last capital of an acronym before a word (HTTPRequest).
            let boundary = ((prev.is_lowercase() || prev.is_ascii_digit()) && c.is_uppercase())
                || (prev.is_uppercase() && c.is_uppercase() && next_lower);
            if boundary {
                out.push(' ');
            }
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> String {
        let mut out = String::new();
        split_identifier(s, &mut out);
        out
    }

    #[test]
    fn overlong_words() {
        assert!(!is_overlong(&"a".repeat(MAX_WORD_CHARS)));
        assert!(is_overlong(&"a".repeat(MAX_WORD_CHARS + 1)));
        // Characters, not bytes.
        assert!(!is_overlong(&"é".repeat(MAX_WORD_CHARS)));
    }

    #[test]
    fn identifiers_split() {
        assert_eq!(split("parseHTTPRequest"), "parse HTTP Request");
        assert_eq!(split("snake_case_name"), "snake case name");
        assert_eq!(split("blake3Hash"), "blake3 Hash");
        assert_eq!(split("XMLParser"), "XML Parser");
    }
}
