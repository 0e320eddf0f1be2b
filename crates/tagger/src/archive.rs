//! Archives: the names inside zip and tar(.gz) files become the archive's keywords, and the
//! entry count a field. Nothing is extracted to disk.
//!
//! Zip: only the central directory is read, by a small reader written here rather than the
//! `zip` crate, because that crate loads the whole directory into memory before the first entry
//! is seen (a forged directory could claim millions of entries). Entry data is never inflated, so
//! a zip bomb costs nothing. Tar: entries are read in order, through gzip when compressed; the
//! bytes decompressed are capped at [`MAX_UNPACKED_BYTES`] (a gzip bomb stops there), and both
//! formats stop after [`MAX_ENTRIES`]. A name is kept up to [`MAX_NAME_BYTES`] (a tar long name
//! can be as long as the archive), so keyword counting is linear in the listing.

use crate::Collector;
use crate::keywords::split_identifier;
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

pub const VERSION: u32 = 1;

/// Entries listed at most.
pub const MAX_ENTRIES: usize = 10_000;
/// Decompressed tar bytes read at most (entry data is skipped by reading it).
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;
/// The longest entry name kept (Linux's PATH_MAX); the rest of a longer one is dropped.
pub const MAX_NAME_BYTES: usize = 4096;

/// An entry name, cut to [`MAX_NAME_BYTES`].
fn entry_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(MAX_NAME_BYTES)]).into_owned()
}

/// The names in an archive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub names: Vec<String>,
    /// The archive has more entries than were listed (the listing hit a bound or an error).
    pub truncated: bool,
    /// Why listing stopped early, when it did on an error.
    pub error: Option<String>,
    /// Bytes of the tar stream read, after decompression (zero for zip, which is never
    /// inflated).
    pub unpacked: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a zip archive: {0}")]
    NotZip(&'static str),
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;

/// Lists a zip's entry names from its central directory.
pub fn zip_names<R: Read + Seek>(r: &mut R) -> Result<Listing, ArchiveError> {
    let len = r.seek(SeekFrom::End(0))?;
    // The end record is 22 bytes plus a comment of up to 65535.
    let tail_len = len.min(22 + 65_535);
    r.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    r.read_exact(&mut tail)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD_SIG)
        .ok_or(ArchiveError::NotZip("no end of central directory"))?;
    let mut entries = u64::from(u16_at(&tail, eocd + 10));
    let mut cd_offset = u64::from(u32_at(&tail, eocd + 16));
    let eocd_abs = len - tail_len + eocd as u64;
    // Zip64: the real numbers are in another record, found through the locator just before.
    if (entries == 0xFFFF || cd_offset == 0xFFFF_FFFF) && eocd_abs >= 20 {
        let mut loc = [0u8; 20];
        r.seek(SeekFrom::Start(eocd_abs - 20))?;
        r.read_exact(&mut loc)?;
        if u32_at(&loc, 0) == ZIP64_LOCATOR_SIG {
            let rec_offset = u64_at(&loc, 8);
            let mut rec = [0u8; 56];
            if rec_offset.checked_add(56).is_some_and(|end| end <= len) {
                r.seek(SeekFrom::Start(rec_offset))?;
                r.read_exact(&mut rec)?;
                if u32_at(&rec, 0) == ZIP64_EOCD_SIG {
                    entries = u64_at(&rec, 32);
                    cd_offset = u64_at(&rec, 48);
                }
            }
        }
    }
    if cd_offset >= len {
        return Err(ArchiveError::NotZip(
            "central directory offset past the end",
        ));
    }
    r.seek(SeekFrom::Start(cd_offset))?;
    let mut r = BufReader::new(r.take(len - cd_offset));
    let mut listing = Listing::default();
    let mut header = [0u8; 46];
    let mut name = Vec::new();
    for _ in 0..entries {
        if listing.names.len() >= MAX_ENTRIES {
            listing.truncated = true;
            break;
        }
        if let Err(e) = r.read_exact(&mut header) {
            listing.truncated = true;
            listing.error = Some(format!("central directory cut short: {e}"));
            break;
        }
        if u32_at(&header, 0) != CENTRAL_SIG {
            listing.truncated = true;
            listing.error = Some("bad central directory entry".into());
            break;
        }
        let name_len = usize::from(u16_at(&header, 28));
        let skip = u64::from(u16_at(&header, 30)) + u64::from(u16_at(&header, 32));
        name.resize(name_len, 0);
        if let Err(e) = r.read_exact(&mut name) {
            listing.truncated = true;
            listing.error = Some(format!("central directory cut short: {e}"));
            break;
        }
        std::io::copy(&mut (&mut r).take(skip), &mut std::io::sink())?;
        listing.names.push(entry_name(&name));
    }
    Ok(listing)
}

