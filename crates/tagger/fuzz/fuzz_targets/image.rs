//! Image header and EXIF reading on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = disgrafs_tagger::image::inspect(&mut std::io::Cursor::new(data));
});
