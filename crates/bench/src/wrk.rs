//! wrk, the HTTP load generator every suite that measures request rates uses: one way to run it
//! and one parser of its report, so every suite's "req/s" and "p99" mean the same thing.

use std::process::Command;

use anyhow::{Context, bail};

/// How to load one URL.
#[derive(Debug, Clone)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub seconds: u64,
}

impl Load {
    /// The settings the README's figures use: `wrk -t2 -c64`.
    pub fn standard(seconds: u64) -> Self {
        Load {
            threads: 2,
            connections: 64,
            seconds,
        }
    }

    /// `wrk -tT -cC`, for row names.
    pub fn describe(&self) -> String {
        format!("wrk -t{} -c{}", self.threads, self.connections)
    }

    /// The wrk command line for `url` (without the program), e.g. to run it inside a namespace.
    pub fn args(&self, url: &str) -> Vec<String> {
        let mut args = vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections.max(self.threads)),
            format!("-d{}s", self.seconds.max(1)),
            "--latency".into(),
        ];
        // A server this run started needs its token.
        if let Some(t) = crate::child::token_for(url) {
            args.extend(["-H".into(), format!("Authorization: Bearer {t}")]);
        }
        args.push(url.into());
        args
    }

    /// Runs wrk against `url` on this host.
    pub fn run(&self, url: &str) -> anyhow::Result<Report> {
        self.run_with(Command::new("wrk"), url)
    }

    /// Runs `program` (wrk, possibly behind a wrapper such as nsenter) with this load's
    /// arguments. Fails on any non-2xx/3xx response or socket error: a rate with errors in it is
    /// not the rate of the workload.
    pub fn run_with(&self, mut program: Command, url: &str) -> anyhow::Result<Report> {
        let out = program
            .args(self.args(url))
            .output()
            .context("cannot run wrk (apt-get install wrk; scripts/test installs it)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "wrk failed on {url}: {}{text}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let report = Report::parse(&text).with_context(|| format!("wrk's report on {url}"))?;
        if report.errors > 0 {
            bail!("wrk saw {} errors from {url}:\n{text}", report.errors);
        }
        Ok(report)
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub requests_per_sec: f64,
    /// Latency percentiles, milliseconds (from `--latency`).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx/3xx responses plus socket errors (connect, read, write, timeout).
    pub errors: u64,
}

/// A wrk duration ("812.00us", "1.23ms", "2.00s", "1.50m") in milliseconds.
fn millis(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

impl Report {
    /// Parses wrk's text report.
    pub fn parse(text: &str) -> anyhow::Result<Report> {
        let mut rate = None;
        let (mut p50, mut p99) = (None, None);
        let mut errors = 0u64;
        for line in text.lines().map(str::trim) {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("Requests/sec:") => rate = words.next().and_then(|v| v.parse().ok()),
                Some("50%") => p50 = words.next().and_then(millis),
                Some("99%") => p99 = words.next().and_then(millis),
                Some("Non-2xx") => {
                    errors += line
                        .rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                }
                Some("Socket") => {
                    // "Socket errors: connect 0, read 1, write 0, timeout 2"
                    errors += line
                        .split(',')
                        .filter_map(|part| part.rsplit(' ').next()?.parse::<u64>().ok())
                        .sum::<u64>();
                }
                _ => {}
            }
        }
        Ok(Report {
            requests_per_sec: rate.context("no Requests/sec line")?,
            p50_ms: p50.context("no 50% latency line (run with --latency)")?,
            p99_ms: p99.context("no 99% latency line (run with --latency)")?,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 3s test @ http://127.0.0.1:7878/x
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.10ms    1.20ms  30.00ms   80.00%
    Req/Sec     7.80k   500.00     9.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    4.50ms
     90%    5.20ms
     99%   12.50ms
  46800 requests in 3.00s, 200.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15600.12
Transfer/sec:     66.67MB
";

    #[test]
    fn parses_rate_percentiles_and_errors() {
        let r = Report::parse(SAMPLE).unwrap();
        assert_eq!(r.requests_per_sec, 15600.12);
        assert_eq!(r.p50_ms, 0.812);
        assert_eq!(r.p99_ms, 12.5);
        assert_eq!(r.errors, 7);
    }

    #[test]
    fn a_report_without_a_rate_is_an_error() {
        let e = Report::parse("  2 threads and 64 connections\n").unwrap_err();
        assert!(e.to_string().contains("Requests/sec"), "{e}");
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(millis("2.00s"), Some(2000.0));
        assert_eq!(millis("1.50m"), Some(90_000.0));
        assert_eq!(millis("7"), None);
        assert_eq!(millis("3.0xs"), None);
    }
}