/// Caps the bytes read from a stream: past the cap, reads fail, which stops the tar walk.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R> Capped<R> {
    fn used(&self) -> u64 {
        MAX_UNPACKED_BYTES - self.left
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(format!(
                "over {} MiB unpacked",
                MAX_UNPACKED_BYTES >> 20
            )));
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Lists a tar stream's entry names (decompress it first for `.tar.gz`).
pub fn tar_names<R: Read>(r: R) -> Listing {
    let mut archive = tar::Archive::new(Capped {
        inner: r,
        left: MAX_UNPACKED_BYTES,
    });
    let mut listing = Listing::default();
    match archive.entries() {
        Ok(entries) => {
            for entry in entries {
                if listing.names.len() >= MAX_ENTRIES {
                    listing.truncated = true;
                    break;
                }
                match entry {
                    Ok(entry) => listing.names.push(entry_name(&entry.path_bytes())),
                    Err(e) => {
                        listing.truncated = true;
                        listing.error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => listing.error = Some(e.to_string()),
    }
    listing.unpacked = archive.into_inner().used();
    listing
}

/// Lists a gzip stream that holds a tar. None when it is gzip of something else.
pub fn targz_names<R: Read>(r: R) -> Option<Listing> {
    let mut gz = flate2::read::GzDecoder::new(r);
    // A tar header has "ustar" at offset 257; read the first block to check before walking.
    let mut first = vec![0u8; 512];
    let mut got = 0;
    while got < first.len() {
        match gz.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    if got < 512 || &first[257..262] != b"ustar" {
        return None;
    }
    Some(tar_names(std::io::Cursor::new(first).chain(gz)))
}

/// Keywords from entry names: every name split into words (directories, and file stems with
/// identifiers split), counted once per entry, most frequent first. Returns (word, entries).
pub fn name_keywords(names: &[String], top: usize) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut words = String::new();
    for name in names {
        words.clear();
        let mut parts = name
            .split(['/', '\\'])
            .filter(|p| !p.is_empty() && *p != ".")
            .peekable();
        while let Some(part) = parts.next() {
            // The last part's extension names a format, not a subject.
            let part = if parts.peek().is_none() {
                part.rsplit_once('.').map_or(part, |(stem, _)| stem)
            } else {
                part
            };
            split_identifier(part, &mut words);
            words.push(' ');
        }
        // Once per entry: a set, since one long name can hold thousands of words.
        let mut seen: HashSet<String> = HashSet::new();
        for w in words.split(|c: char| !c.is_alphanumeric()) {
            if crate::keywords::is_overlong(w) {
                continue;
            }
            let lower = w.to_lowercase();
            let useful = lower.chars().count() >= 3
                && !lower.chars().all(|c| c.is_ascii_digit())
                && !crate::keywords::is_stop_word(&lower);
            if useful {
                seen.insert(lower);
            }
        }
        for w in seen {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    ranked
}

pub(crate) fn tag_archive(c: &mut Collector, path: &Path, mime: &str) {
    let Some(mut file) = c.open("archive", path) else {
        return;
    };
    let listing = match mime {
        "application/zip" => zip_names(&mut file).map_err(|e| e.to_string()),
        "application/x-tar" => Ok(tar_names(BufReader::new(&mut file))),
        // None: plain gzip of one file, nothing to list.
        "application/gzip" => targz_names(BufReader::new(&mut file)).ok_or_else(String::new),
        _ => Err(String::new()),
    };
    c.count_read(&file);
    let listing = match listing {
        Ok(l) => l,
        Err(e) => {
            if !e.is_empty() {
                c.warn(format!("archive: {e}"));
            }
            return;
        }
    };
    c.out.work.entries += listing.names.len() as u64;
    c.out.work.bytes_unpacked += listing.unpacked;
    if let Some(e) = &listing.error {
        c.warn(format!(
            "archive: listing stopped after {} entries: {e}",
            listing.names.len()
        ));
    } else if listing.truncated {
        c.warn(format!(
            "archive: only the first {MAX_ENTRIES} entries were listed"
        ));
    }
    c.field(
        "entries",
        format!(
            "{}{}",
            listing.names.len(),
            if listing.truncated { "+" } else { "" }
        ),
    );
    let ranked = name_keywords(&listing.names, crate::MAX_KEYWORDS);
    let Some(&(_, most)) = ranked.first() else {
        return;
    };
    // Confidence grows with the share of entries a word names and with the archive's size
    // (one file's name says less than a shared folder name across a hundred).
    let evidence = (listing.names.len() as f64 / 20.0).min(1.0);
    for (word, n) in ranked {
        let share = n as f64 / most as f64;
        c.tag(
            "archive",
            VERSION,
            &word,
            0.45 + 0.25 * share + 0.25 * evidence * share,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keywords_split_and_rank() {
        let names: Vec<String> = [
            "photos/holidayBeach/IMG_001.jpg",
            "photos/holidayBeach/IMG_002.jpg",
            "photos/readme.txt",
            "photos/",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let k = name_keywords(&names, 10);
        assert_eq!(k[0], ("photos".to_string(), 4));
        assert!(
            k.contains(&("holiday".to_string(), 2)) && k.contains(&("beach".to_string(), 2)),
            "{k:?}"
        );
        assert!(!k.iter().any(|(w, _)| w == "jpg" || w == "001"), "{k:?}");
    }

    #[test]
    fn not_a_zip() {
        assert!(zip_names(&mut std::io::Cursor::new(vec![0u8; 100])).is_err());
        assert!(zip_names(&mut std::io::Cursor::new(Vec::new())).is_err());
        // An end record pointing past the end.
        let mut eocd = vec![
            0x50, 0x4b, 5, 6, 0, 0, 0, 0, 1, 0, 1, 0, 46, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0,
        ];
        assert!(zip_names(&mut std::io::Cursor::new(eocd.clone())).is_err());
        // One claimed entry at offset 0, which is not a central directory entry.
        eocd[16] = 0;
        eocd[17] = 0;
        let l = zip_names(&mut std::io::Cursor::new(eocd)).expect("end record parses");
        assert!(l.truncated && l.error.is_some());
    }
}
