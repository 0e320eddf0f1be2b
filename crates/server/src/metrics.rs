//! `GET /metrics`: Prometheus text format (0.0.4) through `prometheus-client`.
//!
//! Two kinds of figures:
//! * kept on the request path in atomics (`Metrics`): requests by route template and status,
//!   latency, bytes in and out, requests and uploads in flight, tagging job durations and
//!   failures. Their handles are lock-free counters; the families' label maps take a read lock
//!   that only a new label combination upgrades.
//! * sampled at scrape time into a fresh registry (`Samples`): store and queue counts (one
//!   read-only query on a reader connection of the pool; the writer connection is never
//!   touched), tus sessions (a directory listing), SSE subscribers, the system from /proc and
//!   /sys, and the counters of every attached accelerator from their maps.
//!
//! A section that cannot be read (a /proc file missing, an accelerator detached underneath) is
//! left out and `disgrafs_scrape_ok{section}` says 0: the endpoint always answers with the rest.

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::AppState;

/// Label set of `Samples` figures: a few (name, value) pairs.
type Labels = Vec<(String, String)>;
type F64Counter = Counter<f64, AtomicU64>;
type F64Gauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOnly {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Routes without a template (the 404 fallback) share one label, so a scan of random paths
/// cannot grow the label set.
const UNMATCHED: &str = "unmatched";

/// Counters of one accelerator, read from its maps at scrape time. Each accelerator the server
/// runs registers one with [`Metrics::add_accel`]; an error leaves that accelerator out of one
/// scrape (and sets `disgrafs_scrape_ok{section="accel_NAME"}` to 0).
pub trait AccelSource: Send + Sync {
    /// Short name (`http_trace`, `cpu_balance`, `sockmap`…), the section label.
    fn name(&self) -> &'static str;
    /// Adds the counters, named `disgrafs_accel_<name>_…`, to `out`.
    fn sample(&self, out: &mut Samples) -> Result<(), String>;
}

/// The figures kept on the request path, and the accelerators to sample.
pub struct Metrics {
    requests: Family<RouteLabels, Counter>,
    latency: Family<RouteOnly, Histogram>,
    in_flight: Family<RouteOnly, Gauge>,
    uploads_in_flight: Gauge,
    bytes_in: Family<RouteOnly, Counter>,
    bytes_out: Family<RouteOnly, Counter>,
    job_seconds: Family<KindLabel, Histogram>,
    job_failures: Family<ReasonLabel, Counter>,
    tag_warnings: Counter,
    accel: RwLock<Vec<Box<dyn AccelSource>>>,
    proc_root: PathBuf,
    /// One scrape at a time: two scrapers cannot double the sampling cost.
    scrape: tokio::sync::Mutex<()>,
    /// The last minutes of the dashboard's figures, for `/api/metrics/recent`.
    pub(crate) recent: crate::recent::Ring,
}

impl Metrics {
    pub fn new(proc_root: PathBuf) -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
            }),
            in_flight: Family::default(),
            uploads_in_flight: Gauge::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            job_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 18))
            }),
            job_failures: Family::default(),
            tag_warnings: Counter::default(),
            accel: RwLock::new(Vec::new()),
            proc_root,
            scrape: tokio::sync::Mutex::new(()),
            recent: crate::recent::Ring::default(),
        }
    }

    /// Samples `src` on every scrape from now on.
    pub fn add_accel(&self, src: Box<dyn AccelSource>) {
        self.accel
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(src);
    }

    /// A tagging job finished: `kind` is the content kind, which picks the extractors.
    pub(crate) fn job_done(&self, kind: &str, seconds: f64, warnings: usize) {
        self.job_seconds
            .get_or_create(&KindLabel { kind: kind.into() })
            .observe(seconds);
        self.tag_warnings.inc_by(warnings as u64);
    }

    /// A tagging job failed (`reason`: error, crash, timeout, record).
    pub(crate) fn job_failed(&self, reason: &'static str) {
        self.job_failures
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    fn register_static(&self, r: &mut Registry) {
        r.register(
            "disgrafs_http_requests",
            "HTTP requests by method, route template and status",
            self.requests.clone(),
        );
        r.register(
            "disgrafs_http_request_duration_seconds",
            "Time from request to response head, by route template",
            self.latency.clone(),
        );
        r.register(
            "disgrafs_http_requests_in_flight",
            "Requests being handled, by route template",
            self.in_flight.clone(),
        );
        r.register(
            "disgrafs_http_uploads_in_flight",
            "Upload requests (PUT/POST /api/files, tus PATCH/POST) being handled",
            self.uploads_in_flight.clone(),
        );
        r.register(
            "disgrafs_http_received_bytes",
            "Request body bytes received, by route template",
            self.bytes_in.clone(),
        );
        r.register(
            "disgrafs_http_sent_bytes",
            "Response body bytes sent, by route template",
            self.bytes_out.clone(),
        );
        r.register(
            "disgrafs_tagging_job_duration_seconds",
            "Tagging time of finished jobs, by content kind (the kind picks the extractors)",
            self.job_seconds.clone(),
        );
        r.register(
            "disgrafs_tagging_failures",
            "Tagging attempts that failed, by reason",
            self.job_failures.clone(),
        );
        r.register(
            "disgrafs_tagging_warnings",
            "Warnings extractors reported while tagging",
            self.tag_warnings.clone(),
        );
    }
}

