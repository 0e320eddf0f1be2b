//! How the graph's names become names in a file-system view (WebDAV now, a FUSE mount later)
//! and back. Written once here so every view maps alike:
//!
//! - [`name_to_fs`] / [`name_from_fs`]: a [`FileName`](crate::FileName) may carry characters
//!   that Windows, SMB and many WebDAV clients cannot put in a file name (`<>:"|?*`, a trailing
//!   dot or space). They are shown as the private-use code points U+F000 + the character (the
//!   mapping macOS's SMB client and Cygwin use). A `FileName` never contains a private-use
//!   character, so the mapping is undone exactly.
//! - [`tag_to_fs`] / [`tag_from_fs`]: a tag may contain `/` (and anything but controls and
//!   `"()`), so a tag directory's name percent-escapes `%`, `/`, the unsafe characters above and
//!   a name that is `.` or `..`: reversible for every tag.
//! - [`unique_names`]: several files of one directory may share a name; the later ones (in the
//!   order the caller gives, oldest record first) get a readable suffix, `report (2).pdf`. A
//!   name depends only on the files before it, so it stays while newer files come and go.

use std::collections::{HashMap, HashSet};

/// Characters a portable file name cannot carry (besides `/` and `\`, which names refuse).
const UNSAFE: [char; 7] = ['<', '>', ':', '"', '|', '?', '*'];
/// Where [`name_to_fs`] maps an unsafe character: this plus its code point.
const MAP_BASE: u32 = 0xF000;

fn mapped(c: char) -> char {
    char::from_u32(MAP_BASE + c as u32).expect("U+F000..U+F07F are characters")
}

/// A file name as a file-system view shows it (see the module's documentation).
pub fn name_to_fs(name: &str) -> String {
    let keep = name.trim_end_matches(['.', ' ']).len();
    name.char_indices()
        .map(|(i, c)| {
            if UNSAFE.contains(&c) || i >= keep {
                mapped(c)
            } else {
                c
            }
        })
        .collect()
}

/// The file name that a file-system view's `fs` stands for (the inverse of [`name_to_fs`]).
pub fn name_from_fs(fs: &str) -> String {
    fs.chars()
        .map(|c| {
            let low = (c as u32).wrapping_sub(MAP_BASE);
            match char::from_u32(low) {
                Some(o)
                    if (c as u32) >= MAP_BASE && (UNSAFE.contains(&o) || o == '.' || o == ' ') =>
                {
                    o
                }
                _ => c,
            }
        })
        .collect()
}

