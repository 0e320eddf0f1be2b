//! Splits text into sentences, blocks (runs between punctuation, which a keyphrase never
//! crosses) and words. Latin-script words are scanned by hand (no regex: this loop is the hot
//! path of the benchmark); runs of CJK characters are segmented with jieba, whatever language the
//! document as a whole was detected as, so mixed English/Chinese text works.

use disgrafs_core::fulltext::cut_cjk;
pub use disgrafs_core::fulltext::is_cjk;
use std::ops::ControlFlow;

/// What the tokenizer found, in text order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Word {
        text: &'a str,
        cjk: bool,
    },
    /// Punctuation inside a sentence: ends the current block.
    BlockBreak,
    /// End of a sentence (`.`, `!`, `?`, `。`, a blank line).
    SentenceBreak,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// Ends a sentence when followed by whitespace or the end (so `3.14` and `e.g.x` do not).
fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…')
}

/// Calls `f` for each piece of `text`.
pub fn tokenize<'a>(text: &'a str, mut f: impl FnMut(Piece<'a>)) {
    // `f` never breaks, so neither does the walk.
    let flow = tokenize_until(text, |p| {
        f(p);
        ControlFlow::Continue(())
    });
    debug_assert!(flow.is_continue());
}

/// [`tokenize`] that stops as soon as `f` breaks. Linear in `text`: every step moves forward,
/// and nothing looks back (whether the text before a newline ended in CJK is remembered, not
/// searched for).
pub(crate) fn tokenize_until<'a>(
    text: &'a str,
    mut f: impl FnMut(Piece<'a>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    // The last character that was not whitespace is CJK.
    let mut after_cjk = false;
    while i < bytes.len() {
        let b = bytes[i];
        // ASCII fast paths: most text is ASCII, and decoding a char per byte costs.
        if b.is_ascii() {
            if b.is_ascii_alphanumeric() {
                i = word(text, i, &mut f)?;
                after_cjk = false;
            } else if b == b'\n' {
                // A blank line (only whitespace between two newlines) ends a sentence; a single
                // newline is just wrapping.
                let mut j = i + 1;
                while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'\n' {
                    f(Piece::SentenceBreak)?;
                    j += 1;
                } else if after_cjk || text[j..].starts_with(is_cjk) {
                    // Chinese is not wrapped with newlines: a line end there ends a heading or
                    // a list item, which a keyphrase must not run across.
                    f(Piece::BlockBreak)?;
                }
                i = j;
            } else if b.is_ascii_whitespace() {
                i += 1;
            } else if matches!(b, b'.' | b'!' | b'?') {
                let next = bytes.get(i + 1).copied();
                if next.is_none_or(|n| n.is_ascii_whitespace() || matches!(n, b'"' | b'\'' | b')'))
                {
                    f(Piece::SentenceBreak)?;
                } else {
                    f(Piece::BlockBreak)?;
                }
                after_cjk = false;
                i += 1;
            } else {
                f(Piece::BlockBreak)?;
                // A vertical tab is whitespace to `char` (and so to the rule above) but not to
                // `is_ascii_whitespace`.
                after_cjk &= (b as char).is_whitespace();
                i += 1;
            }
            continue;
        }
        // `i` is on a char boundary: every branch advances by whole chars.
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        if is_cjk(c) {
            let start = i;
            let mut end = i;
            for (off, c) in text[start..].char_indices() {
                if !is_cjk(c) {
                    break;
                }
                end = start + off + c.len_utf8();
            }
            cut_cjk(&text[start..end], |word| {
                f(Piece::Word {
                    text: word,
                    cjk: true,
                })
            })?;
            after_cjk = true;
            i = end;
        } else if is_word_char(c) {
            i = word(text, i, &mut f)?;
            after_cjk = false;
        } else if c.is_whitespace() {
            i += c.len_utf8();
        } else if is_sentence_end(c) {
            f(Piece::SentenceBreak)?;
            after_cjk = false;
            i += c.len_utf8();
        } else {
            f(Piece::BlockBreak)?;
            after_cjk = false;
            i += c.len_utf8();
        }
    }
    ControlFlow::Continue(())
}

/// Scans one Latin-script word starting at `start`; returns where scanning resumes. Joiners
/// (`-`, `'`, `’`, and `.` between digits) stay inside a word when a word character follows, so
/// `state-of-the-art`, `don't` and `3.14` are one word each. A possessive `'s` is dropped.
fn word<'a>(
    text: &'a str,
    start: usize,
    f: &mut impl FnMut(Piece<'a>) -> ControlFlow<()>,
) -> ControlFlow<(), usize> {
    let mut end = start;
    let mut prev_digit = false;
    let mut iter = text[start..].char_indices().peekable();
    while let Some((off, c)) = iter.next() {
        let next_is_word = iter.peek().is_some_and(|&(_, n)| is_word_char(n));
        let joins = match c {
            '-' | '\'' | '’' => next_is_word,
            '.' | ',' => prev_digit && iter.peek().is_some_and(|&(_, n)| n.is_ascii_digit()),
            _ => false,
        };
        if !(is_word_char(c) || joins) {
            break;
        }
        prev_digit = c.is_ascii_digit();
        end = start + off + c.len_utf8();
    }
    let mut w = &text[start..end];
    for suffix in ["'s", "’s", "'S"] {
        if let Some(stem) = w.strip_suffix(suffix) {
            w = stem;
        }
    }
    f(Piece::Word {
        text: w,
        cjk: false,
    })?;
    ControlFlow::Continue(end.max(start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use disgrafs_core::fulltext::MAX_CJK_SLICE;

    fn pieces(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        tokenize(text, |p| {
            out.push(match p {
                Piece::Word { text, .. } => text.to_string(),
                Piece::BlockBreak => "|".into(),
                Piece::SentenceBreak => "/".into(),
            })
        });
        out
    }

    #[test]
    fn english_words_blocks_and_sentences() {
        assert_eq!(
            pieces("The state-of-the-art graph's store, v3.14 works. Don't stop!\n\nNext"),
            [
                "The",
                "state-of-the-art",
                "graph",
                "store",
                "|",
                "v3.14",
                "works",
                "/",
                "Don't",
                "stop",
                "/",
                "/",
                "Next"
            ]
        );
        assert_eq!(
            pieces("a.b e.g. x"),
            ["a", "|", "b", "e", "|", "g", "/", "x"]
        );
    }

    #[test]
    fn chinese_is_segmented_and_mixed_text_works() {
        let p = pieces("我们研究大熊猫的栖息地。Rust 很快");
        assert!(
            p.contains(&"大熊猫".to_string()) || p.contains(&"熊猫".to_string()),
            "{p:?}"
        );
        assert!(p.contains(&"/".to_string()));
        assert_eq!(p.last().map(String::as_str), Some("很快"));
        assert_eq!(pieces("熊猫\n竹子"), ["熊猫", "|", "竹子"]);
        assert_eq!(pieces("bamboo\nforest"), ["bamboo", "forest"]);
        assert!(p.contains(&"Rust".to_string()));
    }

    #[test]
    fn long_cjk_runs_are_cut_in_slices() {
        let run = "大熊猫竹子".repeat(4 * MAX_CJK_SLICE / "大熊猫竹子".len());
        let mut words = 0;
        let mut longest = 0;
        tokenize(&run, |p| {
            if let Piece::Word { text, .. } = p {
                words += 1;
                longest = longest.max(text.len());
            }
        });
        assert!(words >= 4 * MAX_CJK_SLICE / "大熊猫竹子".len(), "{words}");
        assert!(longest <= MAX_CJK_SLICE);
    }
}
