//! `GET /api/metrics/recent`: the last minutes of the dashboard's figures as JSON, for the web
//! page's Monitor view (people without Prometheus and Grafana).
//!
//! Every [`SAMPLE_EVERY`] a task renders the exposition `/metrics` answers ([`metrics::render`]:
//! one definition of every figure, the same samplers, the same one-scrape-at-a-time guard), reads
//! it back with `prometheus-parse`, and turns two consecutive renders into the figures of the
//! Grafana dashboard (docs/grafana/disgrafs.json): counter rates, per-CPU busy shares, latency
//! quantiles from the histogram buckets, gauges as they are. A bounded ring keeps the last
//! [`KEEP`] points; `since` gives a poller only the points newer than the last it has.
//!
//! The ring's lock is taken by the sampling task and this endpoint only, never by the request
//! path, and only to push or copy points out.

use crate::AppState;
use crate::extract::Query;
use crate::metrics;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use disgrafs_core::api::{
    MetricsFigure, MetricsPoint as Point, MetricsUnit as Unit, RecentMetrics,
};
use prometheus_parse::{Scrape, Value};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the figures are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Points kept: ten minutes at one a second.
pub const KEEP: usize = 600;

/// One chart of the Monitor view.
struct Figure {
    id: &'static str,
    title: &'static str,
    unit: Unit,
    /// The `disgrafs_scrape_ok` section its inputs come from, when one can fail.
    section: Option<&'static str>,
}

/// The dashboard's figures, in the order the page shows them.
const FIGURES: &[Figure] = &[
    fig(
        "cpu_peak",
        "Peak single-CPU use",
        Unit::Percent,
        Some("cpu"),
    ),
    fig("cpu", "CPU use per CPU", Unit::Percent, Some("cpu")),
    fig(
        "network",
        "Network throughput",
        Unit::BytesPerSecond,
        Some("net_dev"),
    ),
    fig(
        "disk_write",
        "Disk write rate",
        Unit::BytesPerSecond,
        Some("disk"),
    ),
    fig(
        "disk_read",
        "Disk read rate",
        Unit::BytesPerSecond,
        Some("disk"),
    ),
    fig(
        "io_share",
        "Share of each second spent on IO",
        Unit::Percent,
        Some("disk"),
    ),
    fig("tcp", "TCP segments", Unit::PerSecond, Some("tcp")),
    fig("sockets", "Sockets in use", Unit::Count, Some("sockets")),
    fig("requests", "Request rate", Unit::PerSecond, None),
    fig("latency", "Latency quantiles", Unit::Milliseconds, None),
    fig("tagging", "Tagging queue", Unit::Count, Some("store")),
    fig("accel", "Accelerator counters", Unit::PerSecond, None),
];

const fn fig(
    id: &'static str,
    title: &'static str,
    unit: Unit,
    section: Option<&'static str>,
) -> Figure {
    Figure {
        id,
        title,
        unit,
        section,
    }
}

const ACCEL_PREFIX: &str = "disgrafs_accel_";
const NO_ACCEL: &str =
    "No accelerator is attached (disgrafs serve --accel … --iface IF attaches them)";

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct RecentParams {
    /// Only points with `t` greater than this (the last `t` the caller has); all when absent.
    since: Option<u64>,
}

/// The bounded ring of points and what the last render said was unavailable.
#[derive(Default)]
pub struct Ring {
    inner: Mutex<RingInner>,
}

#[derive(Default)]
struct RingInner {
    points: VecDeque<Point>,
    prev: Option<Raw>,
    unavailable: BTreeMap<&'static str, String>,
}

impl Ring {
    /// Adds one render of the exposition taken at `t_ms`; the first one only sets the base the
    /// rates are taken from.
    fn push(&self, t_ms: u64, raw: Raw) {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        r.unavailable = unavailable(&raw);
        let Some(prev) = r.prev.replace(raw) else {
            return;
        };
        let cur = r.prev.as_ref().expect("just set");
        let t = r.points.back().map_or(t_ms, |p| t_ms.max(p.t + 1));
        let dt = t.saturating_sub(prev.t_ms).max(1) as f64 / 1000.0;
        let values = derive(&prev, cur, dt);
        if r.points.len() == KEEP {
            r.points.pop_front();
        }
        r.points.push_back(Point { t, values });
    }

