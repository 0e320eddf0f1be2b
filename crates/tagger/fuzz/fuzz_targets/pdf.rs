//! PDF text extraction on arbitrary bytes. pdf-extract is known to panic on bad input, which
//! disgrafs contains by running it as an isolate job; this target checks that containment holds
//! (a panic is caught, not a crash) and looks for what containment cannot fix: aborts, stack
//! overflows, hangs and runaway memory (use -timeout and -rss_limit_mb).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: {
    // libfuzzer-sys aborts on any panic; known pdf-extract panics are expected and contained.
    std::panic::set_hook(Box::new(|_| {}));
}, |data: &[u8]| {
    let _ = std::panic::catch_unwind(|| disgrafs_tagger::pdf::text_from_bytes(data));
});
