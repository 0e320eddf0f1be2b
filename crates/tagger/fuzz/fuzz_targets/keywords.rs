//! Text conversion (HTML, Markdown, code) and YAKE on arbitrary text: must not panic, and must
//! stay linear (libFuzzer's -timeout catches quadratic blow-ups).
#![no_main]

use disgrafs_tagger::keywords::Yake;
use disgrafs_tagger::text::{Format, to_plain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let format =
        [Format::Plain, Format::Markdown, Format::Html, Format::Code][usize::from(selector % 4)];
    let plain = to_plain(&text, format);
    let lang = [None, Some(whatlang_lang(selector))][usize::from(selector >> 7)];
    let kws = Yake::default().ranked(&plain, lang, 10);
    assert!(kws.len() <= 10);
    for k in kws {
        assert!((0.0..=1.0).contains(&k.confidence), "{k:?}");
    }
});

fn whatlang_lang(selector: u8) -> disgrafs_tagger::keywords::Lang {
    if selector & 0x40 == 0 {
        disgrafs_tagger::keywords::Lang::Eng
    } else {
        disgrafs_tagger::keywords::Lang::Cmn
    }
}
