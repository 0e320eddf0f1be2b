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
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
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

/// Renders rows as an aligned text table.
pub fn render_table(rows: &[BenchRow]) -> String {
    let header = [
        "metric", "unit", "baseline", "value", "disgrafs", "value", "ratio", "better",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.metric.clone(),
            r.unit.clone(),
            r.baseline_name.clone(),
            r.baseline.map_or("-".into(), num),
            r.candidate_name.clone(),
            num(r.candidate),
            r.ratio.map_or("-".into(), |x| format!("{x:.2}x")),
            match r.better {
                Better::Higher => "higher".into(),
                Better::Lower => "lower".into(),
            },
        ]);
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
            r,
            BenchRow::new("x", "s", Better::Lower, ("p", None), ("d", 0.5))
                .with_note("peer missing"),
        ]);
        assert!(t.contains("0.90x"), "{t}");
        assert!(t.contains("note: x: peer missing"), "{t}");
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
