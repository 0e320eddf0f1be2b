//! File-name and folder validation on arbitrary text: never a panic; an accepted name is no
//! path and holds no invisible character, and checking it again changes nothing (NFC once).
#![no_main]

use disgrafs_core::{FileName, FolderPath, invisible};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = FileName::new(raw) {
        let s = name.as_str();
        assert!(!s.contains(['/', '\\']) && s != "." && s != "..", "{s:?}");
        assert!(!s.chars().any(invisible), "{s:?}");
        assert_eq!(FileName::new(s).as_ref(), Ok(&name));
    }
    if let Ok(folder) = FolderPath::new(raw) {
        assert_eq!(FolderPath::new(folder.as_str()).as_ref(), Ok(&folder));
        assert!(
            folder.folders().all(|f| FileName::new(f).is_ok()),
            "{folder:?}"
        );
    }
});
