//! `disgrafs bench sockmap`: plain loopback TCP against the same-host bypass (with the opt-in
//! small-write policy, and without it), side by side in one run, interleaved and repeated.
//!
//! The benchmark moves itself into a cgroup of its own ([`OwnCgroup`]) and attaches or
//! detaches the bypass there between rounds, so both sides run the same code on the same
//! loopback with fresh connections; medians of the repeats are reported. Every transfer is
//! bounded in bytes and round trips, and every socket has a timeout.
//!
//! The service path: nginx as a reverse proxy (upstream keep-alive) in front of `disgrafs serve`
//! (this executable), both started afresh for every round in a test cgroup (the bypass attached
//! there before they start, for the bypass side), and wrk outside the cgroup as the client, so
//! only the proxy → server hop can be bypassed, as in a deployment.
//!
//! The database path: a private PostgreSQL cluster (the tests' own, [`crate::pg`]) started
//! inside the benchmark's cgroup, and `pgbench -S` (select-only) in the same cgroup against it
//! over loopback TCP, the bypass attached for every other run; pgbench opens its connections
//! afresh each run, so each run is all on one side.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use crate::Stop;
use crate::row::{BenchRow, Better, median};
use disgrafs_accel::AccelError;
use disgrafs_accel::harness::{CgroupGuard, ChildGuard as Proc, NetNsGuard};
use disgrafs_accel::sockmap::{self, OwnCgroup, SmallWritePolicy, SockmapConfig};

const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Rounds of every measurement on each side (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Round trips per ping-pong measurement.
    #[arg(long, default_value_t = 20_000)]
    pub round_trips: usize,
    /// Bytes per bulk measurement with 4 KiB and larger writes (64 B writes move 1/8 of it).
    #[arg(long, default_value_t = 256 << 20)]
    pub bulk_bytes: u64,
    /// Seconds of wrk load per service-path measurement (nginx → disgrafs serve); 0 skips them.
    #[arg(long, default_value_t = 5)]
    pub service_seconds: u64,
    /// Seconds per `pgbench -S` run against a local PostgreSQL; 0 skips them (as does a machine
    /// without PostgreSQL, with a note).
    #[arg(long, default_value_t = 5)]
    pub pgbench_seconds: u64,
}

#[derive(Clone, Copy)]
enum Side {
    Plain,
    Bypass(SmallWritePolicy),
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> AccelError + '_ {
    move |e| AccelError::io(format!("bench sockmap: {what}"), e)
}

fn pair() -> Result<(TcpStream, TcpStream), AccelError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("listening"))?;
    let c = TcpStream::connect(l.local_addr().map_err(io_err("listening"))?)
        .map_err(io_err("connecting"))?;
    let (s, _) = l.accept().map_err(io_err("accepting"))?;
    for x in [&c, &s] {
        x.set_nodelay(true).map_err(io_err("nodelay"))?;
        x.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(io_err("timeout"))?;
        x.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(io_err("timeout"))?;
    }
    Ok((c, s))
}

/// Loop steps between two looks at the stop flag.
const STOP_EVERY: usize = 4096;

/// (p50, p99) round-trip time in microseconds for `size`-byte messages echoed back.
fn ping_pong(size: usize, n: usize, stop: &Stop) -> Result<(f64, f64), AccelError> {
    let (mut c, mut s) = pair()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; size];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let msg = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        if i % STOP_EVERY == 0 {
            stop.check_accel()?;
        }
        let t = Instant::now();
        c.write_all(&msg).map_err(io_err("ping"))?;
        c.read_exact(&mut back).map_err(io_err("pong"))?;
        if i >= n / 10 {
            rtts.push(t.elapsed().as_secs_f64() * 1e6); // the first tenth warms up
        }
    }
    c.shutdown(Shutdown::Write).map_err(io_err("shutdown"))?;
    echo.join()
        .map_err(|_| AccelError::Harness("echo thread panicked".into()))?
        .map_err(io_err("echo"))?;
    rtts.sort_by(f64::total_cmp);
    Ok((rtts[rtts.len() / 2], rtts[rtts.len() * 99 / 100]))
}

