//! `disgrafs bench tagging`: keyword extraction speed and quality beside the reference
//! implementation of YAKE (the `yake` package from PyPI), on the same texts in the same run.
//!
//! Corpus: English is the licence texts Debian ships in every system (`/usr/share/common-licenses`,
//! package base-files: real prose, about 280 KB); Chinese is generated reproducibly from the
//! sentence pools in `data/tagging_zh.txt` (six topics plus generic sentences, mixed by a fixed
//! pseudo-random sequence). Both sides extract the top 10 keyphrases of up to 3 words per document
//! with the reference's defaults (window 1, dedup 0.9).
//!
//! Python gets Chinese pre-segmented by jieba (words joined by spaces): it has no segmenter and
//! would otherwise see whole clauses as words. Its timing excludes that segmentation and its
//! interpreter start; ours includes segmentation. Speed is best-of-`repeats`, in MB of original
//! text per second, one thread each.

use crate::row::{BenchRow, Better};
use disgrafs_tagger::keywords::{self, Keyword, Yake};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Options of [`run`] (the flags of `disgrafs bench tagging`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Python interpreter with `yake` installed (default: `$DISGRAFS_YAKE_PYTHON`, else the venv
    /// scripts/deps.d/30-tagger.sh makes in target/yake-venv, else `python3`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Timed passes per side; the best counts.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Directory of English texts.
    #[arg(skip = PathBuf::from("/usr/share/common-licenses"))]
    pub english_dir: PathBuf,
    /// Generated Chinese documents.
    #[arg(skip = 24usize)]
    pub chinese_docs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("corpus: {0}")]
    Corpus(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("full-text index: {0}")]
    Store(String),
}

/// One document of the corpus.
#[derive(Debug, Clone)]
pub struct Doc {
    pub lang: Lang,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    English,
    Chinese,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::English => "en",
            Lang::Chinese => "zh",
        }
    }
    fn whatlang(self) -> keywords::Lang {
        match self {
            Lang::English => keywords::Lang::Eng,
            Lang::Chinese => keywords::Lang::Cmn,
        }
    }
}

/// The English documents: every regular file of `dir`, sorted by name (symlinks skipped, they
/// repeat files).
pub fn english_corpus(dir: &Path) -> Result<Vec<Doc>, BenchError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BenchError::Corpus(format!("{}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let docs: Vec<Doc> = paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|t| t.len() > 1000)
        .map(|text| Doc {
            lang: Lang::English,
            text,
        })
        .collect();
    if docs.is_empty() {
        return Err(BenchError::Corpus(format!(
            "no English texts in {}",
            dir.display()
        )));
    }
    Ok(docs)
}

/// `n` Chinese documents of about 6 KB, each mostly about one topic, reproducibly.
pub fn chinese_corpus(n: usize) -> Vec<Doc> {
    let mut topics: Vec<Vec<&str>> = Vec::new();
    for line in include_str!("../data/tagging_zh.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if line.starts_with('#') {
            topics.push(Vec::new());
        } else if let Some(t) = topics.last_mut() {
            t.push(line);
        }
    }
    // The last pool holds generic sentences sprinkled into every topic.
    let generic = topics.pop().unwrap_or_default();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        // SplitMix64: a fixed sequence on every machine.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % bound.max(1) as u64) as usize
    };
    (0..n)
        .map(|i| {
            let pool = &topics[i % topics.len().max(1)];
            let mut text = String::new();
            while text.len() < 6000 {
                let s = if next(5) == 0 && !generic.is_empty() {
                    generic[next(generic.len())]
                } else {
                    pool[next(pool.len())]
                };
                text.push_str(s);
                if next(4) == 0 {
                    text.push_str("\n\n");
                }
            }
            Doc {
                lang: Lang::Chinese,
                text,
            }
        })
        .collect()
}

/// The Python side: reads `[{"lang", "text"}]`, prints per-language best seconds and every
/// document's keywords.
const PY_SCRIPT: &str = r#"
import json, sys, time
from importlib.metadata import version
import yake
docs = json.load(open(sys.argv[1], encoding="utf-8"))
repeats = int(sys.argv[2])
ex = {lang: yake.KeywordExtractor(lan=lang, n=3, top=10, dedup_lim=0.9, window_size=1) for lang in ("en", "zh")}
best = {}
keywords = []
for r in range(repeats):
    spent = {"en": 0.0, "zh": 0.0}
    keywords = []
    for d in docs:
        t0 = time.perf_counter()
        kws = ex[d["lang"]].extract_keywords(d["text"])
        spent[d["lang"]] += time.perf_counter() - t0
        keywords.append([k for k, _ in kws])
    for lang, s in spent.items():
        best[lang] = min(best.get(lang, s), s)
