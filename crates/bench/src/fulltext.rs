//! The full-text rows of `disgrafs bench tagging`: indexing speed and index size of the store's
//! full-text index (SQLite FTS5 through `disgrafs_store::SqliteMeta`, as `disgrafs serve`
//! records a tagged content: one transaction per content), beside Python's `sqlite3` filling an
//! FTS5 table with the same tokenizer and the same text in the same run.
//!
//! Ours includes cutting the text into words (`index_text`: jieba for Chinese); Python gets the
//! text already cut, untimed. Size is what the text adds to the database file (ours: beside a
//! store of the same contents without text; Python's: its whole file), per byte of text.

use crate::row::{BenchRow, Better};
use disgrafs_core::fulltext::index_text;
use disgrafs_core::{FileKind, FileName};
use disgrafs_store::{MetaStore, NewFile, SqliteMeta, TagResult};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PY_FTS: &str = r#"
import json, os, sqlite3, sys, time
texts = json.load(open(sys.argv[1], encoding="utf-8"))
path = sys.argv[2]
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2')")
start = time.perf_counter()
for text in texts:
    db.execute("BEGIN")
    db.execute("INSERT INTO t (body) VALUES (?)", (text,))
    db.execute("COMMIT")
seconds = time.perf_counter() - start
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
print(json.dumps({"seconds": seconds, "bytes": os.path.getsize(path), "sqlite": sqlite3.sqlite_version}))
"#;

/// Indexes `texts` into a fresh store (with their text, or without it); returns the time taken
/// by recording the tagging results and the database's size on disk.
async fn store_run(
    dir: &Path,
    texts: &[String],
    with_text: bool,
) -> anyhow::Result<(Duration, u64)> {
    let path = dir.join(if with_text { "text.db" } else { "none.db" });
    let m = SqliteMeta::open(&path, 0.5).await?;
    let hashes: HashMap<String, usize> = (0..texts.len())
        .map(|i| {
            (
                blake3::hash(format!("doc{i}").as_bytes())
                    .to_hex()
                    .to_string(),
                i,
            )
        })
        .collect();
    for (hash, &i) in &hashes {
        let name = FileName::new(format!("doc{i}.txt")).map_err(anyhow::Error::msg)?;
        m.insert_file(NewFile {
            name: &name,
            folder: Default::default(),
            hash,
            size: texts[i].len() as u64,
            mime: "text/plain",
            kind: FileKind::Document,
            owner: None,
        })
        .await?;
    }
    let mut elapsed = Duration::ZERO;
    while let Some(job) = m.claim_job(60_000).await? {
        let i = hashes[&job.hash];
        let start = Instant::now();
        let text = if with_text {
            index_text(&texts[i])
        } else {
            String::new()
        };
        m.complete_job(
            &job,
            TagResult {
                mime: "text/plain".into(),
                kind: FileKind::Document,
                text,
                ..TagResult::default()
            },
        )
        .await?;
        elapsed += start.elapsed();
    }
    drop(m);
    let size = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    Ok((elapsed, size))
}

struct PyFts {
    seconds: f64,
    bytes: u64,
    sqlite: String,
}

fn run_python(python: &Path, dir: &Path, cut: &[String]) -> Result<PyFts, String> {
    let input = dir.join("texts.json");
    let script = dir.join("bench_fts.py");
    std::fs::write(&input, serde_json::to_vec(cut).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    std::fs::write(&script, PY_FTS).map_err(|e| e.to_string())?;
    let out = Command::new(python)
        .arg(&script)
        .arg(&input)
        .arg(dir.join("py.db"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "python failed: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad output: {e}"))?;
    Ok(PyFts {
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        bytes: v["bytes"].as_u64().unwrap_or(0),
        sqlite: v["sqlite"].as_str().unwrap_or("?").to_string(),
    })
}

/// The rows: indexing speed (MB of text per second) and index size (bytes per byte of text).
pub fn rows(python: &Path, texts: &[String]) -> anyhow::Result<Vec<BenchRow>> {
    let dir = tempfile::tempdir()?;
    let text_bytes: usize = texts.iter().map(String::len).sum();
    let (ours, none) = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let with = store_run(dir.path(), texts, true).await?;
                let without = store_run(dir.path(), texts, false).await?;
                anyhow::Ok((with, without))
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the store run panicked"))?
    })?;
    let cut: Vec<String> = texts.iter().map(|t| index_text(t)).collect();
    let py = run_python(python, dir.path(), &cut);
    let ours_name = "disgrafs store (SQLite FTS5)";
    let (py_name, note) = match &py {
        Ok(p) => (format!("python sqlite3 {} FTS5", p.sqlite), None),
        Err(e) => (
            "python sqlite3 FTS5".to_string(),
            Some(format!("peer not measured: {e}")),
        ),
    };
    let mb = |secs: f64| {
        if secs > 0.0 {
            text_bytes as f64 / secs / 1e6
        } else {
            0.0
        }
    };
    let per_byte = |bytes: u64| bytes as f64 / text_bytes.max(1) as f64;
    let indexing = BenchRow::new(
        "full-text indexing",
        "MB/s",
        Better::Higher,
        (py_name.clone(), py.as_ref().ok().map(|p| mb(p.seconds))),
        (ours_name, mb(ours.0.as_secs_f64())),
    )
    .with_note(note.clone().unwrap_or_else(|| {
        format!(
            "{} documents, {text_bytes} B; ours cuts the words and records the tagging (one \
             transaction each), python inserts pre-cut text; the store without text took {:.0} ms",
            texts.len(),
            none.0.as_secs_f64() * 1e3
        )
    }));
    let size = BenchRow::new(
        "full-text index size",
        "B per text byte",
        Better::Lower,
        (py_name, py.as_ref().ok().map(|p| per_byte(p.bytes))),
        (ours_name, per_byte(ours.1.saturating_sub(none.1))),
    )
    .with_note(note.unwrap_or_else(|| {
        "ours: the database with text minus the same without; python: its whole database (text \
         and index both)"
            .to_string()
    }));
    Ok(vec![indexing, size])
}
