//! Keyphrase extraction: plain text in, ranked keyphrases out.
//!
//! The method sits behind [`KeywordExtractor`] so that another (TextRank, TF-IDF with a
//! corpus-wide IDF kept by the store) can replace YAKE without touching the callers. Text is
//! expected already stripped of markup (see [`crate::text`]); tokenization, stop words and
//! stemming are shared by every method.

mod stopwords;
mod tokenize;
mod yake;

pub use tokenize::{Piece, is_cjk, tokenize as for_each_piece};
pub use whatlang::Lang;
pub use yake::{Yake, YakeConfig, confidence};

/// Version of the keyword extractor: raise it when its output for the same bytes changes
/// (tokenizer, stop words, scoring, confidence mapping), so `retag` re-runs it.
pub const VERSION: u32 = 1;

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
    fn extract(&self, text: &str, lang: Option<whatlang::Lang>, top: usize) -> Vec<Keyword>;
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
    fn identifiers_split() {
        assert_eq!(split("parseHTTPRequest"), "parse HTTP Request");
        assert_eq!(split("snake_case_name"), "snake case name");
        assert_eq!(split("blake3Hash"), "blake3 Hash");
        assert_eq!(split("XMLParser"), "XML Parser");
    }
}
