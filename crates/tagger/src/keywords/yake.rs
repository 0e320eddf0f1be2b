//! YAKE! (Campos et al., "YAKE! Keyword extraction from single documents using multiple local
//! features", Information Sciences 2020), implemented here rather than taken from `yake-rust`
//! so that tokenization (jieba for CJK), stemming and the hot loop's allocations are ours to
//! control. The feature formulas follow the paper and the reference Python package, so the
//! benchmark can compare keywords with it; the differences are deliberate and listed:
//!
//! - Terms are keyed by their Snowball stem (English and the other languages Snowball knows)
//!   instead of the reference's "strip one trailing s".
//! - Words mixing letters and digits that start with a letter (`mp3`, `blake3`) are ordinary
//!   words, not "unparsable": they are good file tags.
//! - A CJK word is a stop word when it is a single character (the reference's "shorter than 3
//!   characters" rule would discard nearly every Chinese word).
//!
//! - A word over [`super::MAX_WORD_CHARS`] is no candidate (it breaks the block like
//!   punctuation), and the duplicate check looks at most [`MAX_CONSIDERED_PER_KEYWORD`]
//!   candidates per keyword wanted: the reference compares every candidate, with an LCS on
//!   unbounded words, which is quadratic in the length of a long word.
//!
//! The score of a candidate is lower for better keyphrases; [`Yake::extract`] maps it to a
//! confidence in 0..=1 (see [`confidence`]).

use super::stopwords::is_stop;
use super::tokenize::{Piece, is_cjk, tokenize_until};
use super::{Keyword, KeywordExtractor, is_overlong};
use crate::budget::{Deadline, Expired, Ticker, Work};
use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::ops::ControlFlow;

/// The duplicate check looks at no more than this many candidates per keyword asked for; past
/// that, a document gives fewer keywords rather than more work.
pub const MAX_CONSIDERED_PER_KEYWORD: usize = 20;

/// YAKE's parameters; the defaults are the reference implementation's.
#[derive(Debug, Clone)]
pub struct YakeConfig {
    /// Longest keyphrase, in words.
    pub max_ngram: usize,
    /// Co-occurrence window, in words.
    pub window: usize,
    /// Two keyphrases more similar than this (0..=1) are duplicates; the better one is kept.
    pub dedup_threshold: f64,
}

impl Default for YakeConfig {
    fn default() -> Self {
        YakeConfig {
            max_ngram: 3,
            window: 1,
            dedup_threshold: 0.9,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Yake {
    pub config: YakeConfig,
}

/// A word's role, as YAKE's reference tags it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// A number.
    Digit,
    /// Starts with a digit but has letters (`3d`, `2nd`): never part of a keyphrase.
    Unparsable,
    /// All capitals (`NASA`).
    Acronym,
    /// Capitalised, not first in its sentence.
    Proper,
    Plain,
}

fn tag_of(word: &str, first_in_sentence: bool) -> Tag {
    let mut letters = 0usize;
    let mut upper = 0usize;
    let mut digits = 0usize;
    for c in word.chars() {
        if c.is_alphabetic() {
            letters += 1;
            upper += usize::from(c.is_uppercase());
        } else if c.is_numeric() {
            digits += 1;
        }
    }
    if letters == 0 {
        return if digits > 0 {
            Tag::Digit
        } else {
            Tag::Unparsable
        };
    }
    if word.starts_with(|c: char| c.is_numeric()) {
        return Tag::Unparsable;
    }
    if upper == letters && letters > 1 {
        return Tag::Acronym;
    }
    if !first_in_sentence && word.starts_with(char::is_uppercase) {
        return Tag::Proper;
    }
    Tag::Plain
}

#[derive(Debug, Default)]
struct Term {
    tf: u32,
    tf_acronym: u32,
    tf_proper: u32,
    stop: bool,
    /// Distinct sentence numbers the term occurs in, ascending.
    sentences: Vec<u32>,
    /// Co-occurrence graph aggregates, filled after the scan.
    left_distinct: u32,
    left_weight: u32,
    right_distinct: u32,
    right_weight: u32,
    /// The term's weight `H` (lower is more important).
    h: f64,
}

/// Up to `MAX_N` term ids; unused slots are `u32::MAX`.
const MAX_N: usize = 4;
type CandKey = [u32; MAX_N];

#[derive(Debug)]
struct Candidate<'s> {
    tf: u32,
    /// The words of its first occurrence, borrowed from the text: the display form is built only
    /// for the few candidates that make the output.
    words: [&'s str; MAX_N],
    n: u8,
    valid: bool,
}

impl Candidate<'_> {
    /// Lowercased; Chinese words joined without a space, as they are written.
    fn text(&self) -> String {
        let words = &self.words[..usize::from(self.n)];
        let mut text = String::new();
        for (i, w) in words.iter().enumerate() {
            if i > 0 && !(w.starts_with(is_cjk) && words[i - 1].starts_with(is_cjk)) {
                text.push(' ');
            }
            text.extend(w.chars().flat_map(char::to_lowercase));
        }
        text
    }
}

/// One document's scan state.
struct Scan<'s> {
    stemmer: Option<&'s Stemmer>,
    terms: Vec<Term>,
    ids: FxHashMap<String, u32>,
    /// Exact spelling → term id (a cache in front of `ids`).
    surfaces: FxHashMap<&'s str, u32>,
    /// (left, right) → times `left` was seen right before `right` within the window.
    edges: FxHashMap<(u32, u32), u32>,
    candidates: FxHashMap<CandKey, Candidate<'s>>,
    sentence: u32,
    sentence_pos: u32,
    /// The current block: (term id, tag, surface).
    block: Vec<(u32, Tag, &'s str)>,
    lower: String,
    words: usize,
}

impl<'s> Scan<'s> {
    fn term_id(&mut self, word: &'s str, cjk: bool) -> u32 {
        // Most words repeat with the same spelling: a borrowed-key lookup skips lowercasing,
        // stemming and allocation for them.
        if let Some(&id) = self.surfaces.get(word) {
            return id;
        }
        let id = self.stemmed_term_id(word, cjk);
        self.surfaces.insert(word, id);
        id
    }

