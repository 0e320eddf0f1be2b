//! Inputs made to cost: very long words and lines, many distinct or near-identical tokens, long
//! archive names, and a deadline that has already passed. Each test asserts a bound on the work
//! the tagger reports in `Tagging::work` (never on wall-clock time): before these bounds, the
//! FASTA file kept a worker busy for minutes and the two long words for over half an hour.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;

use common::*;
use disgrafs_tagger::budget::CHECK_EVERY;
use disgrafs_tagger::keywords::{MAX_CONSIDERED_PER_KEYWORD, MAX_WORD_CHARS};
use disgrafs_tagger::{Deadline, HEAD_LEN, MAX_KEYWORDS, TagError, Tagging, Work, tag_file};
use std::path::Path;
use std::time::Instant;

fn tag(path: &Path, name: &str) -> Tagging {
    tag_file(path, name).expect("tag_file reads the file")
}

fn keywords(t: &Tagging) -> Vec<&str> {
    t.tags
        .iter()
        .filter(|t| t.extractor == "keywords")
        .map(|t| t.name.as_str())
        .collect()
}

/// The most LCS cells the duplicate check may fill whatever the text: a bounded number of
/// candidates, each compared with fewer than `MAX_KEYWORDS` kept ones, each at most three words of
/// at most `MAX_WORD_CHARS`.
fn max_similarity_cells() -> u64 {
    let phrase = (3 * MAX_WORD_CHARS + 2) as u64;
    let considered = (MAX_KEYWORDS * MAX_CONSIDERED_PER_KEYWORD) as u64;
    considered * MAX_KEYWORDS as u64 * phrase * phrase
}

fn assert_keyword_work_bounded(w: &Work) {
    assert!(
        w.considered <= (MAX_KEYWORDS * MAX_CONSIDERED_PER_KEYWORD) as u64,
        "{w:?}"
    );
    assert!(w.similarity_cells <= max_similarity_cells(), "{w:?}");
}

/// Deterministic DNA.
fn bases(len: usize, seed: u64) -> String {
    noise(len, seed)
        .iter()
        .map(|b| ['A', 'C', 'G', 'T'][usize::from(b & 3)])
        .collect()
}

#[test]
fn fasta_with_sequences_on_single_lines_costs_bounded_work() {
    let dir = tempfile::tempdir().unwrap();
    let fasta = format!(
        ">chr1 Homo sapiens chromosome sequence\n{}\n>chr2 Homo sapiens chromosome sequence\n{}\n",
        bases(300_000, 1),
        bases(300_000, 2)
    );
    let t = tag(
        &write(dir.path(), "reads.fa", fasta.as_bytes()),
        "reads.txt",
    );
    assert_keyword_work_bounded(&t.work);
    assert_eq!(t.work.bytes_read, (HEAD_LEN + fasta.len()) as u64);
    let k = keywords(&t);
    assert!(k.iter().any(|w| w.contains("sapiens")), "{k:?}");
    assert!(
        k.iter()
            .all(|w| w.chars().count() <= 3 * MAX_WORD_CHARS + 2),
        "{k:?}"
    );
}

#[test]
fn two_words_of_two_million_characters_are_no_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{} {}", "a".repeat(2_000_000), "b".repeat(2_000_000));
    let t = tag(
        &write(dir.path(), "words.txt", text.as_bytes()),
        "words.txt",
    );
    assert_eq!(t.work.words, 2);
    assert_eq!(
        (t.work.candidates, t.work.similarity_cells),
        (0, 0),
        "{t:?}"
    );
    assert!(keywords(&t).is_empty());
}

#[test]
fn near_identical_tokens_stop_at_the_considered_bound() {
    // Thousands of candidates that are all duplicates of the first (a 50-letter prefix in 55
    // characters is over the 0.9 similarity): the duplicate check would otherwise compare every
    // one with the kept keyword.
    let dir = tempfile::tempdir().unwrap();
    let prefix: String = "graphstoreentry".chars().cycle().take(50).collect();
    let mut text = String::new();
    for i in 0..50_000 {
        text.push_str(&format!("{prefix}{i:05}. "));
    }
    let t = tag(&write(dir.path(), "same.txt", text.as_bytes()), "same.txt");
    assert!(t.work.candidates >= 50_000, "{:?}", t.work);
    assert_eq!(
        t.work.considered,
        (MAX_KEYWORDS * MAX_CONSIDERED_PER_KEYWORD) as u64,
        "{:?}",
        t.work
    );
    assert_keyword_work_bounded(&t.work);
    assert_eq!(keywords(&t).len(), 1, "{t:?}");
}

