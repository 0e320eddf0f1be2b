//! The one row shape every `disgrafs bench` suite prints: a metric measured on disgrafs (the
//! candidate) beside the same workload on a peer (the baseline) in the same run.

use serde::{Deserialize, Serialize};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    pub metric: String,
    pub unit: String,
    pub baseline_name: String,
    /// None when the peer could not be measured (the reason goes in `note`).
    pub baseline: Option<f64>,
    pub candidate_name: String,
    pub candidate: f64,
    /// candidate / baseline.
    pub ratio: Option<f64>,
    pub better: Better,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Min and max over the repeats when `baseline` and `candidate` are medians.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
}

/// (min, max) of each side over a suite's repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub baseline: (f64, f64),
    pub candidate: (f64, f64),
}

impl Spread {
    fn render(&self) -> String {
        let (b, c) = (self.baseline, self.candidate);
        format!("{}-{} | {}-{}", num(b.0), num(b.1), num(c.0), num(c.1))
    }
}

impl BenchRow {
    pub fn new(
        metric: impl Into<String>,
        unit: impl Into<String>,
        better: Better,
        (baseline_name, baseline): (impl Into<String>, Option<f64>),
        (candidate_name, candidate): (impl Into<String>, f64),
    ) -> Self {
        let ratio = baseline.filter(|b| *b != 0.0).map(|b| candidate / b);
        BenchRow {
            metric: metric.into(),
            unit: unit.into(),
            baseline_name: baseline_name.into(),
            baseline,
            candidate_name: candidate_name.into(),
            candidate,
            ratio,
            better,
            note: None,
            spread: None,
        }
    }

    /// A row of medians over repeats, with their min and max as the spread. Empty sides are 0.
    pub fn medians(
        metric: impl Into<String>,
        unit: impl Into<String>,
        better: Better,
        (baseline_name, baseline): (impl Into<String>, &[f64]),
        (candidate_name, candidate): (impl Into<String>, &[f64]),
    ) -> Self {
        let range = |v: &[f64]| {
            v.iter()
                .fold(None, |r: Option<(f64, f64)>, x| {
                    Some(r.map_or((*x, *x), |(lo, hi)| (lo.min(*x), hi.max(*x))))
                })
                .unwrap_or((0.0, 0.0))
        };
        BenchRow::new(
            metric,
            unit,
            better,
            (baseline_name, Some(median(baseline))),
            (candidate_name, median(candidate)),
        )
        .with_spread(Spread {
            baseline: range(baseline),
            candidate: range(candidate),
        })
    }

    pub fn with_spread(mut self, spread: Spread) -> Self {
        self.spread = Some(spread);
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The median of `v` (the upper one of an even count; 0 for none).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn num(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn better(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher",
        Better::Lower => "lower",
    }
}

fn ratio(r: &BenchRow) -> String {
    r.ratio.map_or("-".into(), |x| format!("{x:.2}x"))
}

/// Renders rows as an aligned text table (with a min-max column when rows carry a spread).
pub fn render_table(rows: &[BenchRow]) -> String {
    let spread = rows.iter().any(|r| r.spread.is_some());
    let mut header = vec![
        "metric", "unit", "baseline", "value", "disgrafs", "value", "ratio", "better",
    ];
    if spread {
        header.push("min-max (baseline | disgrafs)");
    }
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let mut line = vec![
            r.metric.clone(),
            r.unit.clone(),
            r.baseline_name.clone(),
            r.baseline.map_or("-".into(), num),
            r.candidate_name.clone(),
            num(r.candidate),
            ratio(r),
            better(r.better).into(),
        ];
        if spread {
            line.push(r.spread.as_ref().map_or("-".into(), Spread::render));
        }
        cells.push(line);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    for r in rows.iter().filter(|r| r.note.is_some()) {
        out.push_str(&format!(
            "note: {}: {}\n",
            r.metric,
            r.note.as_deref().unwrap_or("")
        ));
    }
    out
}

/// Renders rows as a Markdown table (for reports; notes follow as a list).
pub fn render_markdown(rows: &[BenchRow]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "| metric | unit | baseline | value | disgrafs | value | ratio | better | min-max (baseline \\| disgrafs) |\n\
         |---|---|---|---:|---|---:|---:|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            esc(&r.metric),
            esc(&r.unit),
            esc(&r.baseline_name),
            r.baseline.map_or("-".into(), num),
            esc(&r.candidate_name),
            num(r.candidate),
            ratio(r),
            better(r.better),
            r.spread.as_ref().map_or("-".into(), |s| esc(&s.render())),
        ));
    }
    for r in rows.iter().filter(|r| r.note.is_some()) {
        out.push_str(&format!(
            "\n- {}: {}",
            r.metric,
            r.note.as_deref().unwrap_or("")
        ));
    }
    if rows.iter().any(|r| r.note.is_some()) {
        out.push('\n');
    }
    out
}

