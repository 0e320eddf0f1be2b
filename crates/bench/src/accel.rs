//! `disgrafs bench accel`: disgrafs' own traffic without and with the accelerators that apply,
//! on a test host of its own, measured by the server's own `/metrics`.
//!
//! The host: two network namespaces joined by a veth pair with one receive queue per end, and a
//! child cgroup v2 holding the server. `disgrafs serve` (this executable, or `DISGRAFS_BIN`) runs
//! in namespace b on a fresh data directory; a client pinned to one CPU in namespace a drives a
//! closed-loop workload over several TCP connections into the server's one receive queue:
//! uploads (PUT, and tus through the client crate), downloads of one large file and of 4 KiB
//! files, and queries; the uploads cause tagging. Without acceleration, veth runs the whole
//! receive path of every frame into the server on the sending (client's) CPU, the case the
//! report's 90.57 % peak came from; the CPU balancer moves it to other CPUs.
//!
//! `--accel` lists the accelerated configurations; each is measured against the same workload
//! without acceleration:
//! * `cpu-balance`, `http-trace`: `serve --accel` attaches them to the server's veth;
//! * `sockmap`, the same-host bypass, applies only to connections within one host and
//!   namespace, so its configuration puts nginx in front of the server in namespace b (both in
//!   the bypass's cgroup) and the client talks to nginx; its baseline is the same proxy without
//!   the bypass;
//! * `afxdp`: `disgrafs accel afxdp` serves the 4 KiB GETs on another port of the server's veth
//!   through XDP steering, AF_XDP and smoltcp, beside the server (which keeps everything else).
//!   The client's veth checksums in software in every run then (AF_XDP sees frames as sent).
//!
//! Runs go round the modes (baselines and configurations), each round starting one mode later,
//! each run on a new server and data directory, and every row is the median over the repeats
//! with its min and max. The figures come from
//! scraping the server's `/metrics` from inside namespace b, so the report's table uses the one
//! definition of each figure (`disgrafs_server::metrics`): per-CPU time, disk bytes and IO time
//! are the machine's (/proc/stat, /proc/diskstats), network bytes, TCP segments and sockets are
//! the server namespace's (a process reads its own namespace's /proc/net). Request rate and
//! latency are measured by the client.
//!
//! Interrupted (Ctrl-C, SIGTERM) the run stops at its next step and the host is removed; the
//! guards do the same when a step fails or panics.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use disgrafs_accel::{
    harness::{self, AttachmentGuard, CgroupGuard, VethNet, VethOptions},
    pin::Accelerator,
    sys,
};

use crate::Stop;
use crate::row::{BenchRow, Better, render_markdown};

/// Options of the benchmark (the flags of `disgrafs bench accel`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Runs of each mode (alternating: none, accelerated, none, ...); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// Seconds of client load per run.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Concurrent client connections (flows into the server's one receive queue).
    #[arg(long, default_value_t = 8)]
    pub flows: usize,
    /// Accelerated configurations, comma-separated, each with `+` between its accelerators:
    /// cpu-balance and http-trace (`serve --accel` on the server's veth), sockmap (nginx in
    /// front of the server on its host, with the same-host bypass), afxdp (4 KiB GETs through
    /// the AF_XDP fast path). afxdp and cpu-balance both need the veth's XDP hook: not in one.
    #[arg(long, default_value = "cpu-balance+http-trace,sockmap,afxdp")]
    pub accel: String,
    /// cpu-balance weights for the accelerated run [default: every CPU alike].
    #[arg(long)]
    pub weights: Option<String>,
    /// CPU the client is pinned to (without the balancer the server's receive work runs there).
    #[arg(long, default_value_t = 0)]
    pub client_cpu: u32,
    /// Also write the table as Markdown (accel.md) and the time series as SVG plots here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const SCRAPE_EVERY: Duration = Duration::from_millis(500);
const LARGE_BYTES: usize = 16 << 20;
const SMALL_BYTES: usize = 4096;
const SMALL_FILES: usize = 32;
const PUT_BYTES: usize = 256 << 10;
const TUS_BYTES: usize = 1 << 20;
const TUS_FILES: usize = 8;
/// Bounds of one run beside its duration: requests per flow, and scrapes.
const MAX_OPS_PER_FLOW: usize = 100_000;
const MAX_SCRAPES: usize = 10_000;
/// A request or a server shutdown that takes longer has failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports in namespace b beside the server's: nginx (sockmap's configurations) and the fast path.
const NGINX_PORT: u16 = 8088;
const FAST_PORT: u16 = 8080;

/// What one run measures: the server alone, or with accelerators.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mode {
    /// `serve --accel` (http-trace, cpu-balance).
    serve: Vec<&'static str>,
    sockmap: bool,
    afxdp: bool,
    /// The client reaches the server through nginx on the server's host.
    via_nginx: bool,
}

impl Mode {
    fn plain(via_nginx: bool) -> Mode {
        Mode {
            serve: Vec::new(),
            sockmap: false,
            afxdp: false,
            via_nginx,
        }
    }

    fn name(&self) -> String {
        let mut parts: Vec<&str> = self.serve.clone();
        if self.sockmap {
            parts.push("sockmap");
        }
        if self.afxdp {
            parts.push("afxdp");
        }
        let name = if parts.is_empty() {
            "no accel".to_string()
        } else {
            parts.join("+")
        };
        if self.via_nginx {
            format!("{name} via nginx")
        } else {
            name
        }
    }