    fn stemmed_term_id(&mut self, word: &str, cjk: bool) -> u32 {
        self.lower.clear();
        if word.is_ascii() {
            self.lower.push_str(word);
            self.lower.make_ascii_lowercase();
        } else {
            self.lower.extend(word.chars().flat_map(char::to_lowercase));
        }
        let key: Cow<str> = match self.stemmer {
            Some(s) if !cjk => s.stem(&self.lower),
            _ => Cow::Borrowed(self.lower.as_str()),
        };
        if let Some(&id) = self.ids.get(key.as_ref()) {
            return id;
        }
        let id = self.terms.len() as u32;
        let key = key.into_owned();
        let stop = is_stop(&self.lower, cjk);
        self.ids.insert(key, id);
        self.terms.push(Term {
            stop,
            ..Term::default()
        });
        id
    }

    fn word(&mut self, word: &'s str, cjk: bool, cfg: &YakeConfig) {
        self.words += 1;
        if is_overlong(word) {
            self.block_break();
            return;
        }
        let tag = if cjk {
            Tag::Plain
        } else {
            tag_of(word, self.sentence_pos == 0)
        };
        self.sentence_pos += 1;
        let id = self.term_id(word, cjk);
        let term = &mut self.terms[id as usize];
        term.tf += 1;
        term.tf_acronym += u32::from(tag == Tag::Acronym);
        term.tf_proper += u32::from(tag == Tag::Proper);
        if term.sentences.last() != Some(&self.sentence) {
            term.sentences.push(self.sentence);
        }
        let excluded = |t: Tag| matches!(t, Tag::Digit | Tag::Unparsable);
        if !excluded(tag) {
            let from = self.block.len().saturating_sub(cfg.window);
            for &(left, left_tag, _) in &self.block[from..] {
                if !excluded(left_tag) {
                    *self.edges.entry((left, id)).or_insert(0) += 1;
                }
            }
        }
        // Every n-gram ending at this word, within the block.
        self.block.push((id, tag, word));
        let len = self.block.len();
        for n in 1..=cfg.max_ngram.clamp(1, MAX_N).min(len) {
            let words = &self.block[len - n..];
            let mut key = [u32::MAX; MAX_N];
            for (slot, w) in key.iter_mut().zip(words) {
                *slot = w.0;
            }
            bump_candidate(&mut self.candidates, &self.terms, key, words);
        }
    }

    fn block_break(&mut self) {
        self.block.clear();
    }