/// Figures sampled for one scrape, grouped by metric name.
#[derive(Default)]
pub struct Samples {
    counters: BTreeMap<String, (String, Family<Labels, F64Counter>)>,
    gauges: BTreeMap<String, (String, Family<Labels, F64Gauge>)>,
    sections: Vec<(String, bool)>,
}

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Samples {
    /// A monotonic figure (exported with `_total`; `name` must not end in it).
    pub fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        let (_, f) = self
            .counters
            .entry(name.to_string())
            .or_insert_with(|| (help.to_string(), Family::default()));
        f.get_or_create(&labels(l)).inc_by(v);
    }

    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        let (_, f) = self
            .gauges
            .entry(name.to_string())
            .or_insert_with(|| (help.to_string(), Family::default()));
        f.get_or_create(&labels(l)).set(v);
    }

    fn section(&mut self, name: &str, r: Result<(), String>) {
        if let Err(e) = &r {
            tracing::debug!(section = name, "metrics section unavailable: {e}");
        }
        self.sections.push((name.to_string(), r.is_ok()));
    }

    fn register(self, r: &mut Registry) {
        for (name, (help, f)) in self.counters {
            r.register(name, help, f);
        }
        for (name, (help, f)) in self.gauges {
            r.register(name, help, f);
        }
        let ok: Family<Labels, Gauge> = Family::default();
        for (s, up) in self.sections {
            ok.get_or_create(&vec![("section".to_string(), s)])
                .set(up as i64);
        }
        r.register(
            "disgrafs_scrape_ok",
            "1 when the section was read in this scrape, 0 when it could not be",
            ok,
        );
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", axum::routing::get(handler))
}

async fn handler(State(state): State<AppState>) -> Response {
    match render(&state).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => crate::error::ApiError::internal(format!("metrics: {e}")).into_response(),
    }
}

/// The whole exposition, as a scrape returns it.
pub async fn render(state: &AppState) -> Result<String, String> {
    let m = &state.metrics;
    let _one = m.scrape.lock().await;
    let mut s = Samples::default();
    let store = sample_store(state, &mut s).await;
    s.section("store", store);
    let tus = sample_tus(state, &mut s).await;
    s.section("tus", tus);
    s.gauge(
        "disgrafs_sse_subscribers",
        "Clients subscribed to /api/events",
        &[],
        state.store.subscribers() as f64,
    );
    // /proc and the BPF maps are file and syscall reads: off the async threads.
    let proc_root = m.proc_root.clone();
    let state2 = state.clone();
    let s = tokio::task::spawn_blocking(move || {
        sample_system(&proc_root, &mut s);
        let accel = state2
            .metrics
            .accel
            .read()
            .unwrap_or_else(|p| p.into_inner());
        for a in accel.iter() {
            let r = a.sample(&mut s);
            s.section(&format!("accel_{}", a.name()), r);
        }
        s
    })
    .await
    .map_err(|e| format!("sampling failed: {e}"))?;
    let mut r = Registry::default();
    m.register_static(&mut r);
    s.register(&mut r);
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &r)
        .map_err(|e| format!("encoding failed: {e}"))?;
    Ok(out)
}

