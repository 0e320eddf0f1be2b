//! Stop words: English and Chinese lists shipped in this crate, plus the length rules that make
//! the rest of YAKE's "stop word" notion (too short to be a keyphrase on its own).

use rustc_hash::FxHashSet;
use std::sync::OnceLock;

fn parse(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn set() -> &'static FxHashSet<&'static str> {
    static SET: OnceLock<FxHashSet<&'static str>> = OnceLock::new();
    // One set for both languages: the scripts do not overlap, and mixed documents are common.
    SET.get_or_init(|| {
        parse(include_str!("stopwords_en.txt"))
            .chain(parse(include_str!("stopwords_zh.txt")))
            .collect()
    })
}

/// Is this lowercased word a stop word? Besides the lists, Latin words shorter than 3 characters
/// (YAKE's rule) and single CJK characters (mostly particles: 的, 了, 在, 是) are.
pub fn is_stop(lower: &str, cjk: bool) -> bool {
    let mut chars = lower.chars();
    let short = if cjk {
        chars.nth(1).is_none()
    } else {
        chars.nth(2).is_none()
    };
    short || set().contains(lower)
}

#[cfg(test)]
mod tests {
    use super::is_stop;

    #[test]
    fn lists_and_length_rules() {
        assert!(is_stop("the", false));
        assert!(is_stop("of", false));
        assert!(is_stop("doesn't", false));
        assert!(!is_stop("graph", false));
        assert!(is_stop("的", true));
        assert!(is_stop("我们", true));
        assert!(!is_stop("熊猫", true));
    }
}