    fn sentence_break(&mut self) {
        self.block.clear();
        if self.sentence_pos > 0 {
            self.sentence += 1;
            self.sentence_pos = 0;
        }
    }

    /// Computes every term's `H` from the paper's five features.
    fn weigh_terms(&mut self) {
        for (&(left, right), &w) in &self.edges {
            let l = &mut self.terms[left as usize];
            l.right_distinct += 1;
            l.right_weight += w;
            let r = &mut self.terms[right as usize];
            r.left_distinct += 1;
            r.left_weight += w;
        }
        let max_tf = self.terms.iter().map(|t| t.tf).max().unwrap_or(1).max(1) as f64;
        let valid: Vec<f64> = self
            .terms
            .iter()
            .filter(|t| !t.stop)
            .map(|t| t.tf as f64)
            .collect();
        let (mean, std) = if valid.is_empty() {
            (0.0, 0.0)
        } else {
            let mean = valid.iter().sum::<f64>() / valid.len() as f64;
            let var = valid.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / valid.len() as f64;
            (mean, var.sqrt())
        };
        let sentences = f64::from(self.sentence + u32::from(self.sentence_pos > 0)).max(1.0);
        for t in &mut self.terms {
            let tf = f64::from(t.tf);
            let ratio = |d: u32, w: u32| {
                if w == 0 {
                    0.0
                } else {
                    f64::from(d) / f64::from(w)
                }
            };
            let rel = (0.5 + ratio(t.left_distinct, t.left_weight) * tf / max_tf)
                + (0.5 + ratio(t.right_distinct, t.right_weight) * tf / max_tf);
            let freq = if mean + std > 0.0 {
                tf / (mean + std)
            } else {
                tf
            };
            let spread = t.sentences.len() as f64 / sentences;
            let case = f64::from(t.tf_acronym.max(t.tf_proper)) / (1.0 + tf.ln());
            let median = median(&t.sentences);
            let pos = (3.0 + median).ln().ln();
            t.h = (pos * rel) / (case + freq / rel + spread / rel);
        }
    }