async fn sample_store(state: &AppState, s: &mut Samples) -> Result<(), String> {
    let st = state
        .store
        .stats(&disgrafs_store::Viewer::All)
        .await
        .map_err(|e| e.to_string())?;
    let j = state.store.job_stats().await.map_err(|e| e.to_string())?;
    for (name, help, v) in [
        ("disgrafs_store_files", "File records", st.files),
        ("disgrafs_store_blobs", "Distinct contents", st.blobs),
        (
            "disgrafs_store_bytes",
            "Bytes of distinct content",
            st.bytes,
        ),
        ("disgrafs_store_tags", "Tags", st.tags),
        ("disgrafs_store_edges", "File-tag edges", st.edges),
    ] {
        s.gauge(name, help, &[], v as f64);
    }
    for (state, v) in [
        ("queued", j.queued),
        ("running", j.running),
        ("failed", j.failed),
    ] {
        s.gauge(
            "disgrafs_tagging_jobs",
            "Tagging jobs by state",
            &[("state", state)],
            v as f64,
        );
    }
    Ok(())
}

/// One count on a reader connection, like the store's figures.
async fn sample_tus(state: &AppState, s: &mut Samples) -> Result<(), String> {
    let n = state
        .store
        .live_uploads()
        .await
        .map_err(|e| e.to_string())?;
    s.gauge(
        "disgrafs_tus_sessions",
        "Incomplete tus uploads (created, not yet finished or expired)",
        &[],
        n as f64,
    );
    Ok(())
}

fn proc_err(what: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", what.display())
}

/// Every section is read on its own: one unreadable file costs only its figures.
fn sample_system(root: &Path, s: &mut Samples) {
    let r = sample_cpu(root, s);
    s.section("cpu", r);
    let r = sample_net_dev(root, s);
    s.section("net_dev", r);
    let r = sample_disks(root, s);
    s.section("disk", r);
    let r = sample_snmp(root, s);
    s.section("tcp", r);
    let r = sample_sockstat(root, s);
    s.section("sockets", r);
    let r = sample_process(root, s);
    s.section("process", r);
}

fn sample_cpu(root: &Path, s: &mut Samples) -> Result<(), String> {
    use procfs::FromReadSI;
    let p = root.join("stat");
    let st = procfs::KernelStats::from_file(&p, procfs::current_system_info())
        .map_err(|e| proc_err(&p, e))?;
    for (i, c) in st.cpu_time.iter().enumerate() {
        let cpu = i.to_string();
        for (mode, ms) in [
            ("user", Some(c.user_ms())),
            ("nice", Some(c.nice_ms())),
            ("system", Some(c.system_ms())),
            ("idle", Some(c.idle_ms())),
            ("iowait", c.iowait_ms()),
            ("irq", c.irq_ms()),
            ("softirq", c.softirq_ms()),
            ("steal", c.steal_ms()),
        ] {
            if let Some(ms) = ms {
                s.counter(
                    "disgrafs_system_cpu_seconds",
                    "Time each CPU spent in each mode (/proc/stat)",
                    &[("cpu", &cpu), ("mode", mode)],
                    ms as f64 / 1000.0,
                );
            }
        }
    }
    Ok(())
}

fn sample_net_dev(root: &Path, s: &mut Samples) -> Result<(), String> {
    use procfs::FromRead;
    let p = root.join("net/dev");
    let devs = procfs::net::InterfaceDeviceStatus::from_file(&p).map_err(|e| proc_err(&p, e))?;
    for (name, d) in &devs.0 {
        for (dir, bytes, packets, drops) in [
            ("rx", d.recv_bytes, d.recv_packets, d.recv_drop),
            ("tx", d.sent_bytes, d.sent_packets, d.sent_drop),
        ] {
            let l = [("iface", name.as_str()), ("dir", dir)];
            s.counter(
                "disgrafs_system_network_bytes",
                "Bytes per interface and direction (/proc/net/dev)",
                &l,
                bytes as f64,
            );
            s.counter(
                "disgrafs_system_network_packets",
                "Packets per interface and direction (/proc/net/dev)",
                &l,
                packets as f64,
            );
            s.counter(
                "disgrafs_system_network_drops",
                "Packets dropped per interface and direction (/proc/net/dev)",
                &l,
                drops as f64,
            );
        }
    }
    Ok(())
}

