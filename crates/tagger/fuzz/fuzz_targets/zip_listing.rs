//! The zip central-directory reader on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(listing) = disgrafs_tagger::archive::zip_names(&mut std::io::Cursor::new(data)) {
        assert!(listing.names.len() <= disgrafs_tagger::archive::MAX_ENTRIES);
        let _ = disgrafs_tagger::archive::name_keywords(&listing.names, 10);
    }
});
