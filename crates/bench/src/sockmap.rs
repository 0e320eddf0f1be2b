//! `disgrafs bench sockmap`: plain loopback TCP against the same-host bypass (with the
//! small-write policy, and without it), side by side in one run, interleaved and repeated.
//!
//! The benchmark moves itself into a cgroup of its own ([`OwnCgroup`]) and attaches or
//! detaches the bypass there between rounds, so both sides run the same code on the same
//! loopback with fresh connections; medians of the repeats are reported. Every transfer is
//! bounded in bytes and round trips, and every socket has a timeout.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use crate::row::{BenchRow, Better};
use disgrafs_accel::AccelError;
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

/// (p50, p99) round-trip time in microseconds for `size`-byte messages echoed back.
fn ping_pong(size: usize, n: usize) -> Result<(f64, f64), AccelError> {
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
fn bulk(write: usize, total: u64) -> Result<f64, AccelError> {
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
    while sent < total {
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One measurement: a name, unit, direction and how to take it.
struct Probe {
    metric: String,
    unit: &'static str,
    better: Better,
    run: Box<dyn Fn() -> Result<f64, AccelError>>,
}

fn probes(o: &Args) -> Vec<Probe> {
    let mut v = Vec::new();
    for size in [64usize, 1024, 16384] {
        let n = o.round_trips;
        for (q, idx) in [("p50", 0), ("p99", 1)] {
            v.push(Probe {
                metric: format!("ping-pong {} round trip {q}", human(size)),
                unit: "us",
                better: Better::Lower,
                run: Box::new(move || ping_pong(size, n).map(|r| if idx == 0 { r.0 } else { r.1 })),
            });
        }
    }
    for write in [64usize, 4096, 128 << 10] {
        let total = if write < 4096 {
            o.bulk_bytes / 8
        } else {
            o.bulk_bytes
        };
        v.push(Probe {
            metric: format!("bulk throughput, {} writes", human(write)),
            unit: "MB/s",
            better: Better::Higher,
            run: Box::new(move || bulk(write, total)),
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

/// Runs the suite; rows compare plain loopback with the bypass with the opt-in small-write
/// policy (`SmallWritePolicy::STREAMS`) and with the default (no policy).
pub fn run(o: &Args) -> Result<Vec<BenchRow>, AccelError> {
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
    let probes = probes(o);
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
        let plain = median(results[pi][0].clone());
        for (si, name) in [(1, "sockmap"), (2, "sockmap, policy off")] {
            rows.push(BenchRow::new(
                p.metric.clone(),
                p.unit,
                p.better,
                ("loopback TCP", Some(plain)),
                (name, median(results[pi][si].clone())),
            ));
        }
    }
    drop(cg);
    Ok(rows)
}