/// /proc/diskstats counts 512-byte sectors whatever the device's sector size.
const DISKSTATS_SECTOR: f64 = 512.0;

fn sample_disks(root: &Path, s: &mut Samples) -> Result<(), String> {
    use procfs::FromRead;
    let p = root.join("diskstats");
    let disks = procfs::DiskStats::from_file(&p).map_err(|e| proc_err(&p, e))?;
    for d in &disks.0 {
        // Partitions and virtual devices repeat their disk's traffic; whole block devices have
        // a queue directory in /sys/block.
        let is_loop_or_ram = d.name.starts_with("loop") || d.name.starts_with("ram");
        if is_loop_or_ram || !Path::new("/sys/block").join(&d.name).exists() {
            continue;
        }
        let l = [("device", d.name.as_str())];
        s.counter(
            "disgrafs_system_disk_read_bytes",
            "Bytes read per block device (/proc/diskstats)",
            &l,
            d.sectors_read as f64 * DISKSTATS_SECTOR,
        );
        s.counter(
            "disgrafs_system_disk_written_bytes",
            "Bytes written per block device (/proc/diskstats)",
            &l,
            d.sectors_written as f64 * DISKSTATS_SECTOR,
        );
        s.counter(
            "disgrafs_system_disk_io_seconds",
            "Time the device had IO in progress (its rate is the share of each second spent on IO)",
            &l,
            d.time_in_progress as f64 / 1000.0,
        );
    }
    Ok(())
}

fn sample_snmp(root: &Path, s: &mut Samples) -> Result<(), String> {
    use procfs::FromRead;
    let p = root.join("net/snmp");
    let snmp = procfs::net::Snmp::from_file(&p).map_err(|e| proc_err(&p, e))?;
    for (name, help, v) in [
        (
            "disgrafs_system_tcp_in_segments",
            "TCP segments received (Tcp: InSegs)",
            snmp.tcp_in_segs,
        ),
        (
            "disgrafs_system_tcp_out_segments",
            "TCP segments sent (Tcp: OutSegs)",
            snmp.tcp_out_segs,
        ),
        (
            "disgrafs_system_tcp_retransmitted_segments",
            "TCP segments retransmitted (Tcp: RetransSegs)",
            snmp.tcp_retrans_segs,
        ),
    ] {
        s.counter(name, help, &[], v as f64);
    }
    Ok(())
}

/// procfs has no parser for /proc/net/sockstat; its lines are `PROTO: key value key value…`.
fn parse_sockstat(text: &str) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        for kv in words.chunks_exact(2) {
            if let Ok(v) = kv[1].parse() {
                out.insert((proto.to_string(), kv[0].to_string()), v);
            }
        }
    }
    out
}

fn sample_sockstat(root: &Path, s: &mut Samples) -> Result<(), String> {
    let p = root.join("net/sockstat");
    let text = std::fs::read_to_string(&p).map_err(|e| proc_err(&p, e))?;
    let m = parse_sockstat(&text);
    let used = m
        .get(&("sockets".to_string(), "used".to_string()))
        .ok_or_else(|| proc_err(&p, "no `sockets: used` line"))?;
    s.gauge(
        "disgrafs_system_sockets_used",
        "Sockets in use (/proc/net/sockstat)",
        &[],
        *used as f64,
    );
    for ((proto, key), v) in &m {
        if key == "inuse" {
            s.gauge(
                "disgrafs_system_sockets_inuse",
                "Sockets in use per protocol (/proc/net/sockstat)",
                &[("proto", proto)],
                *v as f64,
            );
        }
    }
    Ok(())
}

