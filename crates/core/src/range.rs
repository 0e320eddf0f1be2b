//! Which bytes a `Range` header asks for (RFC 9110 §14): the one reading of it, for the
//! server's downloads and the fuzz target.

use std::ops::RangeInclusive;

/// Most ranges one request may ask for; more are served as the whole file (validating them is
/// quadratic, and no client needs more than a few).
pub const MAX_RANGES: usize = 32;
/// Longest `Range` header that is read; a longer one is ignored.
pub const MAX_RANGE_HEADER: usize = 1024;

/// What to answer to a `Range` of a content of some length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Not a well-formed byte range (or too many, or too long): RFC 9110 says to ignore it and
    /// send the whole content (200).
    Whole,
    /// Well-formed, but no byte of the content is in it (416).
    Unsatisfiable,
    /// These inclusive byte ranges, each within the content, in the order asked (206).
    Bytes(Vec<RangeInclusive<u64>>),
}

/// Reads `header` for a content of `len` bytes.
pub fn byte_ranges(header: &str, len: u64) -> Ranges {
    if header.len() > MAX_RANGE_HEADER || header.matches(',').count() >= MAX_RANGES {
        return Ranges::Whole;
    }
    let Ok(parsed) = http_range_header::parse_range_header(header) else {
        return Ranges::Whole;
    };
    match parsed.validate(len) {
        // No byte of an empty content can be addressed.
        Ok(v) if !v.is_empty() && len > 0 => Ranges::Bytes(v),
        _ => Ranges::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings() {
        assert_eq!(byte_ranges("bytes=0-1", 10), Ranges::Bytes(vec![0..=1]));
        assert_eq!(byte_ranges("bytes=-3", 10), Ranges::Bytes(vec![7..=9]));
        assert_eq!(byte_ranges("bytes=8-", 10), Ranges::Bytes(vec![8..=9]));
        assert_eq!(byte_ranges("bytes=10-", 10), Ranges::Unsatisfiable);
        assert_eq!(byte_ranges("bytes=0-0", 0), Ranges::Unsatisfiable);
        assert_eq!(byte_ranges("items=0-1", 10), Ranges::Whole);
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(byte_ranges(&many, 10), Ranges::Whole);
    }
}