    /// The mode this one is compared against.
    fn baseline(&self) -> Mode {
        Mode::plain(self.via_nginx)
    }
}

/// `--accel`: the configurations, in order, each once.
fn parse_modes(list: &str) -> anyhow::Result<Vec<Mode>> {
    let mut modes: Vec<Mode> = Vec::new();
    for config in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let mut m = Mode::plain(false);
        for part in config.split('+').map(str::trim) {
            match part {
                "cpu-balance" => m.serve.push("cpu-balance"),
                "http-trace" => m.serve.push("http-trace"),
                "sockmap" => {
                    m.sockmap = true;
                    m.via_nginx = true;
                }
                "afxdp" => m.afxdp = true,
                other => bail!(
                    "unknown accelerator {other:?} in --accel (cpu-balance, http-trace, sockmap, \
                     afxdp; + joins them, a comma separates configurations)"
                ),
            }
        }
        m.serve.sort_unstable();
        m.serve.dedup();
        anyhow::ensure!(
            !(m.afxdp && m.serve.contains(&"cpu-balance")),
            "--accel {config}: afxdp and cpu-balance both need the server veth's XDP hook; \
             measure them as separate configurations (afxdp,cpu-balance)"
        );
        if !modes.contains(&m) {
            modes.push(m);
        }
    }
    anyhow::ensure!(!modes.is_empty(), "--accel names no configuration");
    Ok(modes)
}

/// Every mode a run of `configs` goes through: the baselines they need, then the configurations.
fn all_modes(configs: &[Mode]) -> Vec<Mode> {
    let mut modes: Vec<Mode> = Vec::new();
    for b in configs.iter().map(Mode::baseline) {
        if !modes.contains(&b) {
            modes.push(b);
        }
    }
    modes.extend(configs.iter().cloned());
    modes
}

/// The same-host bypass on the test host's cgroup for one run; detached when dropped.
struct Bypass(PathBuf);

impl Bypass {
    fn attach(cgroup: &Path) -> anyhow::Result<Bypass> {
        disgrafs_accel::sockmap::attach(&disgrafs_accel::sockmap::SockmapConfig {
            cgroup: cgroup.to_path_buf(),
            policy: Default::default(),
        })?;
        Ok(Bypass(cgroup.to_path_buf()))
    }
}

impl Drop for Bypass {
    fn drop(&mut self) {
        disgrafs_accel::sockmap::detach_cgroup(&self.0).ok();
    }
}

/// Kinds of client request (one per flow role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Tus,
    Download,
    Small,
    Query,
}

/// Flow roles in the order flows get them: with 8 flows, 2 PUT, 1 tus, 1 large download, 3 small
/// GETs and 1 query loop.
const ROLES: [Kind; 8] = [
    Kind::Put,
    Kind::Small,
    Kind::Download,
    Kind::Small,
    Kind::Query,
    Kind::Tus,
    Kind::Small,
    Kind::Put,
];

/// The test host; fields drop in order: pins, cgroup, namespaces (taking the veth pair), files.
struct Host {
    _pins: AttachmentGuard,
    _fast_pins: Option<AttachmentGuard>,
    cgroup: CgroupGuard,
    net: VethNet,
    bin: String,
    tmp: tempfile::TempDir,
}

impl Host {
    fn new(modes: &[Mode]) -> anyhow::Result<Self> {
        let bin = match std::env::var_os("DISGRAFS_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe().context("cannot find the disgrafs executable")?,
        };
        let bin = bin
            .to_str()
            .context("the disgrafs executable's path is not UTF-8")?
            .to_string();
        let net = VethNet::new(VethOptions { single_queue: true })?;
        let cgroup = CgroupGuard::new("bench-accel")?;
        // serve attaches from inside namespace b, so its pins carry the current-namespace label.
        let _pins = AttachmentGuard::new(Accelerator::CpuBalance, None, VethNet::IF_B)?;
        // The fast path attaches with the namespace's name.
        let _fast_pins = if modes.iter().any(|m| m.afxdp) {
            crate::afxdp::client_checksums_in_software(&net)?;
            Some(AttachmentGuard::new(
                Accelerator::Afxdp,
                Some(net.b.name()),
                VethNet::IF_B,
            )?)
        } else {
            None
        };
        let tmp = tempfile::Builder::new()
            .prefix("disgrafs-bench-accel")
            .tempdir()?;
        Ok(Host {
            _pins,
            _fast_pins,
            cgroup,
            net,
            bin,
            tmp,
        })
    }
}