/// Throughput in MB/s of `total` bytes written `write` bytes at a time, as the reader sees it.
fn bulk(write: usize, total: u64, stop: &Stop) -> Result<f64, AccelError> {
    let (mut c, mut s) = pair()?;
    let reader = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0u64;
        let t = Instant::now();
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok((got, t.elapsed()));
            }
            got += n as u64;
        }
    });
    let chunk = vec![0xa5u8; write];
    let mut sent = 0u64;
    for i in 0.. {
        if sent >= total {
            break;
        }
        if i % STOP_EVERY == 0 {
            stop.check_accel()?;
        }
        c.write_all(&chunk).map_err(io_err("writing"))?;
        sent += write as u64;
    }
    c.shutdown(Shutdown::Write).map_err(io_err("shutdown"))?;
    let (got, took) = reader
        .join()
        .map_err(|_| AccelError::Harness("reader thread panicked".into()))?
        .map_err(io_err("reading"))?;
    if got != sent {
        return Err(AccelError::Harness(format!(
            "bulk: read {got} of {sent} bytes"
        )));
    }
    Ok(got as f64 / took.as_secs_f64() / 1e6)
}

/// One measurement: a name, unit, direction and how to take it.
struct Probe {
    metric: String,
    unit: &'static str,
    better: Better,
    run: Box<dyn Fn() -> Result<f64, AccelError>>,
}

/// The measurements; each stops early (an error) once `stop` is set.
fn probes(o: &Args, stop: &Stop) -> Vec<Probe> {
    let mut v = Vec::new();
    for size in [64usize, 1024, 16384] {
        let n = o.round_trips;
        for (q, idx) in [("p50", 0), ("p99", 1)] {
            let stop = stop.clone();
            v.push(Probe {
                metric: format!("ping-pong {} round trip {q}", human(size)),
                unit: "us",
                better: Better::Lower,
                run: Box::new(move || {
                    ping_pong(size, n, &stop).map(|r| if idx == 0 { r.0 } else { r.1 })
                }),
            });
        }
    }
    for write in [64usize, 4096, 128 << 10] {
        let total = if write < 4096 {
            o.bulk_bytes / 8
        } else {
            o.bulk_bytes
        };
        let stop = stop.clone();
        v.push(Probe {
            metric: format!("bulk throughput, {} writes", human(write)),
            unit: "MB/s",
            better: Better::Higher,
            run: Box::new(move || bulk(write, total, &stop)),
        });
    }
    v
}

fn human(n: usize) -> String {
    if n >= 1024 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

fn harness_err(what: impl Into<String>) -> AccelError {
    AccelError::Harness(format!("bench sockmap: {}", what.into()))
}

/// `disgrafs serve` (this executable) in `cg`, on an ephemeral port, with a token provisioned;
/// returns it, its address and the token.
fn start_serve(cg: &CgroupGuard, data: &Path) -> Result<(Proc, String, String), AccelError> {
    let exe = std::env::current_exe().map_err(io_err("finding this executable"))?;
    let token = crate::child::provision(&std::process::Command::new(&exe), data)
        .map_err(|e| harness_err(format!("{e:#}")))?;
    let mut child = cg
        .command(None, &exe.to_string_lossy())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "0",
            "--data-dir",
        ])
        .arg(data)
        .env("DISGRAFS_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(io_err("starting disgrafs serve"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(io_err("reading the address of disgrafs serve"))?;
    let proc = Proc(child);
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .ok_or_else(|| {
            harness_err(format!(
                "no address in {line:?} (is this the disgrafs binary?)"
            ))
        })?
        .to_owned();
    Ok((proc, addr, token))
}

/// nginx in `cg` as a reverse proxy to `upstream` with kept-alive upstream connections, its
/// files under `dir/nginx`; `extra` goes into its `http` block. Returns it and its port (also
/// used by `crates/cli/tests/sockmap_proxy.rs`, the correctness test of the same path).
pub fn start_proxy(
    cg: &CgroupGuard,
    dir: &Path,
    upstream: &str,
    extra: &str,
) -> Result<(Proc, u16), AccelError> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io_err("finding a free port"))?
        .port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    Ok((
        start_proxy_at(cg, None, listen, dir, upstream, extra)?,
        port,
    ))
}

/// Debian's nginx, or why there is none.
pub(crate) fn nginx() -> Result<&'static str, AccelError> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| harness_err("nginx is not installed (apt-get install nginx-light)"))
}

