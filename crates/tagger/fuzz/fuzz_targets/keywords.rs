//! Text conversion (HTML, Markdown, code) and YAKE on arbitrary text: must not panic, and its
//! work must stay within the bounds the tagger promises (a quadratic blow-up fails the assert,
//! and libFuzzer's -timeout catches what the counters do not see).
#![no_main]

use disgrafs_tagger::keywords::{
    KeywordExtractor, MAX_CONSIDERED_PER_KEYWORD, MAX_WORD_CHARS, Yake,
};
use disgrafs_tagger::text::{Format, to_plain};
use disgrafs_tagger::{Deadline, Work};
use libfuzzer_sys::fuzz_target;

const TOP: usize = 10;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let format =
        [Format::Plain, Format::Markdown, Format::Html, Format::Code][usize::from(selector % 4)];
    let plain = to_plain(&text, format);
    let lang = [None, Some(whatlang_lang(selector))][usize::from(selector >> 7)];
    let mut work = Work::default();
    let kws = Yake::default()
        .extract_within(&plain, lang, TOP, &Deadline::NEVER, &mut work)
        .expect("no deadline");
    assert!(kws.len() <= TOP);
    let phrase = (3 * MAX_WORD_CHARS + 2) as u64;
    let considered = (TOP * MAX_CONSIDERED_PER_KEYWORD) as u64;
    assert!(work.considered <= considered, "{work:?}");
    assert!(
        work.similarity_cells <= considered * TOP as u64 * phrase * phrase,
        "{work:?}"
    );
    for k in kws {
        assert!((0.0..=1.0).contains(&k.confidence), "{k:?}");
        assert!(k.text.chars().count() as u64 <= phrase, "{k:?}");
    }
});

fn whatlang_lang(selector: u8) -> disgrafs_tagger::keywords::Lang {
    if selector & 0x40 == 0 {
        disgrafs_tagger::keywords::Lang::Eng
    } else {
        disgrafs_tagger::keywords::Lang::Cmn
    }
}
