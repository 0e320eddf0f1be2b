//! Full-text search end to end: the text the tagger extracts (documents, and images through
//! OCR) is indexed at tagging time and found by `text:` terms, ranked, with snippets, through
//! the API and `disgrafs search`.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;
use common::*;
use std::process::Command;

/// A long Markdown document whose words are all different, with `deep` near its end: far
/// beyond what its top keywords can cover.
fn long_markdown(deep: &str) -> String {
    let mut s = String::from("# Field notes\n\n");
    for i in 0..6_000 {
        s.push_str(&format!(
            "Entry{i} about walking{} and weather{}. ",
            i % 7,
            i % 13
        ));
        if i % 10 == 9 {
            s.push_str("\n\n");
        }
    }
    s.push_str(&format!(
        "\n\nFinally the {deep} was seen near the river.\n"
    ));
    s
}

fn list(s: &Server, q: &str) -> serde_json::Value {
    let r = s
        .http()
        .get(format!("{}/api/files", s.url))
        .query(&[("q", q)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{q}");
    r.json().unwrap()
}

fn first_names(v: &serde_json::Value) -> Vec<&str> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[test]
fn text_terms_find_words_anywhere_ranked_with_snippets() {
    let s = Server::start();
    let long = long_markdown("zephyrine");
    assert!(long.len() > 200 << 10);
    s.put_ok("long.md", long.as_bytes());
    s.put_ok(
        "borrow.md",
        b"# Borrowing\n\nThe borrow checker rejects it. Borrow once, borrow twice: borrow rules.\n",
    );
    s.put_ok(
        "once.txt",
        b"A note about gardens, rivers, bread and mountains that mentions borrow a single time among many other words.\n",
    );
    let draft = s.put_ok("draft.md", b"A draft on the borrow checker, unfinished.\n");
    s.put_ok(
        "zh.md",
        "# 笔记\n\n我们在研究机器学习和自然语言处理。".as_bytes(),
    );
    s.tag(draft["id"].as_str().unwrap(), &["draft"]);
    s.wait_tagged();

    // A word deep inside a long document is no keyword, and is found all the same.
    let long_tags = list(&s, "name:long.md");
    let tags = long_tags["files"][0]["tags"].to_string();
    assert!(!tags.contains("zephyrine"), "{tags}");
    assert_eq!(s.names("text:zephyrine"), ["long.md"]);
    assert_eq!(
        s.names("text:\"borrow checker\""),
        ["borrow.md", "draft.md"]
    );
    assert_eq!(s.names("text:borr*"), ["borrow.md", "draft.md", "once.txt"]);
    assert_eq!(s.names("text:机器学习"), ["zh.md"]);
    assert_eq!(
        s.names("text:borrow AND kind:document AND NOT draft"),
        ["borrow.md", "once.txt"]
    );

    // Best match first (the default order of a text query), with the matched word marked.
    let ranked = list(&s, "text:borrow");
    let names = first_names(&ranked);
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("borrow.md") < at("once.txt"), "{names:?}");
    let deep = list(&s, "text:zephyrine");
    let parts = deep["files"][0]["snippet"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .any(|p| p["hit"] == true && p["text"].as_str().unwrap() == "zephyrine"),
        "{parts:?}"
    );
    assert!(list(&s, "name:long")["files"][0].get("snippet").is_none());

    // `disgrafs search` prints the snippet under the file, the match in brackets.
    let out = s.cmd().args(["search", "text:zephyrine"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("long.md"), "{stdout}");
    assert!(stdout.contains("[zephyrine]"), "{stdout}");
}

/// Whether a tool the OCR test needs is installed; missing under `DISGRAFS_REQUIRE_OCR=1`
/// (set by scripts/deps.d/75-ocr.sh, which installs them) fails the test instead.
fn have(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_OCR").as_deref() != Ok("1"),
            "{tool} is missing but DISGRAFS_REQUIRE_OCR=1"
        );
        eprintln!("skipped: {tool} is not installed (scripts/deps.d/75-ocr.sh installs it)");
    }
    ok
}

#[test]
fn text_in_an_image_is_found_by_ocr() {
    if !have("tesseract", "--version") || !have("convert", "-version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sign.png");
    let drawn = Command::new("convert")
        .args(["-size", "900x220", "xc:white", "-fill", "black"])
        .args(["-font", "DejaVu-Sans", "-pointsize", "56"])
        .args(["-annotate", "+30+130", "Lighthouse keeper"])
        .arg(&png)
        .status()
        .unwrap();
    assert!(drawn.success());
    let s = Server::start();
    s.put_ok("sign.png", &std::fs::read(&png).unwrap());
    s.wait_tagged();
    assert_eq!(s.names("text:lighthouse"), ["sign.png"]);
    assert_eq!(
        s.names("text:\"lighthouse keeper\" kind:image"),
        ["sign.png"]
    );
    let rec = list(&s, "text:keeper");
    let chars: usize = rec["files"][0]["fields"]["ocr_chars"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(chars >= 10, "{rec}");
}