    pub fn since(&self, since: Option<u64>) -> RecentMetrics {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let from = since.map_or(0, |s| r.points.partition_point(|p| p.t <= s));
        let points = r.points.range(from..).cloned().collect();
        let figures = FIGURES
            .iter()
            .map(|f| MetricsFigure {
                id: f.id.into(),
                title: f.title.into(),
                unit: f.unit,
                unavailable: r.unavailable.get(f.id).cloned(),
            })
            .collect();
        RecentMetrics {
            interval_ms: SAMPLE_EVERY.as_millis() as u64,
            keep: KEEP as u64,
            figures,
            points,
        }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/metrics/recent", get(recent))
}

/// The dashboard's figures over the last minutes (one point a second, ten minutes kept): the
/// same figures as `/metrics`, already turned into rates, shares and quantiles.
#[utoipa::path(get, path = "/api/metrics/recent", tag = "metrics", params(RecentParams),
    responses((status = 200, body = RecentMetrics), (status = 400, description = "`since` is not a number")))]
pub(crate) async fn recent(
    State(state): State<AppState>,
    Query(p): Query<RecentParams>,
) -> Json<RecentMetrics> {
    Json(state.metrics.recent.since(p.since))
}

/// Samples until the runtime stops.
pub(crate) fn spawn_sampler(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match metrics::render(&state).await {
                Ok(text) => {
                    let t = now_ms();
                    state.metrics.recent.push(t, Raw::parse(t, &text));
                }
                Err(e) => tracing::debug!("recent metrics: {e}"),
            }
        }
    });
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Labels = BTreeMap<String, String>;

/// One render of the exposition, read back: plain samples, and the request latency buckets
/// summed over routes (upper bound → cumulative count).
struct Raw {
    t_ms: u64,
    samples: Vec<(String, Labels, f64)>,
    latency: Vec<(f64, f64)>,
}

impl Raw {
    fn parse(t_ms: u64, text: &str) -> Raw {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = Scrape::parse(lines).unwrap_or(Scrape {
            docs: Default::default(),
            samples: Vec::new(),
        });
        let mut samples = Vec::new();
        let mut latency: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in scrape.samples {
            let labels: Labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                    samples.push((s.metric, labels, v));
                }
                Value::Histogram(buckets)
                    if s.metric == "disgrafs_http_request_duration_seconds" =>
                {
                    for b in buckets {
                        // Bounds are the same for every route; total_cmp's bits order them.
                        let e = latency
                            .entry(order_key(b.less_than))
                            .or_insert((b.less_than, 0.0));
                        e.1 += b.count;
                    }
                }
                _ => {}
            }
        }
        Raw {
            t_ms,
            samples,
            latency: latency.into_values().collect(),
        }
    }

    /// Sums `metric`'s samples that pass `keep`, grouped by the values of `by` joined by spaces.
    fn sum_by(
        &self,
        metric: &str,
        by: &[&str],
        keep: impl Fn(&Labels) -> bool,
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (_, l, v) in self
            .samples
            .iter()
            .filter(|(m, l, _)| m == metric && keep(l))
        {
            let key: Vec<&str> = by
                .iter()
                .map(|k| l.get(*k).map_or("", String::as_str))
                .collect();
            *out.entry(key.join(" ")).or_insert(0.0) += v;
        }
        out
    }
}

/// A key under which f64 bounds sort numerically (positive values and +Inf only here).
fn order_key(v: f64) -> u64 {
    v.to_bits()
}

fn all(_: &Labels) -> bool {
    true
}

