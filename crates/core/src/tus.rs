//! tus `Upload-Metadata`: comma-separated `key base64(value)` pairs (a key alone is a flag, with
//! the empty value). The server reads it, the client writes it, both through here.

use base64::Engine;
use std::collections::BTreeMap;

/// A pair whose value is not base64 of UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Upload-Metadata value of '{key}' is not {what}")]
pub struct MetadataError {
    pub key: String,
    pub what: &'static str,
}

/// `key base64,key2 base64,flag` → map (values decoded; a later key replaces an earlier one).
pub fn parse_metadata(raw: &str) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut out = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        let err = |what| MetadataError {
            key: k.to_owned(),
            what,
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| err("base64"))?;
        let v = String::from_utf8(bytes).map_err(|_| err("UTF-8"))?;
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

/// The header for `pairs`. Keys are the caller's own names: without spaces or commas.
pub fn encode_metadata<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flags_and_bad_values() {
        let m = parse_metadata("filename YS50eHQ=, is_confidential").unwrap();
        assert_eq!(m["filename"], "a.txt");
        assert_eq!(m["is_confidential"], "");
        assert_eq!(parse_metadata("a !!!").unwrap_err().what, "base64");
        assert_eq!(parse_metadata("a /w==").unwrap_err().what, "UTF-8");
    }

    proptest! {
        /// What the client writes, the server reads back exactly.
        #[test]
        fn encoded_metadata_parses_back(
            pairs in proptest::collection::btree_map("[A-Za-z0-9_.-]{1,12}", "\\PC{0,40}", 0..6)
        ) {
            let raw = encode_metadata(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            prop_assert_eq!(parse_metadata(&raw).unwrap(), pairs);
        }
    }
}
