//! Language of a text, with whatlang: a tag named after the language (`english`, `chinese`,
//! `french`) and the field `language` with its ISO 639-3 code. The detected language also picks
//! the keyword extractor's stemmer.

use crate::Collector;

pub const VERSION: u32 = 1;

/// Detection looks at this much text: more adds time, not accuracy.
const SAMPLE_BYTES: usize = 64 << 10;

/// Below this confidence no tag is proposed (whatlang guesses on any input, even on a few words).
const MIN_CONFIDENCE: f64 = 0.5;

/// The tag name of a language: its English name, lowercased; Mandarin is tagged `chinese`, the
/// word people search for.
pub fn tag_name(lang: whatlang::Lang) -> String {
    match lang {
        whatlang::Lang::Cmn => "chinese".to_string(),
        l => l.eng_name().to_lowercase(),
    }
}

/// The first `max` bytes of `text`, cut at a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Detects the language of `text` and records it; returns it when confident enough to steer
/// the keyword extractor.
pub(crate) fn tag_language(c: &mut Collector, text: &str) -> Option<whatlang::Lang> {
    let info = whatlang::detect(prefix(text, SAMPLE_BYTES))?;
    if info.confidence() < MIN_CONFIDENCE {
        return None;
    }
    c.tag(
        "language",
        VERSION,
        &tag_name(info.lang()),
        info.confidence(),
    );
    c.field("language", info.lang().code());
    Some(info.lang())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefix() {
        assert_eq!(tag_name(whatlang::Lang::Cmn), "chinese");
        assert_eq!(tag_name(whatlang::Lang::Eng), "english");
        assert_eq!(prefix("a中b", 2), "a");
        assert_eq!(prefix("ab", 10), "ab");
    }
}