/// A tag as a directory name (see the module's documentation).
pub fn tag_to_fs(tag: &str) -> String {
    if tag == "." || tag == ".." {
        return tag.replace('.', "%2E");
    }
    let keep = tag.trim_end_matches(['.', ' ']).len();
    let mut out = String::with_capacity(tag.len());
    for (i, c) in tag.char_indices() {
        if c == '%' || c == '/' || c == '\\' || UNSAFE.contains(&c) || i >= keep {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The tag a directory name stands for (the inverse of [`tag_to_fs`]); `None` for a name
/// [`tag_to_fs`] cannot have made (a `%` not followed by two hex digits).
pub fn tag_from_fs(fs: &str) -> Option<String> {
    let mut out = String::with_capacity(fs.len());
    let mut rest = fs;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3)?;
        let b = u8::from_str_radix(hex, 16).ok().filter(u8::is_ascii)?;
        out.push(b as char);
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// `name` with the suffix ` (n)` before its extension: `report (2).pdf`, `.bashrc (2)`.
fn suffixed(name: &str, n: u32) -> String {
    match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{} ({n}){}", &name[..i], &name[i..]),
        None => format!("{name} ({n})"),
    }
}

/// `name` without the suffixes [`suffixed`] could have given it: `report (2) (3).pdf` is
/// `report.pdf`.
fn unsuffixed(name: &str) -> (&str, &str) {
    let (mut stem, ext) = match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    while let Some(rest) = stem.strip_suffix(')')
        && let Some((head, n)) = rest.rsplit_once(" (")
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        stem = head;
    }
    (stem, ext)
}

/// Which names [`unique_names`] may give the same file-system name to: names of one class
/// are unsuffixed alike (case-insensitively), and a name's suffix depends only on the names
/// of its class before it. So the file a directory shows as `fs_name` is found among the
/// files of its class alone, in their order.
pub fn name_class(fs_name: &str) -> String {
    let lower = fs_name.to_lowercase();
    let (stem, ext) = unsuffixed(&lower);
    format!("{stem}{ext}")
}

/// What every stored name (lower-cased) of `fs_name`'s [class](name_class) starts with: a
/// store's prefix search for the class's candidates.
pub fn class_prefix(fs_name: &str) -> String {
    let lower = fs_name.to_lowercase();
    name_from_fs(unsuffixed(&lower).0)
}

/// The names a directory shows for files named `names`, in that order (oldest record first):
/// the first of a name keeps it, later ones get the lowest free ` (n)`, n ≥ 2. Names compare
/// case-insensitively, as the file systems of most clients do.
pub fn unique_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::new();
    // Per name, the next suffix to try, so many copies of one name cost linear time.
    let mut next: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for name in names {
        let lower = name.to_lowercase();
        if used.insert(lower.clone()) {
            out.push(name.to_owned());
            continue;
        }
        let n = next.entry(lower).or_insert(2);
        loop {
            let candidate = suffixed(name, *n);
            *n += 1;
            if used.insert(candidate.to_lowercase()) {
                out.push(candidate);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileName, normalize_tag};
    use proptest::prelude::*;

    #[test]
    fn classes_strip_every_suffix() {
        assert_eq!(name_class("Report (2) (3).PDF"), "report.pdf");
        assert_eq!(name_class(".bashrc (2)"), ".bashrc");
        assert_eq!(name_class("x (2).tar (3).gz"), "x (2).tar.gz");
        assert_eq!(name_class("a ().txt"), "a ().txt");
        assert_eq!(name_class("a (x).txt"), "a (x).txt");
        assert_eq!(class_prefix("Report (2).PDF"), "report");
        assert_eq!(class_prefix("a\u{F03A}b (2)"), "a:b");
    }

    #[test]
    fn unsafe_names_are_mapped() {
        assert_eq!(name_to_fs("report.pdf"), "report.pdf");
        assert_eq!(name_to_fs("a:b?.txt"), "a\u{F03A}b\u{F03F}.txt");
        assert_eq!(name_to_fs("end. "), "end\u{F02E}\u{F020}");
        assert_eq!(name_from_fs("a\u{F03A}b\u{F03F}.txt"), "a:b?.txt");
        // Private-use characters that the mapping does not make are left alone.
        assert_eq!(name_from_fs("x\u{F041}"), "x\u{F041}");
    }

    #[test]
    fn tags_are_escaped() {
        assert_eq!(tag_to_fs("rust"), "rust");
        assert_eq!(tag_to_fs("a/b"), "a%2Fb");
        assert_eq!(tag_to_fs("100%"), "100%25");
        assert_eq!(tag_to_fs(".."), "%2E%2E");
        assert_eq!(tag_from_fs("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(tag_from_fs("%2E%2E").as_deref(), Some(".."));
        assert_eq!(tag_from_fs("50%"), None);
        assert_eq!(tag_from_fs("%zz"), None);
    }

    #[test]
    fn duplicates_get_stable_suffixes() {
        assert_eq!(
            unique_names(["report.pdf", "report.pdf", "Report.PDF", "notes", "notes"]),
            [
                "report.pdf",
                "report (2).pdf",
                "Report (3).PDF",
                "notes",
                "notes (2)"
            ]
        );
        // A real name that a suffix would take makes the suffix move on, not the real name.
        assert_eq!(
            unique_names(["a.txt", "a (2).txt", "a.txt"]),
            ["a.txt", "a (2).txt", "a (3).txt"]
        );
        assert_eq!(
            unique_names([".bashrc", ".bashrc"]),
            [".bashrc", ".bashrc (2)"]
        );
        // Newer files do not rename older ones.
        let before = unique_names(["x.md", "x.md"]);
        let after = unique_names(["x.md", "x.md", "x (2).md", "x.md"]);
        assert_eq!(after[..2], before[..]);
    }

    #[test]
    fn many_copies_take_linear_time() {
        let names = vec!["same.txt"; 20_000];
        let out = unique_names(names.iter().copied());
        assert_eq!(out[19_999], "same (20000).txt");
    }

    proptest! {
        #[test]
        fn names_round_trip(raw in "\\PC{1,40}") {
            if let Ok(name) = FileName::new(raw) {
                let fs = name_to_fs(&name);
                prop_assert!(!fs.contains(UNSAFE), "{fs:?}");
                prop_assert!(!fs.ends_with(['.', ' ']), "{fs:?}");
                prop_assert_eq!(name_from_fs(&fs), name.as_str());
            }
        }

        #[test]
        fn tags_round_trip(raw in "[a-z/%.:* ]{1,12}|\\PC{1,30}") {
            if let Ok(tag) = normalize_tag(&raw) {
                let fs = tag_to_fs(&tag);
                prop_assert!(!fs.contains('/') && fs != "." && fs != "..", "{fs:?}");
                prop_assert_eq!(tag_from_fs(&fs), Some(tag));
            }
        }

        #[test]
        fn a_class_names_its_files_as_the_whole_directory_does(
            names in proptest::collection::vec("[aB]{1,2}(\\.x)?( \\([23]\\))?( \\(2\\))?", 0..40),
            probe in 0usize..40,
        ) {
            let all = unique_names(names.iter().map(String::as_str));
            let Some(target) = all.get(probe) else { return Ok(()) };
            let class = name_class(target);
            let prefix = class_prefix(target);
            let members: Vec<usize> =
                (0..names.len()).filter(|&i| name_class(&names[i]) == class).collect();
            for &i in &members {
                prop_assert!(name_from_fs(&names[i]).to_lowercase().starts_with(&prefix));
            }
            let alone = unique_names(members.iter().map(|&i| names[i].as_str()));
            for (k, &i) in members.iter().enumerate() {
                prop_assert_eq!(&alone[k], &all[i]);
            }
            prop_assert!(members.contains(&probe));
        }

        #[test]
        fn unique_names_are_unique_and_stable(
            names in proptest::collection::vec("[ab]{1,2}(\\.x)?( \\(2\\))?", 0..40)
        ) {
            let out = unique_names(names.iter().map(String::as_str));
            let lower: HashSet<String> = out.iter().map(|n| n.to_lowercase()).collect();
            prop_assert_eq!(lower.len(), out.len());
            for (n, o) in names.iter().zip(&out) {
                prop_assert!(o == n || o.starts_with(n.rsplit_once('.').map_or(n.as_str(), |p| p.0)));
            }
            // Stable: a prefix of the input gives a prefix of the output.
            let half = names.len() / 2;
            prop_assert_eq!(&unique_names(names[..half].iter().map(String::as_str))[..], &out[..half]);
        }
    }
}
