//! tus `Upload-Metadata` headers: never a panic; what parses is written back by the client's
//! encoder into a header that parses to the same pairs; its `filename` and `relativePath`
//! go through the name rules the server applies (a name is never a path).
#![no_main]

use disgrafs_core::tus::{encode_metadata, parse_metadata};
use disgrafs_core::{FileName, FolderPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(meta) = parse_metadata(raw) else {
        return;
    };
    // Keys with a space or comma cannot come out of a parse (they split there).
    assert!(meta.keys().all(|k| !k.contains([' ', ','])), "{meta:?}");
    let again = encode_metadata(meta.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(parse_metadata(&again).as_ref(), Ok(&meta), "{again}");
    if let Some(name) = meta.get("filename")
        && let Ok(n) = FileName::new(name.as_str())
    {
        assert!(!n.as_str().contains(['/', '\\']), "{n:?}");
    }
    if let Some(path) = meta.get("relativePath")
        && let Ok((folder, name)) = FolderPath::split_file_path(path)
    {
        assert!(!folder.as_str().starts_with('/'), "{folder:?}");
        assert!(
            folder.folders().all(|f| f != ".." && f != "."),
            "{folder:?}"
        );
        assert!(!name.as_str().contains('/'), "{name:?}");
    }
});
