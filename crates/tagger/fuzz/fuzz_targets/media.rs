//! Audio/video tag and property reading (lofty) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = disgrafs_tagger::media::inspect(std::io::Cursor::new(data));
});