/// Per-second rates of the series in both maps; a series that went down (a counter reset, an
/// accelerator re-attached) has no rate for this interval.
fn rates(
    prev: &BTreeMap<String, f64>,
    cur: &BTreeMap<String, f64>,
    dt: f64,
) -> BTreeMap<String, f64> {
    cur.iter()
        .filter_map(|(k, c)| {
            let p = prev.get(k)?;
            (c >= p).then(|| (k.clone(), (c - p) / dt))
        })
        .collect()
}

fn scaled(m: BTreeMap<String, f64>, by: f64) -> BTreeMap<String, f64> {
    m.into_iter().map(|(k, v)| (k, v * by)).collect()
}

fn renamed(m: BTreeMap<String, f64>, name: impl Fn(&str) -> String) -> BTreeMap<String, f64> {
    m.into_iter().map(|(k, v)| (name(&k), v)).collect()
}

/// The figures of the interval between two renders, `dt` seconds apart.
fn derive(prev: &Raw, cur: &Raw, dt: f64) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<&'static str, BTreeMap<String, f64>> = BTreeMap::new();
    let rate_by = |metric: &str, by: &[&str]| {
        rates(
            &prev.sum_by(metric, by, all),
            &cur.sum_by(metric, by, all),
            dt,
        )
    };

    // Busy share per CPU: 1 - (idle + iowait) / all, as the dashboard's PromQL.
    let cpu = "disgrafs_system_cpu_seconds_total";
    let idle = |l: &Labels| l.get("mode").is_some_and(|m| m == "idle" || m == "iowait");
    let busy: BTreeMap<String, f64> = {
        let total = rates(
            &prev.sum_by(cpu, &["cpu"], all),
            &cur.sum_by(cpu, &["cpu"], all),
            dt,
        );
        let idle = rates(
            &prev.sum_by(cpu, &["cpu"], idle),
            &cur.sum_by(cpu, &["cpu"], idle),
            dt,
        );
        total
            .iter()
            .filter(|(_, t)| **t > 0.0)
            .filter_map(|(c, t)| Some((format!("cpu {c}"), 100.0 * (1.0 - idle.get(c)? / t))))
            .collect()
    };
    if let Some(peak) = busy.values().copied().reduce(f64::max) {
        out.insert(
            "cpu_peak",
            BTreeMap::from([("busiest CPU".to_string(), peak)]),
        );
    }
    out.insert("cpu", busy);
    out.insert(
        "network",
        rate_by("disgrafs_system_network_bytes_total", &["iface", "dir"]),
    );
    out.insert(
        "disk_write",
        rate_by("disgrafs_system_disk_written_bytes_total", &["device"]),
    );
    out.insert(
        "disk_read",
        rate_by("disgrafs_system_disk_read_bytes_total", &["device"]),
    );
    out.insert(
        "io_share",
        scaled(
            rate_by("disgrafs_system_disk_io_seconds_total", &["device"]),
            100.0,
        ),
    );
    let mut tcp = BTreeMap::new();
    for (name, metric) in [
        ("in", "disgrafs_system_tcp_in_segments_total"),
        ("out", "disgrafs_system_tcp_out_segments_total"),
        (
            "retransmitted",
            "disgrafs_system_tcp_retransmitted_segments_total",
        ),
    ] {
        tcp.extend(renamed(rate_by(metric, &[]), |_| name.to_string()));
    }
    out.insert("tcp", tcp);
    let mut sockets = renamed(cur.sum_by("disgrafs_system_sockets_used", &[], all), |_| {
        "all".into()
    });
    sockets.extend(cur.sum_by("disgrafs_system_sockets_inuse", &["proto"], all));
    out.insert("sockets", sockets);

    let by_status = rate_by("disgrafs_http_requests_total", &["status"]);
    let mut requests = BTreeMap::new();
    for (status, v) in by_status {
        let class = format!("{}xx", status.chars().next().unwrap_or('?'));
        *requests.entry(class).or_insert(0.0) += v;
    }
    out.insert("requests", requests);
    out.insert("latency", latency_quantiles(&prev.latency, &cur.latency));
    out.insert(
        "tagging",
        cur.sum_by("disgrafs_tagging_jobs", &["state"], all),
    );

    let mut accel = BTreeMap::new();
    let names: std::collections::BTreeSet<&str> = cur
        .samples
        .iter()
        .filter_map(|(m, _, _)| m.strip_prefix(ACCEL_PREFIX)?.strip_suffix("_total"))
        .collect();
    for name in names {
        let metric = format!("{ACCEL_PREFIX}{name}_total");
        accel.extend(renamed(rate_by(&metric, &[]), |_| name.replace('_', " ")));
    }
    out.insert("accel", accel);
    // Three decimals are more than a chart shows, and keep the JSON short.
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    out.into_iter()
        .filter(|(_, series)| !series.is_empty())
        .map(|(k, v)| {
            (
                k.to_string(),
                v.into_iter().map(|(s, v)| (s, round(v))).collect(),
            )
        })
        .collect()
}

