//! The tar and tar.gz listing on arbitrary bytes (the first byte picks plain or gzip).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let listing = if selector & 1 == 0 {
        Some(disgrafs_tagger::archive::tar_names(rest))
    } else {
        disgrafs_tagger::archive::targz_names(rest)
    };
    if let Some(l) = listing {
        assert!(l.names.len() <= disgrafs_tagger::archive::MAX_ENTRIES);
        let _ = disgrafs_tagger::archive::name_keywords(&l.names, 10);
    }
});