#[test]
fn many_distinct_long_tokens_cost_bounded_work() {
    let dir = tempfile::tempdir().unwrap();
    // Distinct words of exactly the longest candidate length, in three-word blocks.
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < disgrafs_tagger::text::MAX_TEXT_BYTES {
        let w = format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let w: String = w.chars().cycle().take(MAX_WORD_CHARS).collect();
        text.push_str(&w.replace(char::is_numeric, "q"));
        text.push_str(if i % 3 == 2 { ", " } else { " " });
        i += 1;
    }
    let t = tag(&write(dir.path(), "ids.txt", text.as_bytes()), "ids.txt");
    assert_keyword_work_bounded(&t.work);
    assert!(t.work.words >= i - 1, "{:?}", t.work);
}

#[test]
fn vertical_whitespace_between_newlines_is_linear() {
    // A form feed after each newline made the tokenizer look back over all preceding whitespace
    // at every newline (quadratic); the text must still tokenize, and say nothing.
    let dir = tempfile::tempdir().unwrap();
    let text = format!("start {} end", "\n\x0c".repeat(1_000_000));
    let t = tag(&write(dir.path(), "ff.txt", text.as_bytes()), "ff.txt");
    assert_eq!(t.work.words, 2, "{:?}", t.work);
}

#[test]
fn long_tar_names_are_cut_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    // One GNU long name of 200,000 distinct words, and a short one.
    let long: String = (0..200_000).map(|i| format!("word{i}_")).collect();
    let bytes = targz(&[(&long, b"x"), ("docs/readme.txt", b"y")], 0);
    let t = tag(&write(dir.path(), "long.tar.gz", &bytes), "long.tar.gz");
    assert_eq!(t.fields.get("entries").map(String::as_str), Some("2"));
    assert_eq!(t.work.entries, 2);
    let listing = disgrafs_tagger::archive::targz_names(&bytes[..]).expect("a tar.gz");
    assert_eq!(
        listing.names[0].len(),
        disgrafs_tagger::archive::MAX_NAME_BYTES
    );
    assert!(t.tags.iter().any(|x| x.name == "docs"), "{t:?}");
}

#[test]
fn a_passed_deadline_stops_every_extractor_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut english = String::new();
    while english.len() < 1 << 20 {
        english.push_str(ENGLISH);
        english.push_str("\n\n");
    }
    let cap = disgrafs_tagger::archive::MAX_UNPACKED_BYTES;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("long.txt", english.clone().into_bytes()),
        ("long.md", english.clone().into_bytes()),
        ("long.html", format!("<p>{english}</p>").into_bytes()),
        ("long.rs", english.into_bytes()),
        ("bomb.tar.gz", targz(&[("after/late.txt", b"late")], cap)),
        (
            "trip.zip",
            zip(&[("holidayPhotos/beach.jpg", b"x"), ("a/b.txt", b"y")]),
        ),
        ("photo.jpg", jpeg_with_exif(1)),
        ("song.mp3", silent_mp3()),
        ("report.pdf", pdf(&pdf_pages())),
    ];
    for (name, bytes) in files {
        let path = write(dir.path(), name, &bytes);
        let passed = Deadline::at(Instant::now());
        match disgrafs_tagger::tag_file_with(&path, name, &passed) {
            Err(TagError::Deadline { work, .. }) => {
                // At most one check interval of words, and nothing read past the head once the
                // deadline is seen (text files are read in one go before the first check).
                assert!(work.words <= CHECK_EVERY as u64, "{name}: {work:?}");
                assert_eq!(work.bytes_unpacked, 0, "{name}: {work:?}");
                if !name.starts_with("long.") {
                    assert!(work.bytes_read <= HEAD_LEN as u64, "{name}: {work:?}");
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