/// p50, p90 and p99 in milliseconds of the requests finished in the interval, interpolated
/// inside their bucket as Prometheus' `histogram_quantile` does; none without requests.
fn latency_quantiles(prev: &[(f64, f64)], cur: &[(f64, f64)]) -> BTreeMap<String, f64> {
    let deltas: Vec<(f64, f64)> = cur
        .iter()
        .map(|&(le, c)| {
            let p = prev.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, p)| *p);
            (le, (c - p).max(0.0))
        })
        .collect();
    let Some(&(_, total)) = deltas.last() else {
        return BTreeMap::new();
    };
    if total <= 0.0 {
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        let rank = q * total;
        let i = deltas
            .iter()
            .position(|(_, c)| *c >= rank)
            .unwrap_or(deltas.len() - 1);
        let (lo, below) = if i == 0 { (0.0, 0.0) } else { deltas[i - 1] };
        let (hi, count) = deltas[i];
        let v = if hi.is_infinite() {
            // Beyond the last finite bound: that bound is all that is known.
            lo
        } else if count > below {
            lo + (hi - lo) * (rank - below) / (count - below)
        } else {
            hi
        };
        out.insert(name.to_string(), v * 1000.0);
    }
    out
}

/// Figures with no values now, and why.
fn unavailable(raw: &Raw) -> BTreeMap<&'static str, String> {
    let failed: Vec<&str> = raw
        .samples
        .iter()
        .filter(|(m, _, v)| m == "disgrafs_scrape_ok" && *v == 0.0)
        .filter_map(|(_, l, _)| l.get("section").map(String::as_str))
        .collect();
    let mut out = BTreeMap::new();
    for f in FIGURES {
        if let Some(s) = f.section.filter(|s| failed.contains(s)) {
            out.insert(
                f.id,
                format!(
                    "The server could not read these figures just now (section `{s}` of /metrics)"
                ),
            );
        }
    }
    let attached = raw
        .samples
        .iter()
        .any(|(m, _, _)| m.starts_with(ACCEL_PREFIX));
    if !attached {
        out.insert("accel", NO_ACCEL.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exposition as prometheus-client writes it, with `n` requests and `busy` CPU seconds.
    fn exposition(n: u32, busy: f64, proc_ok: bool) -> String {
        format!(
            "# HELP disgrafs_http_requests HTTP requests.\n\
             # TYPE disgrafs_http_requests counter\n\
             disgrafs_http_requests_total{{method=\"GET\",route=\"/api/files\",status=\"200\"}} {n}\n\
             disgrafs_http_requests_total{{method=\"GET\",route=\"/x\",status=\"404\"}} 1\n\
             # HELP disgrafs_http_request_duration_seconds Latency.\n\
             # TYPE disgrafs_http_request_duration_seconds histogram\n\
             disgrafs_http_request_duration_seconds_sum{{route=\"/api/files\"}} 1.0\n\
             disgrafs_http_request_duration_seconds_count{{route=\"/api/files\"}} {n}\n\
             disgrafs_http_request_duration_seconds_bucket{{le=\"0.001\",route=\"/api/files\"}} 0\n\
             disgrafs_http_request_duration_seconds_bucket{{le=\"0.002\",route=\"/api/files\"}} {n}\n\
             disgrafs_http_request_duration_seconds_bucket{{le=\"+Inf\",route=\"/api/files\"}} {n}\n\
             # TYPE disgrafs_system_cpu_seconds counter\n\
             disgrafs_system_cpu_seconds_total{{cpu=\"0\",mode=\"user\"}} {busy}\n\
             disgrafs_system_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} 100\n\
             # TYPE disgrafs_system_sockets_used gauge\n\
             disgrafs_system_sockets_used 42\n\
             # TYPE disgrafs_scrape_ok gauge\n\
             disgrafs_scrape_ok{{section=\"cpu\"}} 1\n\
             disgrafs_scrape_ok{{section=\"tcp\"}} {}\n\
             # EOF\n",
            u8::from(proc_ok)
        )
    }

    #[test]
    fn figures_from_two_renders() {
        let ring = Ring::default();
        ring.push(1_000, Raw::parse(1_000, &exposition(0, 0.0, true)));
        assert!(
            ring.since(None).points.is_empty(),
            "one render gives no rate yet"
        );
        ring.push(2_000, Raw::parse(2_000, &exposition(10, 0.5, false)));
        let r = ring.since(None);
        assert_eq!(r.points.len(), 1);
        let v = &r.points[0].values;
        assert_eq!(v["requests"]["2xx"], 10.0);
        assert_eq!(v["requests"]["4xx"], 0.0);
        assert_eq!(
            v["cpu"]["cpu 0"], 100.0,
            "all of the interval's CPU time was busy"
        );
        assert_eq!(v["cpu_peak"]["busiest CPU"], 100.0);
        assert_eq!(v["sockets"]["all"], 42.0);
        // All ten requests fell in (1 ms, 2 ms]: the median interpolates to its middle.
        assert!((v["latency"]["p50"] - 1.5).abs() < 1e-9, "{v:?}");
        assert!(v["latency"]["p99"] <= 2.0, "{v:?}");
        let fig = |id: &str| r.figures.iter().find(|f| f.id == id).unwrap();
        assert!(fig("tcp").unavailable.as_deref().unwrap().contains("tcp"));
        assert!(fig("cpu").unavailable.is_none());
        assert_eq!(fig("accel").unavailable.as_deref(), Some(NO_ACCEL));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["figures"][0]["unit"], "percent");
        assert_eq!(json["points"][0]["t"], 2_000);
    }

    #[test]
    fn ring_is_bounded_and_since_returns_only_newer_points() {
        let ring = Ring::default();
        for i in 0..(KEEP as u64 + 50) {
            let t = 1_000 * (i + 1);
            ring.push(
                t,
                Raw::parse(t, &exposition(i as u32, i as f64 * 0.1, true)),
            );
        }
        let all = ring.since(None).points;
        assert_eq!(all.len(), KEEP);
        assert!(all.windows(2).all(|w| w[0].t < w[1].t));
        let last = all.last().unwrap().t;
        assert!(ring.since(Some(last)).points.is_empty());
        let newer = ring.since(Some(last - 3_000)).points;
        assert_eq!(
            newer.iter().map(|p| p.t).collect::<Vec<_>>(),
            [last - 2_000, last - 1_000, last]
        );
        // A clock that steps back still gives increasing times.
        ring.push(10, Raw::parse(10, &exposition(0, 0.0, true)));
        assert_eq!(ring.since(Some(last)).points[0].t, last + 1);
        // Counters that went down (a reset) give no rate rather than a negative one.
        assert!(!ring.since(Some(last)).points[0].values["requests"].contains_key("2xx"));
    }

    #[test]
    fn latency_beyond_the_last_bound_is_that_bound() {
        let q = latency_quantiles(&[], &[(0.001, 0.0), (0.002, 0.0), (f64::INFINITY, 4.0)]);
        assert_eq!(q["p99"], 2.0);
        assert!(latency_quantiles(&[(f64::INFINITY, 3.0)], &[(f64::INFINITY, 3.0)]).is_empty());
    }
}