fn sample_process(root: &Path, s: &mut Samples) -> Result<(), String> {
    let p = root.join("self");
    let me = procfs::process::Process::new_with_root(p.clone()).map_err(|e| proc_err(&p, e))?;
    let stat = me.stat().map_err(|e| proc_err(&p, e))?;
    let fds = me.fd_count().map_err(|e| proc_err(&p, e))?;
    s.gauge(
        "disgrafs_process_resident_bytes",
        "Resident set size of this process",
        &[],
        procfs::WithCurrentSystemInfo::get(stat.rss_bytes()) as f64,
    );
    s.gauge(
        "disgrafs_process_open_fds",
        "Open file descriptors of this process",
        &[],
        fds as f64,
    );
    s.counter(
        "disgrafs_process_cpu_seconds",
        "CPU time of this process (user + system)",
        &[],
        (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64,
    );
    Ok(())
}

fn is_upload(method: &Method, route: &str) -> bool {
    match route {
        "/api/files" => method == Method::POST || method == Method::PUT,
        "/api/uploads" | "/api/uploads/" => method == Method::POST,
        "/api/uploads/{id}" => method == Method::PATCH,
        _ => false,
    }
}

/// Middleware: counts and times every request by its route template.
pub(crate) async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str())
        .to_string();
    let method = req.method().clone();
    let upload = is_upload(&method, &route);
    let r = RouteOnly {
        route: route.clone(),
    };
    let in_flight = m.in_flight.get_or_create_owned(&r);
    in_flight.inc();
    if upload {
        m.uploads_in_flight.inc();
    }
    let _done = InFlight {
        gauge: in_flight,
        uploads: upload.then(|| m.uploads_in_flight.clone()),
    };
    let started = Instant::now();
    let req = req.map(|b| {
        Body::new(Counted {
            inner: b,
            bytes: m.bytes_in.get_or_create_owned(&r),
        })
    });
    let res = next.run(req).await;
    m.latency
        .get_or_create(&r)
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RouteLabels {
            method: method.as_str().chars().take(16).collect(),
            route,
            status: res.status().as_u16(),
        })
        .inc();
    let bytes = m.bytes_out.get_or_create_owned(&r);
    res.map(|b| Body::new(Counted { inner: b, bytes }))
}

/// Decrements the in-flight gauges even when the handler's future is dropped.
struct InFlight {
    gauge: Gauge,
    uploads: Option<Gauge>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
        if let Some(u) = &self.uploads {
            u.dec();
        }
    }
}

/// A body that adds the length of every data frame passing through to a counter.
struct Counted {
    inner: Body,
    bytes: Counter,
}

impl HttpBody for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let p = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &p
            && let Some(d) = f.data_ref()
        {
            self.bytes.inc_by(d.len() as u64);
        }
        p
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Every accelerator disgrafs has pinned (CPU balancers, same-host bypasses, AF_XDP steering
/// and its fast path; attached by this server, by another one or by `disgrafs accel`), read
/// through the pins in one pass: one detached underneath simply stops appearing.
pub struct PinnedSource;

impl AccelSource for PinnedSource {
    fn name(&self) -> &'static str {
        "pinned"
    }

    fn sample(&self, out: &mut Samples) -> Result<(), String> {
        let st = disgrafs_accel::status::status().map_err(|e| e.to_string())?;
        sample_sockmap(&st.sockmap, out);
        sample_afxdp(&st.afxdp, out);
        for b in &st.cpu_balance {
            let at = [("iface", b.iface.as_str()), ("netns", b.netns.as_str())];
            out.gauge(
                "disgrafs_accel_attached",
                "Accelerators attached, by accelerator and interface",
                &[
                    ("accelerator", "cpu_balance"),
                    ("iface", &b.iface),
                    ("netns", &b.netns),
                ],
                1.0,
            );
            for (cpu, c) in b.per_cpu.iter().enumerate() {
                let cpu = cpu.to_string();
                let l = [at[0], at[1], ("cpu", cpu.as_str())];
                for (name, help, v) in [
                    (
                        "received",
                        "Frames the XDP program saw on this CPU",
                        c.received,
                    ),
                    (
                        "redirected",
                        "Frames this CPU handed to a CPUMAP queue",
                        c.redirected,
                    ),
                    (
                        "passed",
                        "Frames passed up the stack unbalanced on this CPU",
                        c.passed,
                    ),
                    (
                        "dropped",
                        "Frames the CPUMAP dropped when this CPU enqueued them",
                        c.dropped,
                    ),
                    (
                        "delivered",
                        "Frames the CPUMAP delivered to this CPU",
                        c.delivered,
                    ),
                ] {
                    out.counter(
                        &format!("disgrafs_accel_cpu_balance_{name}"),
                        help,
                        &l,
                        v as f64,
                    );
                }
            }
        }
        if let Some(e) = st.errors.first() {
            return Err(e.clone());
        }
        Ok(())
    }
}

