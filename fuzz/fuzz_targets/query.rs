//! The query language on arbitrary text: never a panic; what parses is within the bounds the
//! parser promises, and an error points inside the query.
#![no_main]

use disgrafs_core::query::{MAX_QUERY_BYTES, MAX_TERMS, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    match parse(q) {
        Ok(e) => {
            assert!(q.len() <= MAX_QUERY_BYTES);
            assert!(e.term_count() <= MAX_TERMS, "{e:?}");
            for tag in e.tags() {
                assert!(!tag.is_empty(), "{e:?}");
            }
        }
        Err(err) => {
            assert!(err.position <= q.chars().count(), "{err:?}");
            assert!(
                !err.message.is_empty() && !err.message.contains('\n'),
                "{err:?}"
            );
        }
    }
});