/// [`start_proxy`] listening on `listen`, in network namespace `netns` when given (the test
/// host of `bench accel`); returns once it accepts connections there.
pub(crate) fn start_proxy_at(
    cg: &CgroupGuard,
    netns: Option<&NetNsGuard>,
    listen: SocketAddr,
    dir: &Path,
    upstream: &str,
    extra: &str,
) -> Result<Proc, AccelError> {
    let nginx = nginx()?;
    let root = dir.join("nginx");
    for d in ["tmp", "logs"] {
        std::fs::create_dir_all(root.join(d)).map_err(io_err("creating nginx's directories"))?;
    }
    let conf = format!(
        "user root root; daemon off; master_process on; worker_processes 2; pid {r}/nginx.pid;
error_log {r}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp; {extra}
  upstream disgrafs {{ server {upstream}; keepalive 32; }}
  server {{
    listen {listen};
    location / {{
      proxy_pass http://disgrafs; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_set_header Host {upstream};
    }}
  }}
}}
",
        r = root.display()
    );
    std::fs::write(root.join("nginx.conf"), conf).map_err(io_err("writing nginx.conf"))?;
    let child = cg
        .command(netns, nginx)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .arg("-p")
        .arg(&root)
        .stdout(Stdio::null())
        .spawn()
        .map_err(io_err("starting nginx"))?;
    let proc = Proc(child);
    let listening = || {
        let until = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(listen).is_err() {
            if Instant::now() > until {
                return Err(harness_err(format!("nginx does not listen on {listen}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    match netns {
        Some(ns) => ns.run(listening)?,
        None => listening()?,
    }
    Ok(proc)
}

/// One HTTP/1.1 request on a fresh connection; returns the response body.
fn http(port: u16, token: &str, head: &str, body: &[u8]) -> Result<Vec<u8>, AccelError> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).map_err(io_err("connecting to nginx"))?;
    c.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(io_err("timeout"))?;
    write!(
        c,
        "{head}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|()| c.write_all(body))
    .map_err(io_err("sending a request"))?;
    let mut resp = Vec::new();
    c.take(1 << 20)
        .read_to_end(&mut resp)
        .map_err(io_err("reading a response"))?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| harness_err("a response without a head"))?;
    if !resp.starts_with(b"HTTP/1.1 2") {
        let status = String::from_utf8_lossy(&resp[..split.min(80)]).into_owned();
        return Err(harness_err(format!("{head}: {status}")));
    }
    Ok(resp[split + 4..].to_vec())
}

/// Requests per second and p99 latency (us) of `wrk -t2 -c32`; any error fails.
fn wrk(url: &str, seconds: u64) -> Result<(f64, f64), AccelError> {
    let load = crate::wrk::Load {
        threads: 2,
        connections: 32,
        seconds,
    };
    let r = load.run(url).map_err(|e| harness_err(format!("{e:#}")))?;
    Ok((r.requests_per_sec, r.p99_ms * 1000.0))
}

/// The service-path metrics, in the order [`service_round`] returns their values.
const SERVICE: [(&str, &str, Better); 4] = [
    (
        "4 KiB GET via nginx → serve, wrk -t2 -c32",
        "req/s",
        Better::Higher,
    ),
    ("4 KiB GET via nginx → serve, p99", "us", Better::Lower),
    (
        "small API call (GET /api/files/ID) via nginx → serve",
        "req/s",
        Better::Higher,
    ),
    ("small API call via nginx → serve, p99", "us", Better::Lower),
];

/// One round of the service path on one side: fresh server and proxy in `cg`.
fn service_round(cg: &CgroupGuard, dir: &Path, seconds: u64) -> Result<Vec<f64>, AccelError> {
    let (_serve, addr, token) = start_serve(cg, &dir.join("data"))?;
    let (_nginx, port) = start_proxy(cg, dir, &addr, "")?;
    // wrk through the proxy sends the server's token.
    crate::child::remember(&format!("http://127.0.0.1:{port}"), token.clone());
    let body: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let http = |head: &str, body: &[u8]| http(port, &token, head, body);
    let rec = http("PUT /api/files?name=small.bin HTTP/1.1", &body)?;
    let id = serde_json::from_slice::<serde_json::Value>(&rec)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .ok_or_else(|| harness_err("the upload answered no id"))?;
    if http(&format!("GET /api/files/{id}/content HTTP/1.1"), &[])? != body {
        return Err(harness_err(
            "the 4 KiB file came back different through the proxy",
        ));
    }
    let base = format!("http://127.0.0.1:{port}/api/files/{id}");
    let (get_rps, get_p99) = wrk(&format!("{base}/content"), seconds)?;
    let (api_rps, api_p99) = wrk(&base, seconds)?;
    Ok(vec![get_rps, get_p99, api_rps, api_p99])
}

/// Rows of `metrics` from `round` (one value per metric), run `repeats` times on each side,
/// interleaved: plain loopback, then with the bypass (default policy) attached to `cgroup`.
fn interleaved(
    repeats: usize,
    cgroup: &Path,
    stop: &Stop,
    metrics: &[(&str, &str, Better)],
    mut round: impl FnMut() -> Result<Vec<f64>, AccelError>,
) -> Result<Vec<BenchRow>, AccelError> {
    // results[side][metric] = one value per repeat
    let mut results = vec![vec![Vec::new(); metrics.len()]; 2];
    for _ in 0..repeats {
        for (side, bypass) in [(0, false), (1, true)] {
            stop.check_accel()?;
            if bypass {
                sockmap::attach(&SockmapConfig {
                    cgroup: cgroup.to_path_buf(),
                    policy: SmallWritePolicy::DEFAULT,
                })?;
            }
            let r = round();
            if bypass {
                sockmap::detach_cgroup(cgroup)?;
            }
            for (m, v) in r?.into_iter().enumerate() {
                results[side][m].push(v);
            }
        }
    }
    Ok(metrics
        .iter()
        .enumerate()
        .map(|(m, (metric, unit, better))| {
            BenchRow::new(
                *metric,
                *unit,
                *better,
                ("loopback TCP", Some(median(&results[0][m]))),
                ("sockmap", median(&results[1][m])),
            )
        })
        .collect())
}

/// The service-path rows: plain loopback against the bypass (default policy), interleaved.
fn service_rows(o: &Args, stop: &Stop) -> Result<Vec<BenchRow>, AccelError> {
    let dir = tempfile::tempdir().map_err(io_err("creating a temporary directory"))?;
    let cg = CgroupGuard::new("disgrafs-bench-svc")?;
    interleaved(o.repeats, cg.path(), stop, &SERVICE, || {
        service_round(&cg, dir.path(), o.service_seconds)
    })
}

/// pgbench clients (and its worker threads): a small connection pool's worth.
const PGBENCH_CLIENTS: u32 = 8;
const PGBENCH_THREADS: u32 = 2;

/// The database-path metrics, in the order [`pgbench`] returns their values.
const PGBENCH: [(&str, &str, Better); 2] = [
    (
        "pgbench -S (select-only) -c8 -j2, local PostgreSQL",
        "tx/s",
        Better::Higher,
    ),
    ("pgbench -S latency average", "ms", Better::Lower),
];

/// One bounded `pgbench -S` run: transactions per second and mean latency (ms); any failed
/// transaction fails it.
fn pgbench(pg: &crate::pg::Cluster, db: &str, seconds: u64) -> Result<Vec<f64>, AccelError> {
    let s = seconds.to_string();
    let (c, j) = (PGBENCH_CLIENTS.to_string(), PGBENCH_THREADS.to_string());
    let text = run_pgbench(pg, db, &["-n", "-S", "-T", &s, "-c", &c, "-j", &j])?;
    parse_pgbench(&text)
}

/// Runs pgbench with `args` against `db` over loopback TCP; its report (stdout).
fn run_pgbench(pg: &crate::pg::Cluster, db: &str, args: &[&str]) -> Result<String, AccelError> {
    let out = std::process::Command::new(pg.tool("pgbench"))
        .args(args)
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", crate::pg::USER, db])
        .env("PGPASSWORD", crate::pg::PASSWORD)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("running pgbench"))?;
    if !out.status.success() {
        return Err(harness_err(format!(
            "pgbench {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// tps and latency average of pgbench's report.
fn parse_pgbench(text: &str) -> Result<Vec<f64>, AccelError> {
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
    };
    if let Some(failed) = value("number of failed transactions:")
        && failed > 0.0
    {
        return Err(harness_err(format!(
            "pgbench: {failed} failed transactions"
        )));
    }
    match (value("tps ="), value("latency average =")) {
        (Some(tps), Some(lat)) if tps > 0.0 => Ok(vec![tps, lat]),
        _ => Err(harness_err(format!(
            "no tps or latency in pgbench's report:\n{text}"
        ))),
    }
}

/// The database-path rows: plain loopback against the bypass (default policy), interleaved. Runs
/// in `cg` (this process's own cgroup), so the cluster it starts and pgbench are both in it.
fn pgbench_rows(o: &Args, cg: &OwnCgroup, stop: &Stop) -> Result<Vec<BenchRow>, AccelError> {
    let Some(pg) = crate::pg::cluster() else {
        eprintln!("bench sockmap: no PostgreSQL here, so no pgbench rows");
        return Ok(Vec::new());
    };
    let url = pg.create_db("bench_sockmap");
    let db = url.rsplit('/').next().unwrap_or_default().to_string();
    run_pgbench(pg, &db, &["-i", "-q", "-s", "1"])?;
    interleaved(o.repeats, cg.path(), stop, &PGBENCH, || {
        pgbench(pg, &db, o.pgbench_seconds)
    })
}

/// Runs the suite; rows compare plain loopback with the bypass with the opt-in small-write
/// policy (`SmallWritePolicy::STREAMS`) and with the default (no policy).
/// Ctrl-C (`stop`) ends it between measurements, and its guards remove its cgroups.
pub fn run(o: &Args, stop: &Stop) -> Result<Vec<BenchRow>, AccelError> {
    if o.repeats == 0 || o.round_trips < 10 || o.bulk_bytes < 1 << 20 {
        return Err(AccelError::InvalidArgument(
            "bench sockmap needs --repeats >= 1, --round-trips >= 10, --bulk-bytes >= 1MiB".into(),
        ));
    }
    let cg = OwnCgroup::create("bench")?;
    let sides = [
        Side::Plain,
        Side::Bypass(SmallWritePolicy::STREAMS),
        Side::Bypass(SmallWritePolicy::OFF),
    ];
    let probes = probes(o, stop);
    // results[probe][side] = one value per repeat
    let mut results = vec![vec![Vec::new(); sides.len()]; probes.len()];
    for _ in 0..o.repeats {
        for (si, side) in sides.iter().enumerate() {
            if let Side::Bypass(policy) = side {
                sockmap::attach(&SockmapConfig {
                    cgroup: cg.path().to_path_buf(),
                    policy: *policy,
                })?;
            }
            let measured =
                probes
                    .iter()
                    .enumerate()
                    .try_for_each(|(pi, p)| -> Result<(), AccelError> {
                        stop.check_accel()?;
                        results[pi][si].push((p.run)()?);
                        Ok(())
                    });
            if matches!(side, Side::Bypass(_)) {
                sockmap::detach_cgroup(cg.path())?;
            }
            measured?;
        }
    }
    let mut rows = Vec::new();
    for (pi, p) in probes.iter().enumerate() {
        let plain = median(&results[pi][0]);
        for (si, name) in [(1, "sockmap"), (2, "sockmap, policy off")] {
            rows.push(BenchRow::new(
                p.metric.clone(),
                p.unit,
                p.better,
                ("loopback TCP", Some(plain)),
                (name, median(&results[pi][si])),
            ));
        }
    }
    if o.pgbench_seconds > 0 {
        rows.extend(pgbench_rows(o, &cg, stop)?);
    }
    // The service path runs outside the benchmark's own cgroup (wrk is the outside client).
    drop(cg);
    if o.service_seconds > 0 {
        rows.extend(service_rows(o, stop)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "pgbench (15.14 (Debian 15.14-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 124456
number of failed transactions: 0 (0.000%)
latency average = 0.321 ms
initial connection time = 12.345 ms
tps = 24890.123456 (without initial connection time)
";

    #[test]
    fn reads_tps_and_latency_and_refuses_failures() {
        assert_eq!(parse_pgbench(REPORT).unwrap(), vec![24890.123456, 0.321]);
        let failed = REPORT.replace("failed transactions: 0 ", "failed transactions: 3 ");
        assert!(parse_pgbench(&failed).is_err());
        assert!(parse_pgbench("pgbench: error: connection refused").is_err());
    }
}