/// The same-host bypasses: one series per cgroup the bypass is attached to.
fn sample_sockmap(list: &[disgrafs_accel::sockmap::SockmapStatus], out: &mut Samples) {
    for b in list {
        let cgroup = b.cgroup.display().to_string();
        out.gauge(
            "disgrafs_accel_attached",
            "Accelerators attached, by accelerator and interface",
            &[("accelerator", "sockmap"), ("iface", "-"), ("netns", "-")],
            1.0,
        );
        let l = [("cgroup", cgroup.as_str())];
        out.gauge(
            "disgrafs_accel_sockmap_sockets",
            "Sockets in the bypass's map now",
            &l,
            b.sockets as f64,
        );
        let c = &b.counters;
        for (name, help, v) in [
            (
                "sockets_added",
                "Local TCP sockets put in the map",
                c.sockets_added,
            ),
            (
                "sockets_removed",
                "Sockets of the map that closed",
                c.sockets_removed,
            ),
            ("add_failed", "Sockets the map refused", c.add_failed),
            (
                "messages_redirected",
                "Messages handed straight to the peer socket",
                c.msgs_redirected,
            ),
            (
                "bytes_redirected",
                "Bytes handed straight to the peer socket",
                c.bytes_redirected,
            ),
            (
                "messages_passed",
                "Messages of sockets in the map that took the TCP path",
                c.msgs_passed,
            ),
            (
                "bytes_passed",
                "Bytes of sockets in the map that took the TCP path",
                c.bytes_passed,
            ),
            (
                "directions_to_tcp",
                "Directions moved to TCP by the small-write policy",
                c.directions_to_tcp,
            ),
            (
                "sockets_left",
                "Sockets taken out of the map because bytes reached them over TCP",
                c.sockets_left,
            ),
        ] {
            out.counter(
                &format!("disgrafs_accel_sockmap_{name}"),
                help,
                &l,
                v as f64,
            );
        }
    }
}

/// AF_XDP steering (kernel counters) and the fast path behind it (its own counters, published
/// in the pinned `xs_user` map).
fn sample_afxdp(list: &[disgrafs_accel::afxdp::AfxdpStatus], out: &mut Samples) {
    for a in list {
        let l = [("iface", a.iface.as_str()), ("netns", a.netns.as_str())];
        out.gauge(
            "disgrafs_accel_attached",
            "Accelerators attached, by accelerator and interface",
            &[("accelerator", "afxdp"), l[0], l[1]],
            1.0,
        );
        let s = &a.steering;
        for (verdict, v) in [
            ("seen", s.seen),
            ("tcp", s.tcp),
            ("udp", s.udp),
            ("passed", s.passed),
            ("no_socket", s.no_socket),
        ] {
            out.counter(
                "disgrafs_accel_afxdp_frames",
                "Frames of the AF_XDP steering program, by verdict: seen; handed to an AF_XDP \
                 socket (tcp, udp); passed to the kernel; for the ports but with no socket on \
                 their queue",
                &[l[0], l[1], ("verdict", verdict)],
                v as f64,
            );
        }
        out.gauge(
            "disgrafs_accel_afxdp_fast_path_running",
            "1 while the AF_XDP fast path's loop runs (a recent heartbeat), 0 when it died or \
             hangs with its steering attached",
            &l,
            f64::from(u8::from(a.running)),
        );
        for (name, v) in &a.fast_path {
            let metric = format!("disgrafs_accel_afxdp_fast_path_{name}");
            let help = "The AF_XDP fast path's own counter of this name";
            // tcp_active is a level; the others only grow.
            if name == "tcp_active" {
                out.gauge(&metric, help, &l, *v as f64);
            } else {
                out.counter(&metric, help, &l, *v as f64);
            }
        }
    }
}

/// An HTTP observer this server started on one interface; dropping it closes its socket,
/// which removes the filter.
pub struct HttpTraceSource {
    iface: String,
    observer: std::sync::Mutex<disgrafs_accel::http::HttpObserver>,
}

impl HttpTraceSource {
    pub fn new(iface: &str, observer: disgrafs_accel::http::HttpObserver) -> Self {
        HttpTraceSource {
            iface: iface.to_string(),
            observer: std::sync::Mutex::new(observer),
        }
    }
}