/// Writes rows as a table, or as one pretty JSON array for scripts.
pub fn write_rows(out: &mut impl Write, rows: &[BenchRow], json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, rows)?;
        writeln!(out)
    } else {
        out.write_all(render_table(rows).as_bytes())
    }
}

/// [`write_rows`] on stdout: the one row printer of every suite.
pub fn print_rows(rows: &[BenchRow], json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write_rows(&mut out, rows, json)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_ratio() {
        let r = BenchRow::new(
            "download",
            "MB/s",
            Better::Higher,
            ("nginx", Some(2000.0)),
            ("disgrafs", 1800.0),
        );
        assert_eq!(r.ratio, Some(0.9));
        let t = render_table(&[
            r.clone(),
            BenchRow::new("x", "s", Better::Lower, ("p", None), ("d", 0.5))
                .with_note("peer missing"),
        ]);
        assert!(t.contains("0.90x"), "{t}");
        assert!(t.contains("note: x: peer missing"), "{t}");
        assert!(
            !t.contains("min-max"),
            "no spread column without spreads: {t}"
        );
        let spread = Spread {
            baseline: (1800.0, 2100.0),
            candidate: (1.5, 2.5),
        };
        let with = [r.with_spread(spread)];
        let t = render_table(&with);
        assert!(t.contains("1800-2100 | 1.50-2.50"), "{t}");
        let md = render_markdown(&with);
        assert!(md.contains("| download | MB/s | nginx | 2000 |"), "{md}");
        assert!(md.contains("1800-2100 \\| 1.50-2.50 |"), "{md}");
        let json = serde_json::to_value(BenchRow::new(
            "m",
            "u",
            Better::Lower,
            ("a", Some(1.0)),
            ("b", 2.0),
        ))
        .unwrap();
        assert_eq!(json["better"], "lower");
        assert_eq!(json["ratio"], 2.0);
    }

    #[test]
    fn medians_carry_their_spread() {
        let r = BenchRow::medians(
            "m",
            "u",
            Better::Lower,
            ("a", &[3.0, 1.0, 2.0]),
            ("b", &[4.0]),
        );
        assert_eq!((r.baseline, r.candidate), (Some(2.0), 4.0));
        let s = r.spread.unwrap();
        assert_eq!((s.baseline, s.candidate), ((1.0, 3.0), (4.0, 4.0)));
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn rows_round_trip_as_json_and_print_as_the_table() {
        let rows =
            vec![BenchRow::new("m", "u", Better::Higher, ("a", None), ("b", 2.0)).with_note("why")];
        let mut json = Vec::new();
        write_rows(&mut json, &rows, true).unwrap();
        assert!(json.ends_with(b"]\n"));
        let back: Vec<BenchRow> = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, rows);
        let mut table = Vec::new();
        write_rows(&mut table, &rows, false).unwrap();
        assert_eq!(String::from_utf8(table).unwrap(), render_table(&rows));
    }
}