    /// The candidate's score: product of its words' weights over their sum, favouring frequent
    /// phrases; stop words inside weigh by how likely they join their neighbours.
    fn score(&self, key: &CandKey, tf: u32) -> f64 {
        let n = key.iter().position(|&k| k == u32::MAX).unwrap_or(MAX_N);
        let ids = &key[..n];
        let mut sum = 0.0;
        let mut prod = 1.0;
        for (i, &id) in ids.iter().enumerate() {
            let t = &self.terms[id as usize];
            if !t.stop {
                sum += t.h;
                prod *= t.h;
                continue;
            }
            // Only interior stop words reach here (valid candidates neither start nor end with one).
            let p = |a: u32, b: u32, denom: u32| {
                self.edges
                    .get(&(a, b))
                    .map_or(0.0, |&w| f64::from(w) / f64::from(denom.max(1)))
            };
            let before = i
                .checked_sub(1)
                .map_or(0.0, |j| p(ids[j], id, self.terms[ids[j] as usize].tf));
            let after = ids
                .get(i + 1)
                .map_or(0.0, |&n| p(id, n, self.terms[n as usize].tf));
            let prob = before * after;
            prod *= 1.0 + (1.0 - prob);
            sum -= 1.0 - prob;
        }
        prod / ((sum + 1.0) * f64::from(tf.max(1)))
    }
}

/// Counts one occurrence of the n-gram `words` (whose term ids are `key`).
fn bump_candidate<'s>(
    candidates: &mut FxHashMap<CandKey, Candidate<'s>>,
    terms: &[Term],
    key: CandKey,
    words: &[(u32, Tag, &'s str)],
) {
    if let Some(c) = candidates.get_mut(&key) {
        c.tf += 1;
        return;
    }
    let n = words.len();
    let valid = !words
        .iter()
        .any(|w| matches!(w.1, Tag::Digit | Tag::Unparsable))
        && !terms[key[0] as usize].stop
        && !terms[key[n - 1] as usize].stop;
    let mut surface = [""; MAX_N];
    for (slot, w) in surface.iter_mut().zip(words) {
        *slot = w.2;
    }
    candidates.insert(
        key,
        Candidate {
            tf: 1,
            words: surface,
            n: n as u8,
            valid,
        },
    );
}

fn median(sorted: &[u32]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => f64::from(sorted[n / 2]),
        n => (f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0,
    }
}

/// Is `2·LCS(a, b) / (|a| + |b|)` over `threshold`? That ratio is the Levenshtein ratio (with
/// substitutions costing 2) the reference implementation deduplicates with. The LCS is skipped
/// when the lengths alone rule it out (LCS ≤ the shorter length); `cells` counts the table cells
/// filled.
fn similar(a: &str, b: &str, threshold: f64, cells: &mut u64) -> bool {
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la + lb == 0 {
        return 1.0 > threshold;
    }
    if 2.0 * la.min(lb) as f64 / (la + lb) as f64 <= threshold {
        return false;
    }
    *cells += (la * lb) as u64;
    similarity(a, b) > threshold
}

/// `2·LCS / (|a| + |b|)`, in 0..=1.
fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for ca in &a {
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = if ca == cb {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    2.0 * prev[b.len()] as f64 / (a.len() + b.len()) as f64
}

/// Maps a YAKE score to a confidence. The score is unbounded, spans orders of magnitude within a
/// document and shrinks as documents grow, so the confidence blends how many times worse than the
/// document's best the keyword is, on a log scale (2x worse: 0.77, 10x: 0.5, 100x: 0.33), with an
/// absolute part (so a document whose best candidate is poor does not claim certainty), and is
/// damped for texts too short to carry evidence.
pub fn confidence(score: f64, best: f64, words: usize) -> f64 {
    let relative = if score > 0.0 && best > 0.0 {
        1.0 / (1.0 + (score / best).log10().max(0.0))
    } else {
        1.0
    };
    let absolute = 1.0 / (1.0 + (score.max(0.0) / 0.05).sqrt());
    let evidence = (words as f64 / 60.0).min(1.0);
    ((0.6 * relative + 0.4 * absolute) * (0.5 + 0.5 * evidence)).clamp(0.0, 1.0)
}

/// The Snowball stemmer for a detected language, if Snowball has one.
pub fn stemmer_for(lang: Option<whatlang::Lang>) -> Option<&'static Stemmer> {
    use std::sync::OnceLock;
    use whatlang::Lang as L;
    let alg = match lang? {
        L::Eng => Algorithm::English,
        L::Fra => Algorithm::French,
        L::Deu => Algorithm::German,
        L::Spa => Algorithm::Spanish,
        L::Por => Algorithm::Portuguese,
        L::Ita => Algorithm::Italian,
        L::Nld => Algorithm::Dutch,
        L::Rus => Algorithm::Russian,
        L::Swe => Algorithm::Swedish,
        _ => return None,
    };
    static STEMMERS: OnceLock<Vec<(Algorithm, Stemmer)>> = OnceLock::new();
    let all = STEMMERS.get_or_init(|| {
        [
            Algorithm::English,
            Algorithm::French,
            Algorithm::German,
            Algorithm::Spanish,
            Algorithm::Portuguese,
            Algorithm::Italian,
            Algorithm::Dutch,
            Algorithm::Russian,
            Algorithm::Swedish,
        ]
        .into_iter()
        .map(|a| (a, Stemmer::create(a)))
        .collect()
    });
    all.iter().find(|(a, _)| *a == alg).map(|(_, s)| s)
}

impl Yake {
    /// The ranked keyphrases of `text`, best first, with YAKE's raw score.
    pub fn ranked(&self, text: &str, lang: Option<whatlang::Lang>, top: usize) -> Vec<Keyword> {
        self.extract(text, lang, top)
    }
}

impl KeywordExtractor for Yake {
    fn name(&self) -> &'static str {
        "yake"
    }

    fn extract_within(
        &self,
        text: &str,
        lang: Option<whatlang::Lang>,
        top: usize,
        deadline: &Deadline,
        work: &mut Work,
    ) -> Result<Vec<Keyword>, Expired> {
        let cfg = &self.config;
        let mut scan = Scan {
            stemmer: stemmer_for(lang),
            terms: Vec::new(),
            // Sized from typical ratios (a word per ~6 bytes, a third of them new; about two new
            // n-grams per word): growing these maps was a tenth of the time.
            ids: FxHashMap::with_capacity_and_hasher(text.len() / 20, Default::default()),
            surfaces: FxHashMap::with_capacity_and_hasher(text.len() / 20, Default::default()),
            edges: FxHashMap::with_capacity_and_hasher(text.len() / 8, Default::default()),
            candidates: FxHashMap::with_capacity_and_hasher(text.len() / 4, Default::default()),
            sentence: 0,
            sentence_pos: 0,
            block: Vec::new(),
            lower: String::new(),
            words: 0,
        };
        let mut ticker = Ticker::new(deadline);
        // The scan breaks only when the deadline passed.
        let expired = tokenize_until(text, |piece| {
            match piece {
                Piece::Word { text, cjk } => {
                    scan.word(text, cjk, cfg);
                    if ticker.tick().is_err() {
                        return ControlFlow::Break(());
                    }
                }
                Piece::BlockBreak => scan.block_break(),
                Piece::SentenceBreak => scan.sentence_break(),
            }
            ControlFlow::Continue(())
        })
        .is_break();
        work.words += scan.words as u64;
        work.candidates += scan.candidates.len() as u64;
        if expired {
            return Err(Expired);
        }
        scan.weigh_terms();
        let mut scored: Vec<(f64, &Candidate)> = scan
            .candidates
            .iter()
            .filter(|(_, c)| c.valid)
            .map(|(k, c)| (scan.score(k, c.tf), c))
            .filter(|(s, _)| s.is_finite())
            .collect();
        scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        deadline.check()?;
        let mut out: Vec<Keyword> = Vec::with_capacity(top);
        let max_considered = top.saturating_mul(MAX_CONSIDERED_PER_KEYWORD);
        let mut considered = 0;
        // Walk runs of equal score, each ordered by text so that results never depend on hash
        // order; text is built only for the candidates looked at.
        let mut i = 0;
        while i < scored.len() && out.len() < top && considered < max_considered {
            let score = scored[i].0;
            let run = scored[i..].iter().take_while(|(s, _)| *s == score).count();
            let mut texts: Vec<String> = scored[i..i + run].iter().map(|(_, c)| c.text()).collect();
            texts.sort_unstable();
            for text in texts {
                if out.len() >= top || considered >= max_considered {
                    break;
                }
                considered += 1;
                let cells = &mut work.similarity_cells;
                if out
                    .iter()
                    .any(|k| similar(&k.text, &text, cfg.dedup_threshold, cells))
                {
                    continue;
                }
                out.push(Keyword {
                    text,
                    score,
                    confidence: 0.0,
                });
            }
            i += run;
        }
        work.considered += considered as u64;
        let best = out.first().map_or(0.0, |k| k.score);
        for k in &mut out {
            k.confidence = confidence(k.score, best, scan.words);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_reference() {
        assert_eq!(tag_of("1999", false), Tag::Digit);
        assert_eq!(tag_of("3d", false), Tag::Unparsable);
        assert_eq!(tag_of("NASA", false), Tag::Acronym);
        assert_eq!(tag_of("Paris", false), Tag::Proper);
        assert_eq!(tag_of("Paris", true), Tag::Plain);
        assert_eq!(tag_of("mp3", false), Tag::Plain);
    }

    #[test]
    fn similarity_is_levenshtein_ratio() {
        assert_eq!(similarity("abc", "abc"), 1.0);
        assert!((similarity("graph", "graphs") - 10.0 / 11.0).abs() < 1e-9);
        assert!(similarity("graph file", "graph file system") < 0.9);
    }

    #[test]
    fn confidence_is_high_for_the_best_and_bounded() {
        assert!(confidence(0.01, 0.01, 500) > 0.8);
        assert!(confidence(0.5, 0.01, 500) < confidence(0.05, 0.01, 500));
        assert!(confidence(0.01, 0.01, 5) < 0.6);
        for s in [0.0, 1e-9, 1.0, 1e9] {
            let c = confidence(s, 1e-9, 100);
            assert!((0.0..=1.0).contains(&c));
        }
    }

    #[test]
    fn stemming_merges_plurals() {
        let text = "Graphs are great. A graph links files. Graph databases store graphs of files.";
        let kws = Yake::default().ranked(text, Some(whatlang::Lang::Eng), 5);
        let graphs = kws
            .iter()
            .filter(|k| k.text == "graph" || k.text == "graphs")
            .count();
        assert_eq!(graphs, 1, "{kws:?}");
    }
}
