//! `Range` headers against contents of any length: never a panic; every range served lies
//! within the content, is not inverted, and there are never more than `MAX_RANGES`.
#![no_main]

use disgrafs_core::range::{MAX_RANGES, Ranges, byte_ranges};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, header) = data.split_at(8);
    // Small lengths mostly, so that ranges at and past the end are common.
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let len = if len & 1 == 0 { len >> 48 } else { len };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ranges::Bytes(v) = byte_ranges(header, len) {
        assert!(!v.is_empty() && v.len() <= MAX_RANGES, "{header:?}: {v:?}");
        for r in &v {
            assert!(
                r.start() <= r.end() && *r.end() < len,
                "{header:?} of {len}: {r:?}"
            );
        }
    }
});