/// A `disgrafs serve` in namespace b: stopped with SIGTERM (so it detaches what it attached)
/// when dropped, killed if it does not stop in time.
struct Serve {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Serve {
    fn start(host: &Host, data: &Path, mode: &Mode, args: &Args) -> anyhow::Result<Serve> {
        let log_path = data.with_extension("log");
        let token = crate::child::provision(&Command::new(&host.bin), data)?;
        let mut cmd = host.cgroup.command(Some(&host.net.b), &host.bin);
        cmd.arg("serve")
            .args(["--listen", &format!("{}:0", VethNet::ADDR_B)])
            .args(crate::PLAIN_UNBOUNDED)
            .arg("--data-dir")
            .arg(data)
            .args(["--workers", "1"]);
        if !mode.serve.is_empty() {
            cmd.args(["--accel", &mode.serve.join(","), "--iface", VethNet::IF_B]);
            if let (Some(w), true) = (&args.weights, mode.serve.contains(&"cpu-balance")) {
                cmd.args(["--weights", w]);
            }
        }
        cmd.env("DISGRAFS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log_path)?);
        let mut child = cmd.spawn().context("cannot start disgrafs serve")?;
        let mut stdout = BufReader::new(child.stdout.take().context("serve has no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).ok();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .and_then(|a| a.parse().ok());
        let serve = |addr| Serve {
            child,
            _stdout: stdout,
            addr,
        };
        match addr {
            Some(addr) => {
                crate::child::remember(&format!("http://{addr}"), token);
                Ok(serve(addr))
            }
            None => {
                drop(serve(SocketAddr::from(([0, 0, 0, 0], 0))));
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                bail!(
                    "disgrafs serve did not start: {}",
                    log.trim().replace('\n', " ")
                )
            }
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + REQUEST_TIMEOUT;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// One scrape of the server's /metrics: the report's figures as counters.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snap {
    /// Seconds since the load started.
    t: f64,
    /// Per CPU: (busy seconds, all seconds).
    cpu: Vec<(f64, f64)>,
    /// Bytes through the server's veth, both directions.
    net_bytes: f64,
    disk_read: f64,
    disk_written: f64,
    /// Per block device: seconds with IO in progress.
    disk_io: BTreeMap<String, f64>,
    tcp_in: f64,
    tcp_out: f64,
    sockets: f64,
    /// CPU seconds of the server process.
    server_cpu: f64,
    /// Bytes the same-host bypass handed straight to a peer socket.
    bypassed_bytes: f64,
    /// Requests the AF_XDP fast path answered.
    fast_requests: f64,
}

/// One sample line of the Prometheus text format: name, labels, value.
type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

fn sample_line(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let labels = labels
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once("=\"")?;
            Some((k, v.trim_end_matches('"')))
        })
        .collect();
    Some((name, labels, value))
}

fn parse_snap(text: &str, t: f64) -> Snap {
    let mut s = Snap {
        t,
        ..Snap::default()
    };
    let mut cpus: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for (name, labels, v) in text.lines().filter_map(sample_line) {
        let label = |k: &str| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match name {
            "disgrafs_system_cpu_seconds_total" => {
                let Some(cpu) = label("cpu").and_then(|c| c.parse().ok()) else {
                    continue;
                };
                let e = cpus.entry(cpu).or_default();
                if !matches!(label("mode"), Some("idle" | "iowait")) {
                    e.0 += v;
                }
                e.1 += v;
            }
            "disgrafs_system_network_bytes_total" if label("iface") == Some(VethNet::IF_B) => {
                s.net_bytes += v
            }
            "disgrafs_system_disk_read_bytes_total" => s.disk_read += v,
            "disgrafs_system_disk_written_bytes_total" => s.disk_written += v,
            "disgrafs_system_disk_io_seconds_total" => {
                *s.disk_io
                    .entry(label("device").unwrap_or("").to_string())
                    .or_default() += v
            }
            "disgrafs_system_tcp_in_segments_total" => s.tcp_in = v,
            "disgrafs_system_tcp_out_segments_total" => s.tcp_out = v,
            "disgrafs_system_sockets_used" => s.sockets = v,
            "disgrafs_process_cpu_seconds_total" => s.server_cpu = v,
            "disgrafs_accel_sockmap_bytes_redirected_total" => s.bypassed_bytes += v,
            "disgrafs_accel_afxdp_fast_path_http_requests_total" => s.fast_requests += v,
            _ => {}
        }
    }
    s.cpu = cpus.into_values().collect();
    s
}

/// Per-second figures between two scrapes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Rates {
    peak_cpu: f64,
    net_mbps: f64,
    disk_write_mbs: f64,
    disk_read_mbs: f64,
    io_share: f64,
    tcp_in: f64,
    tcp_out: f64,
    /// The server process's CPU use, % of one CPU.
    server_cpu: f64,
    /// MB/s through the same-host bypass.
    bypassed_mbs: f64,
    /// Requests per second the fast path answered.
    fast_rps: f64,
}

fn rates(a: &Snap, b: &Snap) -> Rates {
    let dt = (b.t - a.t).max(1e-9);
    let peak_cpu = a
        .cpu
        .iter()
        .zip(&b.cpu)
        .map(|(x, y)| {
            let total = y.1 - x.1;
            if total > 0.0 {
                (y.0 - x.0) / total * 100.0
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max);
    let io_share = b
        .disk_io
        .iter()
        .map(|(dev, v)| (v - a.disk_io.get(dev).copied().unwrap_or(*v)) / dt * 100.0)
        .fold(0.0, f64::max);
    Rates {
        peak_cpu,
        net_mbps: (b.net_bytes - a.net_bytes) * 8.0 / dt / 1e6,
        disk_write_mbs: (b.disk_written - a.disk_written) / dt / 1e6,
        disk_read_mbs: (b.disk_read - a.disk_read) / dt / 1e6,
        io_share,
        tcp_in: (b.tcp_in - a.tcp_in) / dt,
        tcp_out: (b.tcp_out - a.tcp_out) / dt,
        server_cpu: (b.server_cpu - a.server_cpu) / dt * 100.0,
        bypassed_mbs: (b.bypassed_bytes - a.bypassed_bytes) / dt / 1e6,
        fast_rps: (b.fast_requests - a.fast_requests) / dt,
    }
}

/// GET /metrics over a new connection (HTTP/1.1, Connection: close).
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let token = crate::child::token_for(&format!("http://{addr}")).unwrap_or_default();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .context("no HTTP response from /metrics")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "/metrics: {head}");
    Ok(body.to_string())
}

/// Scrapes every [`SCRAPE_EVERY`] from inside namespace b until `done`.
fn sampler(
    ns: String,
    addr: SocketAddr,
    t0: Instant,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Vec<Snap>>> {
    std::thread::spawn(move || {
        sys::in_netns(Some(&ns), || {
            let mut snaps = Vec::new();
            let mut last_err = None;
            for i in 0..MAX_SCRAPES {
                let t = t0.elapsed().as_secs_f64();
                match scrape(addr) {
                    Ok(text) => snaps.push(parse_snap(&text, t)),
                    Err(e) => last_err = Some(e),
                }
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let next = t0 + SCRAPE_EVERY * (i as u32 + 1);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            Ok(match (snaps.len(), last_err) {
                (0 | 1, Some(e)) => Err(e.context("cannot scrape the server's /metrics")),
                _ => Ok(snaps),
            })
        })?
    })
}

/// One finished client request.
#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    secs: f64,
    bytes: u64,
    ok: bool,
}

/// Deterministic text of `len` bytes for `seed`: words the tagger finds keywords in, distinct per
/// seed (so each upload is new content, stored and tagged).
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "graph",
        "file",
        "system",
        "network",
        "balancer",
        "kernel",
        "packet",
        "queue",
        "receive",
        "latency",
        "throughput",
        "socket",
        "upload",
        "download",
        "query",
        "tagging",
        "content",
        "storage",
        "namespace",
        "interface",
        "processor",
        "benchmark",
        "metrics",
        "report",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = format!("Document {seed}.\n").into_bytes();
    while out.len() < len {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.extend_from_slice(if x.is_multiple_of(11) { b".\n" } else { b" " });
    }
    out.truncate(len);
    out
}

/// What the setup uploaded, for the load to fetch.
struct Fixture {
    large: String,
    small: Vec<String>,
    tus_files: Vec<PathBuf>,
}

async fn put(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    body: Vec<u8>,
) -> anyhow::Result<String> {
    let resp = http
        .put(format!("{base}/api/files"))
        .query(&[("name", name)])
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    let rec: serde_json::Value = resp.json().await?;
    rec["id"]
        .as_str()
        .map(str::to_string)
        .context("upload answered without an id")
}

async fn get_len(http: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let mut resp = http
        .get(url)
        .headers(crate::child::auth_headers(url))
        .send()
        .await?
        .error_for_status()?;
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

async fn setup(http: &reqwest::Client, base: &str, dir: &Path) -> anyhow::Result<Fixture> {
    let mut large = vec![0u8; LARGE_BYTES];
    blake3::Hasher::new()
        .update(b"bench accel large")
        .finalize_xof()
        .fill(&mut large);
    let large = put(http, base, "large.bin", large).await?;
    let mut small = Vec::new();
    for i in 0..SMALL_FILES {
        small.push(
            put(
                http,
                base,
                &format!("small-{i}.txt"),
                text(i as u64, SMALL_BYTES),
            )
            .await?,
        );
    }
    let mut tus_files = Vec::new();
    for i in 0..TUS_FILES {
        let p = dir.join(format!("tus-{i}.txt"));
        fs::write(&p, text(1_000_000 + i as u64, TUS_BYTES))?;
        tus_files.push(p);
    }
    Ok(Fixture {
        large,
        small,
        tus_files,
    })
}

const QUERIES: [&str; 4] = [
    "kind:document",
    "size<=4KiB",
    "name:put AND NOT name:small",
    "network OR kernel",
];

struct Load<'a> {
    http: reqwest::Client,
    client: disgrafs_client::Client,
    base: String,
    /// Where the 4 KiB GETs go (the fast path's port, or `base`).
    small_base: String,
    fixture: &'a Fixture,
    deadline: Instant,
    stop: &'a Stop,
}

async fn one_op(l: &Load<'_>, flow: usize, n: usize, kind: Kind) -> anyhow::Result<u64> {
    let base = &l.base;
    match kind {
        Kind::Put => {
            let seed = 10_000_000 + (flow * MAX_OPS_PER_FLOW + n) as u64;
            put(
                &l.http,
                base,
                &format!("put-{flow}-{n}.txt"),
                text(seed, PUT_BYTES),
            )
            .await?;
            Ok(PUT_BYTES as u64)
        }
        Kind::Tus => {
            let path = &l.fixture.tus_files[n % l.fixture.tus_files.len()];
            l.client
                .upload(path, &format!("tus-{flow}-{n}.txt"), None, |_| {}, None)
                .await?;
            Ok(TUS_BYTES as u64)
        }
        Kind::Download => {
            let url = format!("{base}/api/files/{}/content", l.fixture.large);
            get_len(&l.http, &url).await
        }
        Kind::Small => {
            let id = &l.fixture.small[(flow * 7 + n) % l.fixture.small.len()];
            get_len(&l.http, &format!("{}/api/files/{id}/content", l.small_base)).await
        }
        Kind::Query => {
            let list = l.client.list(QUERIES[n % QUERIES.len()], 20, 0).await?;
            Ok(list.files.len() as u64)
        }
    }
}

async fn flow(l: &Load<'_>, i: usize) -> Vec<Op> {
    let kind = ROLES[i % ROLES.len()];
    let mut ops = Vec::new();
    for n in 0..MAX_OPS_PER_FLOW {
        if Instant::now() >= l.deadline || l.stop.is_set() {
            break;
        }
        let started = Instant::now();
        let r = one_op(l, i, n, kind).await;
        ops.push(Op {
            kind,
            secs: started.elapsed().as_secs_f64(),
            bytes: *r.as_ref().unwrap_or(&0),
            ok: r.is_ok(),
        });
        if r.is_err() {
            // A failing server is not hammered.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    ops
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct RunFigures {
    overall: Rates,
    sockets: f64,
    req_rate: f64,
    p99_ms: f64,
    upload_mbs: f64,
    download_mbs: f64,
    failed: f64,
    /// The client thread's CPU use, % of its CPU.
    client_cpu: f64,
    /// (seconds into the load, per-interval rates), for the plots.
    series: Vec<(f64, Rates)>,
}

fn figures(snaps: &[Snap], ops: &[Op], load_secs: f64, client_secs: f64) -> RunFigures {
    let (first, last) = (snaps.first(), snaps.last());
    let overall = match (first, last) {
        (Some(a), Some(b)) if b.t > a.t => rates(a, b),
        _ => Rates::default(),
    };
    let series = snaps
        .windows(2)
        .map(|w| ((w[0].t + w[1].t) / 2.0, rates(&w[0], &w[1])))
        .collect();
    let sockets = snaps.iter().map(|s| s.sockets).sum::<f64>() / snaps.len().max(1) as f64;
    let mut small: Vec<f64> = ops
        .iter()
        .filter(|o| o.ok && matches!(o.kind, Kind::Small | Kind::Query))
        .map(|o| o.secs * 1000.0)
        .collect();
    small.sort_by(f64::total_cmp);
    let p99_ms = small
        .get(((small.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let bytes = |kinds: &[Kind]| {
        ops.iter()
            .filter(|o| o.ok && kinds.contains(&o.kind))
            .map(|o| o.bytes as f64)
            .sum::<f64>()
    };
    let secs = load_secs.max(1e-9);
    RunFigures {
        overall,
        sockets,
        req_rate: ops.iter().filter(|o| o.ok).count() as f64 / secs,
        p99_ms,
        upload_mbs: bytes(&[Kind::Put, Kind::Tus]) / secs / 1e6,
        download_mbs: bytes(&[Kind::Download, Kind::Small]) / secs / 1e6,
        failed: ops.iter().filter(|o| !o.ok).count() as f64,
        client_cpu: client_secs / secs * 100.0,
        series,
    }
}

/// CPU seconds of the calling thread. The kernel charges the softirq work it does on the way out
/// of a syscall (here: the receive path of the frames the thread just sent over veth) to the
/// thread.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Runs the client in namespace a, on one thread pinned to `--client-cpu`: setup, then the load.
/// `on_load` runs between the two and may name another base URL for the 4 KiB GETs.
fn client(
    host: &Host,
    base: String,
    args: &Args,
    stop: &Stop,
    on_load: impl FnOnce(&Fixture) -> anyhow::Result<Option<String>> + Send,
) -> anyhow::Result<(Vec<Op>, f64, f64)> {
    let dir = tempfile::tempdir_in(host.tmp.path())?;
    let (flows, cpu, duration) = (args.flows.max(1), args.client_cpu, args.duration.max(1));
    sys::in_netns(Some(host.net.a.name()), || {
        Ok((|| {
            crate::cpu_balance::pin_current_thread(cpu)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let http = reqwest::Client::builder()
                    .default_headers(crate::child::auth_headers(&base))
                    .timeout(REQUEST_TIMEOUT)
                    .tcp_nodelay(true)
                    .build()?;
                let fixture = setup(&http, &base, dir.path()).await?;
                stop.check()?;
                let small_base = on_load(&fixture)?.unwrap_or_else(|| base.clone());
                let started = Instant::now();
                let cpu0 = thread_cpu_secs();
                let load = Load {
                    http,
                    client: disgrafs_client::Client::new(
                        &base,
                        crate::child::token_for(&base).as_deref(),
                    )?,
                    base: base.clone(),
                    small_base,
                    fixture: &fixture,
                    deadline: started + Duration::from_secs(duration),
                    stop,
                };
                let ops: Vec<Op> = futures::future::join_all((0..flows).map(|i| flow(&load, i)))
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                Ok((
                    ops,
                    started.elapsed().as_secs_f64(),
                    thread_cpu_secs() - cpu0,
                ))
            })
        })())
    })?
}

/// One run: a new server (accelerated or not), setup, load while scraping.
fn run_once(
    host: &Host,
    n: usize,
    mode: &Mode,
    args: &Args,
    stop: &Stop,
) -> anyhow::Result<RunFigures> {
    let data = host.tmp.path().join(format!("data-{n}"));
    // Before the server and the proxy open their sockets (sock_ops sees connections as they
    // are established); detached after the run.
    let _bypass = match mode.sockmap {
        true => Some(Bypass::attach(host.cgroup.path())?),
        false => None,
    };
    let serve = Serve::start(host, &data, mode, args)?;
    if mode.serve.contains(&"cpu-balance") {
        anyhow::ensure!(
            disgrafs_accel::cpu_balance::is_attached(VethNet::IF_B, None)?,
            "serve --accel did not attach the CPU balancer to {}",
            VethNet::IF_B
        );
    }
    let (_nginx, base) = if mode.via_nginx {
        let listen = SocketAddr::from((VethNet::ADDR_B, NGINX_PORT));
        let dir = host.tmp.path().join(format!("nginx-{n}"));
        let proxy = crate::sockmap::start_proxy_at(
            &host.cgroup,
            Some(&host.net.b),
            listen,
            &dir,
            &serve.addr.to_string(),
            "client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;",
        )?;
        let base = format!("http://{listen}");
        if let Some(t) = crate::child::token_for(&serve.base()) {
            crate::child::remember(&base, t);
        }
        (Some(proxy), base)
    } else {
        (None, serve.base())
    };
    let done = Arc::new(AtomicBool::new(false));
    let mut sampler_thread = None;
    let mut fast = None;
    let (addr, ns) = (serve.addr, host.net.b.name().to_string());
    let result = client(host, base, args, stop, |fixture| {
        let small = if mode.afxdp {
            let probe = format!("/api/files/{}", fixture.small[0]);
            let fast_base = format!("http://{}:{FAST_PORT}", VethNet::ADDR_B);
            // The fast path checks the server's tokens: its probe and load send the same one.
            if let Some(t) = crate::child::token_for(&serve.base()) {
                crate::child::remember(&fast_base, t);
            }
            fast = Some(crate::afxdp::start_fast_path(
                &host.bin, &host.net, &data, FAST_PORT, &probe,
            )?);
            Some(fast_base)
        } else {
            None
        };
        sampler_thread = Some(sampler(ns, addr, Instant::now(), done.clone()));
        Ok(small)
    });
    done.store(true, Ordering::SeqCst);
    let snaps = match sampler_thread {
        Some(t) => t
            .join()
            .map_err(|_| anyhow::anyhow!("the /metrics sampler panicked"))??,
        None => Vec::new(),
    };
    let (ops, secs, client_secs) = result?;
    drop(fast);
    drop(serve);
    stop.check()?;
    Ok(figures(&snaps, &ops, secs, client_secs))
}

/// Runs the benchmark; needs root. Builds its own host and removes it, also when interrupted.
pub fn run(args: &Args, stop: &Stop) -> anyhow::Result<Vec<BenchRow>> {
    if let Some(reason) = harness::skip_reason() {
        bail!("bench accel {reason}");
    }
    anyhow::ensure!(
        sys::online_cpus()?.contains(&args.client_cpu),
        "CPU {} is not online",
        args.client_cpu
    );
    let configs = parse_modes(&args.accel)?;
    let modes = all_modes(&configs);
    if modes.iter().any(|m| m.via_nginx) {
        crate::sockmap::nginx()?;
    }
    if modes.iter().any(|m| m.afxdp) {
        for tool in ["curl", "ethtool"] {
            anyhow::ensure!(
                harness::which(tool).is_some(),
                "bench accel: afxdp's configuration needs {tool}"
            );
        }
    }
    let host = Host::new(&modes)?;
    eprintln!(
        "bench accel: test host ready (netns {} and {}, cgroup {})",
        host.net.a.name(),
        host.net.b.name(),
        host.cgroup.path().display()
    );
    let repeats = args.repeats.max(1) as usize;
    let bar = indicatif::ProgressBar::new((modes.len() * repeats) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut runs: Vec<(Mode, RunFigures)> = Vec::new();
    for i in 0..modes.len() * repeats {
        // Round r starts r modes later (with two: none, accel, accel, none, ...): each mode
        // goes first as often, against drift.
        let (round, k) = (i / modes.len(), i % modes.len());
        let mode = &modes[(round + k) % modes.len()];
        bar.set_message(mode.name());
        runs.push((mode.clone(), run_once(&host, i, mode, args, stop)?));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows = rows(&runs, &configs, args);
    if let Some(dir) = &args.out {
        write_out(dir, &rows, &runs, &modes)?;
    }
    Ok(rows)
}

fn rows(runs: &[(Mode, RunFigures)], configs: &[Mode], args: &Args) -> Vec<BenchRow> {
    let side = |mode: &Mode, f: &dyn Fn(&RunFigures) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(m, _)| m == mode)
            .map(|(_, r)| f(r))
            .collect()
    };
    let repeats = args.repeats.max(1);
    let mut out = Vec::new();
    for cand in configs {
        let base = cand.baseline();
        let (base_name, cand_name) = (base.name(), cand.name());
        let row = |metric: &str, unit: &str, better: Better, f: &dyn Fn(&RunFigures) -> f64| {
            BenchRow::medians(
                metric,
                unit,
                better,
                (base_name.as_str(), side(&base, f).as_slice()),
                (cand_name.as_str(), side(cand, f).as_slice()),
            )
        };
        let mut note = format!(
            "{} client flows pinned to CPU {} in namespace a, {} s x {} runs each, alternating; \
             CPU and disk are the whole machine's (/proc/stat, /proc/diskstats: neighbours \
             count), network, TCP and sockets the server namespace's",
            args.flows, args.client_cpu, args.duration, repeats
        );
        if cand.via_nginx {
            note.push_str("; through nginx in the server's namespace, in both runs");
        }
        if cand.afxdp {
            note.push_str("; the 4 KiB GETs go to the fast path, the rest to the server");
        }
        out.extend([
            row("peak single-CPU utilisation", "%", Better::Lower, &|r| {
                r.overall.peak_cpu
            })
            .with_note(note),
            row(
                "client CPU (pinned; runs the server's receive path without the balancer)",
                "%",
                Better::Lower,
                &|r| r.client_cpu,
            ),
            row("server process CPU", "% of a CPU", Better::Lower, &|r| {
                r.overall.server_cpu
            }),
            row(
                "network throughput (server veth, rx+tx)",
                "Mbit/s",
                Better::Higher,
                &|r| r.overall.net_mbps,
            ),
            row("disk write rate", "MB/s", Better::Higher, &|r| {
                r.overall.disk_write_mbs
            }),
            row("disk read rate", "MB/s", Better::Higher, &|r| {
                r.overall.disk_read_mbs
            }),
            row(
                "share of time on IO (busiest disk)",
                "%",
                Better::Lower,
                &|r| r.overall.io_share,
            ),
            row("TCP InSegs", "seg/s", Better::Higher, &|r| r.overall.tcp_in),
            row("TCP OutSegs", "seg/s", Better::Higher, &|r| {
                r.overall.tcp_out
            }),
            row("sockets in use (mean)", "sockets", Better::Lower, &|r| {
                r.sockets
            }),
            row("request rate", "req/s", Better::Higher, &|r| r.req_rate),
            row(
                "p99 latency (4 KiB GETs and queries)",
                "ms",
                Better::Lower,
                &|r| r.p99_ms,
            ),
            row(
                "upload throughput (PUT + tus)",
                "MB/s",
                Better::Higher,
                &|r| r.upload_mbs,
            ),
            row("download throughput", "MB/s", Better::Higher, &|r| {
                r.download_mbs
            }),
            row("failed requests", "requests", Better::Lower, &|r| r.failed),
        ]);
        if cand.sockmap {
            out.push(row(
                "bytes through the same-host bypass",
                "MB/s",
                Better::Higher,
                &|r| r.overall.bypassed_mbs,
            ));
        }
        if cand.afxdp {
            out.push(row(
                "requests answered by the AF_XDP fast path",
                "req/s",
                Better::Higher,
                &|r| r.overall.fast_rps,
            ));
        }
    }
    out
}

/// The plotted series: (file stem, title, unit, value).
type Series = (&'static str, &'static str, &'static str, fn(&Rates) -> f64);
const PLOTS: [Series; 4] = [
    ("peak-cpu", "peak single-CPU utilisation", "%", |r| {
        r.peak_cpu
    }),
    (
        "network",
        "network throughput (server veth)",
        "Mbit/s",
        |r| r.net_mbps,
    ),
    ("disk-write", "disk write rate", "MB/s", |r| {
        r.disk_write_mbs
    }),
    ("tcp-in", "TCP InSegs", "seg/s", |r| r.tcp_in),
];

fn write_out(
    dir: &Path,
    rows: &[BenchRow],
    runs: &[(Mode, RunFigures)],
    modes: &[Mode],
) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd: Vec<String> = std::env::args().collect();
    let md = format!(
        "# disgrafs bench accel\n\n`{}`\n\n{}\nPlots: {}.\n",
        cmd.join(" "),
        render_markdown(rows),
        PLOTS
            .iter()
            .map(|(stem, ..)| format!("[{stem}](accel-{stem}.svg)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    fs::write(dir.join("accel.md"), md)?;
    for (stem, title, unit, value) in PLOTS {
        let lines: Vec<(&Mode, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|(m, r)| (m, r.series.iter().map(|(t, x)| (*t, value(x))).collect()))
            .collect();
        plot(
            &dir.join(format!("accel-{stem}.svg")),
            title,
            unit,
            &lines,
            modes,
        )?;
    }
    Ok(())
}

fn plot(
    path: &Path,
    title: &str,
    unit: &str,
    lines: &[(&Mode, Vec<(f64, f64)>)],
    modes: &[Mode],
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let points = || lines.iter().flat_map(|(_, l)| l.iter());
    let xmax = points().map(|p| p.0).fold(1.0, f64::max);
    let ymax = points().map(|p| p.1).fold(1e-3, f64::max) * 1.1;
    let root = SVGBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the load")
        .y_desc(unit)
        .draw()?;
    for (i, mode) in modes.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut labelled = false;
        for (_, l) in lines.iter().filter(|(m, _)| *m == mode) {
            let s = chart.draw_series(LineSeries::new(l.iter().copied(), color.stroke_width(2)))?;
            if !labelled {
                s.label(mode.name()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                labelled = true;
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP x\n\
        disgrafs_system_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 6.0\n\
        disgrafs_system_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 4.0\n\
        disgrafs_system_cpu_seconds_total{cpu=\"1\",mode=\"system\"} 1.0\n\
        disgrafs_system_cpu_seconds_total{cpu=\"1\",mode=\"iowait\"} 9.0\n\
        disgrafs_system_network_bytes_total{iface=\"dgf-b\",dir=\"rx\"} 1000\n\
        disgrafs_system_network_bytes_total{iface=\"dgf-b\",dir=\"tx\"} 500\n\
        disgrafs_system_network_bytes_total{iface=\"lo\",dir=\"rx\"} 99999\n\
        disgrafs_system_disk_written_bytes_total{device=\"vda\"} 2e6\n\
        disgrafs_system_disk_io_seconds_total{device=\"vda\"} 0.5\n\
        disgrafs_system_tcp_in_segments_total 40\n\
        disgrafs_system_sockets_used 12\n\
        disgrafs_process_cpu_seconds_total 3.5\n\
        disgrafs_accel_sockmap_bytes_redirected_total{cgroup=\"/sys/fs/cgroup/x\"} 7e6\n\
        disgrafs_accel_afxdp_fast_path_http_requests_total{iface=\"dgf-b\",netns=\"n\"} 30\n\
        disgrafs_accel_http_trace_requests_total{iface=\"dgf-b\",method=\"GET\",path=\"/a,\\\"b\"} 3\n";

    #[test]
    fn scrapes_become_the_reports_rates() {
        let a = parse_snap(SCRAPE, 0.0);
        assert_eq!(a.cpu, vec![(6.0, 10.0), (1.0, 10.0)]);
        assert_eq!(
            (a.net_bytes, a.disk_written, a.tcp_in, a.sockets),
            (1500.0, 2e6, 40.0, 12.0)
        );
        assert_eq!(a.server_cpu, 3.5);
        assert_eq!((a.bypassed_bytes, a.fast_requests), (7e6, 30.0));
        let mut b = a.clone();
        b.t = 2.0;
        b.cpu = vec![(7.0, 12.0), (3.0, 12.0)];
        b.net_bytes += 2e6;
        b.disk_written += 4e6;
        b.disk_io.insert("vda".into(), 1.5);
        b.tcp_in += 100.0;
        b.server_cpu += 1.0;
        b.bypassed_bytes += 4e6;
        b.fast_requests += 10.0;
        let r = rates(&a, &b);
        assert_eq!((r.bypassed_mbs, r.fast_rps), (2.0, 5.0));
        assert_eq!(r.server_cpu, 50.0);
        assert_eq!(r.peak_cpu, 100.0, "CPU 1: 2 busy of 2 seconds");
        assert_eq!((r.net_mbps, r.disk_write_mbs, r.tcp_in), (8.0, 2.0, 50.0));
        assert_eq!(r.io_share, 50.0);
    }

    #[test]
    fn run_figures_from_ops() {
        let snaps = [parse_snap(SCRAPE, 0.0), parse_snap(SCRAPE, 1.0)];
        let mut ops: Vec<Op> = (1..=100)
            .map(|i| Op {
                kind: Kind::Small,
                secs: i as f64 / 1000.0,
                bytes: 4096,
                ok: true,
            })
            .collect();
        ops.push(Op {
            kind: Kind::Put,
            secs: 9.0,
            bytes: 0,
            ok: false,
        });
        let f = figures(&snaps, &ops, 2.0, 0.5);
        assert_eq!(f.client_cpu, 25.0);
        assert_eq!(f.req_rate, 50.0);
        assert_eq!(f.p99_ms, 99.0);
        assert_eq!(f.failed, 1.0);
        assert_eq!(f.series.len(), 1);
        assert_eq!(f.sockets, 12.0);
    }

    #[test]
    fn accel_lists_become_modes_with_their_baselines() {
        let configs =
            parse_modes("http-trace+cpu-balance, sockmap,afxdp+http-trace,sockmap").unwrap();
        let names: Vec<String> = configs.iter().map(Mode::name).collect();
        assert_eq!(
            names,
            [
                "cpu-balance+http-trace",
                "sockmap via nginx",
                "http-trace+afxdp"
            ]
        );
        let all: Vec<String> = all_modes(&configs).iter().map(Mode::name).collect();
        assert_eq!(
            all,
            [
                "no accel",
                "no accel via nginx",
                "cpu-balance+http-trace",
                "sockmap via nginx",
                "http-trace+afxdp"
            ]
        );
        for (bad, why) in [
            ("warp", "unknown accelerator \"warp\""),
            ("afxdp+cpu-balance", "both need the server veth's XDP hook"),
            (" , ", "names no configuration"),
        ] {
            let e = parse_modes(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn texts_differ_by_seed_and_keep_their_length() {
        assert_eq!(text(1, 4096).len(), 4096);
        assert_ne!(text(1, 4096), text(2, 4096));
        assert_eq!(text(3, 100), text(3, 100));
    }

    #[test]
    fn refuses_to_run_without_the_host_prerequisites() {
        if harness::skip_reason().is_none() {
            return;
        }
        let args = Args {
            repeats: 1,
            duration: 1,
            flows: 1,
            accel: "cpu-balance".into(),
            weights: None,
            client_cpu: 0,
            out: None,
        };
        let err = run(&args, &Stop::default()).unwrap_err().to_string();
        assert!(err.starts_with("bench accel "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