impl AccelSource for HttpTraceSource {
    fn name(&self) -> &'static str {
        "http_trace"
    }

    fn sample(&self, out: &mut Samples) -> Result<(), String> {
        let o = self.observer.lock().unwrap_or_else(|p| p.into_inner());
        let agg = o.snapshot();
        let f = o.filter_counters().map_err(|e| e.to_string())?;
        drop(o);
        let iface = self.iface.as_str();
        out.gauge(
            "disgrafs_accel_attached",
            "Accelerators attached, by accelerator and interface",
            &[
                ("accelerator", "http_trace"),
                ("iface", iface),
                ("netns", "-"),
            ],
            1.0,
        );
        for r in &agg.routes {
            let l = [
                ("iface", iface),
                ("method", r.method.as_str()),
                ("path", r.path.as_str()),
            ];
            out.counter(
                "disgrafs_accel_http_trace_requests",
                "Requests seen on the wire by the HTTP observer, by method and normalised path",
                &l,
                r.requests as f64,
            );
            out.counter(
                "disgrafs_accel_http_trace_bytes",
                "Request bytes seen on the wire, by method and normalised path",
                &l,
                r.bytes as f64,
            );
        }
        let l = [("iface", iface)];
        out.counter(
            "disgrafs_accel_http_trace_split_request_lines",
            "Request lines split across segments (counted, not reassembled)",
            &l,
            agg.split_request_lines as f64,
        );
        out.counter(
            "disgrafs_accel_http_trace_rejected",
            "Frames the filter kept that user space rejected",
            &l,
            agg.rejected as f64,
        );
        for (verdict, v) in [
            ("seen", f.seen),
            ("kept", f.kept),
            ("not_tcp", f.not_tcp),
            ("no_payload", f.no_payload),
            ("not_http", f.not_http),
            ("malformed", f.malformed),
        ] {
            out.counter(
                "disgrafs_accel_http_trace_filter_frames",
                "The kernel filter's verdicts",
                &[("iface", iface), ("verdict", verdict)],
                v as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_lines() {
        let m = parse_sockstat(
            "sockets: used 231\nTCP: inuse 5 orphan 0 tw 2 alloc 9 mem 1\nUDP: inuse 3 mem 2\n",
        );
        assert_eq!(m[&("sockets".into(), "used".into())], 231);
        assert_eq!(m[&("TCP".into(), "inuse".into())], 5);
        assert_eq!(m[&("UDP".into(), "mem".into())], 2);
    }

    fn render_samples(s: Samples) -> String {
        let mut r = Registry::default();
        s.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn system_sections_from_real_proc() {
        let mut s = Samples::default();
        sample_system(Path::new("/proc"), &mut s);
        let out = render_samples(s);
        for name in [
            "disgrafs_system_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}",
            "disgrafs_system_network_bytes_total{iface=\"lo\",dir=\"rx\"}",
            "disgrafs_system_tcp_in_segments_total",
            "disgrafs_system_sockets_used",
            "disgrafs_process_open_fds",
            "disgrafs_scrape_ok{section=\"process\"} 1",
        ] {
            assert!(out.contains(name), "{name} missing from\n{out}");
        }
        assert!(
            out.contains("disgrafs_scrape_ok{section=\"cpu\"} 1"),
            "{out}"
        );
    }

    /// A /proc whose files are missing or garbage costs only the sections that read them.
    #[test]
    fn broken_proc_leaves_the_other_sections() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("stat"), "not a stat file\n").unwrap();
        std::fs::write(dir.path().join("net/sockstat"), "sockets: used 7\n").unwrap();
        let mut s = Samples::default();
        sample_system(dir.path(), &mut s);
        let out = render_samples(s);
        assert!(out.contains("disgrafs_system_sockets_used 7"), "{out}");
        assert!(
            out.contains("disgrafs_scrape_ok{section=\"sockets\"} 1"),
            "{out}"
        );
        for broken in ["cpu", "net_dev", "disk", "tcp", "process"] {
            let line = format!("disgrafs_scrape_ok{{section=\"{broken}\"}} 0");
            assert!(out.contains(&line), "{line} missing from\n{out}");
        }
    }
}