print(json.dumps({"version": version("yake"), "seconds": best, "keywords": keywords}))
"#;

struct PythonResult {
    version: String,
    seconds_en: f64,
    seconds_zh: f64,
    keywords: Vec<Vec<String>>,
}

fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("DISGRAFS_YAKE_PYTHON") {
        return PathBuf::from(p);
    }
    let candidates = [
        PathBuf::from("target/yake-venv/bin/python"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/yake-venv/bin/python"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Words of a Chinese text joined by spaces, as Python's YAKE needs them.
fn presegment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 5 / 4);
    keywords::for_each_piece(text, |piece| {
        match piece {
            keywords::Piece::Word { text, .. } => out.push_str(text),
            keywords::Piece::BlockBreak => out.push_str(" ,"),
            keywords::Piece::SentenceBreak => out.push_str(" 。"),
        }
        out.push(' ');
    });
    out
}

fn run_python(python: &Path, docs: &[Doc], repeats: usize) -> Result<PythonResult, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| {
            let text = if d.lang == Lang::Chinese {
                presegment(&d.text)
            } else {
                d.text.clone()
            };
            serde_json::json!({ "lang": d.lang.code(), "text": text })
        })
        .collect();
    let docs_path = dir.path().join("docs.json");
    let script_path = dir.path().join("bench_yake.py");
    std::fs::write(
        &docs_path,
        serde_json::to_vec(&input).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(&script_path, PY_SCRIPT).map_err(|e| e.to_string())?;
    let out = Command::new(python)
        .arg(&script_path)
        .arg(&docs_path)
        .arg(repeats.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} failed: {}",
            python.display(),
            err.lines().last().unwrap_or("")
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad output: {e}"))?;
    let secs = |lang: &str| v["seconds"][lang].as_f64().unwrap_or(0.0);
    let keywords = v["keywords"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .map(|kws| {
                    kws.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PythonResult {
        version: v["version"].as_str().unwrap_or("?").to_string(),
        seconds_en: secs("en"),
        seconds_zh: secs("zh"),
        keywords,
    })
}

/// Keywords compared across implementations: lowercase, and CJK without the spaces Python's
/// pre-segmented input puts between words.
fn comparable(k: &str) -> String {
    let lower = k.to_lowercase();
    if lower.chars().any(keywords::is_cjk) {
        lower.chars().filter(|c| !c.is_whitespace()).collect()
    } else {
        lower.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Share of `theirs` (top 10) found in `ours`.
fn agreement(ours: &[Keyword], theirs: &[String]) -> Option<f64> {
    if theirs.is_empty() {
        return None;
    }
    let ours: Vec<String> = ours.iter().map(|k| comparable(&k.text)).collect();
    let hits = theirs
        .iter()
        .filter(|t| ours.contains(&comparable(t)))
        .count();
    Some(hits as f64 / theirs.len() as f64)
}

fn time_ours(docs: &[&Doc], repeats: usize) -> (Duration, Vec<Vec<Keyword>>) {
    let yake = Yake::default();
    let mut best = Duration::MAX;
    let mut results = Vec::new();
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        results = docs
            .iter()
            .map(|d| yake.ranked(&d.text, Some(d.lang.whatlang()), 10))
            .collect();
        best = best.min(start.elapsed());
    }
    (best, results)
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / secs / 1e6
    } else {
        0.0
    }
}

/// Runs the benchmark. A missing or failing Python is not an error: its rows have no baseline
/// and say why.
pub fn run(opts: &Args) -> Result<Vec<BenchRow>, BenchError> {
    let mut docs = english_corpus(&opts.english_dir)?;
    docs.extend(chinese_corpus(opts.chinese_docs));
    // Warm-up: loads jieba's dictionary and the stemmers, which a long-running worker has done.
    let _ = Yake::default().ranked(&chinese_corpus(1)[0].text, Some(keywords::Lang::Cmn), 10);
    let en: Vec<&Doc> = docs.iter().filter(|d| d.lang == Lang::English).collect();
    let zh: Vec<&Doc> = docs.iter().filter(|d| d.lang == Lang::Chinese).collect();
    let bytes = |ds: &[&Doc]| ds.iter().map(|d| d.text.len()).sum::<usize>();
    let (en_bytes, zh_bytes) = (bytes(&en), bytes(&zh));
    let (en_time, en_kw) = time_ours(&en, opts.repeats);
    let (zh_time, zh_kw) = time_ours(&zh, opts.repeats);

    let python = opts.python.clone().unwrap_or_else(default_python);
    let py = run_python(&python, &docs, opts.repeats);
    let ours = "disgrafs-tagger yake";
    let (py_name, py_note) = match &py {
        Ok(p) => (format!("python yake {}", p.version), None),
        Err(e) => ("python yake".to_string(), Some(e.clone())),
    };
    let base = |secs: fn(&PythonResult) -> f64, bytes: usize| {
        py.as_ref().ok().map(|p| mbps(bytes, secs(p)))
    };
    let mut rows = vec![
        BenchRow::new(
            "keywords english",
            "MB/s",
            Better::Higher,
            (py_name.clone(), base(|p| p.seconds_en, en_bytes)),
            (ours, mbps(en_bytes, en_time.as_secs_f64())),
        ),
        BenchRow::new(
            "keywords chinese",
            "MB/s",
            Better::Higher,
            (py_name.clone(), base(|p| p.seconds_zh, zh_bytes)),
            (ours, mbps(zh_bytes, zh_time.as_secs_f64())),
        )
        .with_note(
            "python gets the text pre-segmented by jieba, untimed; ours includes segmentation",
        ),
        BenchRow::new(
            "keywords english+chinese",
            "MB/s",
            Better::Higher,
            (
                py_name.clone(),
                base(|p| p.seconds_en + p.seconds_zh, en_bytes + zh_bytes),
            ),
            (
                ours,
                mbps(en_bytes + zh_bytes, (en_time + zh_time).as_secs_f64()),
            ),
        )
        .with_note(format!(
            "{} English docs ({en_bytes} B), {} Chinese docs ({zh_bytes} B), best of {}",
            en.len(),
            zh.len(),
            opts.repeats
        )),
    ];
    if let Ok(p) = &py {
        let share = |ours: &[Vec<Keyword>], offset: usize| {
            let shares: Vec<f64> = ours
                .iter()
                .enumerate()
                .filter_map(|(i, k)| agreement(k, p.keywords.get(offset + i)?))
                .collect();
            if shares.is_empty() {
                0.0
            } else {
                100.0 * shares.iter().sum::<f64>() / shares.len() as f64
            }
        };
        rows.push(
            BenchRow::new(
                "top-10 agreement english",
                "%",
                Better::Higher,
                (py_name.clone(), None),
                (ours, share(&en_kw, 0)),
            )
            .with_note("share of python yake's top 10 also in ours, mean over documents"),
        );
        rows.push(
            BenchRow::new(
                "top-10 agreement chinese",
                "%",
                Better::Higher,
                (py_name, None),
                (ours, share(&zh_kw, en.len())),
            )
            .with_note(
                "python yake treats words under 3 characters as stop words: most Chinese words",
            ),
        );
    }
    if let Some(note) = py_note {
        for r in rows.iter_mut().take(3) {
            r.note = Some(format!("peer not measured: {note}"));
        }
    }
    let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();
    rows.extend(
        crate::fulltext::rows(&python, &texts).map_err(|e| BenchError::Store(format!("{e:#}")))?,
    );
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_reproducible() {
        let a = chinese_corpus(3);
        let b = chinese_corpus(3);
        assert_eq!(a.len(), 3);
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text));
        assert!(a[0].text.contains("大熊猫") && a[1].text.contains("长城"));
    }

    #[test]
    fn comparison_ignores_case_and_cjk_spaces() {
        assert_eq!(comparable("Honey  Bee"), "honey bee");
        assert_eq!(comparable("大熊猫 保护"), "大熊猫保护");
        let ours = vec![Keyword {
            text: "大熊猫保护".into(),
            score: 0.1,
            confidence: 0.9,
        }];
        assert_eq!(
            agreement(&ours, &["大熊猫 保护".into(), "竹子".into()]),
            Some(0.5)
        );
        assert_eq!(agreement(&ours, &[]), None);
    }

    #[test]
    fn presegmented_chinese_has_spaces() {
        let s = presegment("大熊猫吃竹子。");
        assert!(s.contains("大熊猫 "), "{s}");
    }
}
