//! `disgrafs bench afxdp`: the AF_XDP fast path against the kernel path, side by side in one run
//! on one veth pair.
//!
//! The host: namespaces a (clients) and b (servers) joined by a single-queue veth pair (AF_XDP
//! binds one socket per queue; veth makes one per CPU by default). In b, `disgrafs serve` holds
//! the objects and answers on the kernel's TCP; `disgrafs accel afxdp` serves the same data
//! directory on another port through XDP steering, an AF_XDP socket and smoltcp. Two workloads,
//! each repeated and interleaved (kernel, fast path, kernel, ...), medians with their spread:
//!
//! * small GETs: wrk in a against `GET /api/files/{id}/content` of a small file and against the
//!   file's record (`GET /api/files/{id}`), on each path. The fast path runs only during its own
//!   phases, so the kernel path never pays for the XDP program;
//! * raw receive: a sender pinned to one CPU in a writes small UDP frames through an AF_PACKET
//!   socket for a fixed time; a receiver pinned to the other CPU in b counts what arrives on an
//!   AF_XDP socket (the steering program's UDP sink port), on a kernel UDP socket with `recv`,
//!   and on one with `recvmmsg` in batches.
//!
//! What limits the figures on veth: copy mode (veth has no zero-copy AF_XDP), one queue, and the
//! sender's CPU, which on veth also runs the receive side's softirq for the kernel paths.

use std::{
    os::fd::AsRawFd,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use disgrafs_accel::{
    AccelError,
    afxdp::{SteerConfig, Steering, XskOptions, XskQueue},
    cpu_balance::AttachMode,
    harness::{AttachmentGuard, VethNet, VethOptions, packet::RawSender, which},
    pin::Accelerator,
    sys,
};

use crate::{
    Stop,
    child::{self, Proc},
    cpu_balance::{
        AutogroupBoost, gettid, pin_current_thread, raise_priority, sink_socket, udp_flows,
        udp_payload_len,
    },
    row::{BenchRow, Better},
    wrk,
};

/// Options of the benchmark (the flags of `disgrafs bench afxdp`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Repetitions of each phase (medians are reported, with min and max).
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Bytes of the file fetched by the small GETs.
    #[arg(long, default_value_t = 4096)]
    pub size: u64,
    /// UDP payload bytes of the raw-receive phase.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// CPU the raw sender is pinned to.
    #[arg(long, default_value_t = 0)]
    pub sender_cpu: u32,
    /// CPU the raw receiver is pinned to.
    #[arg(long, default_value_t = 1)]
    pub receiver_cpu: u32,
}

const KERNEL_PORT: u16 = 7878;
const FAST_PORT: u16 = 8080;
const SINK_PORT: u16 = 5002;
/// Frames one raw phase may send at most, whatever its length (a bound, not a target).
const MAX_FRAMES: u64 = 100_000_000;

fn url(port: u16, path: &str) -> String {
    format!("http://{}:{port}{path}", VethNet::ADDR_B)
}

/// The test host with the kernel server running and one file uploaded.
struct Host {
    // Drop order: the server, then the namespaces and pins.
    serve: Proc,
    net: VethNet,
    data: std::path::PathBuf,
    id: String,
    _pins: AttachmentGuard,
    _dir: tempfile::TempDir,
}

impl Host {
    fn new(size: u64) -> anyhow::Result<Host> {
        let net = VethNet::new(VethOptions { single_queue: true })?;
        let pins = AttachmentGuard::new(Accelerator::Afxdp, Some(net.b.name()), VethNet::IF_B)?;
        // Both paths run with it, so neither is favoured.
        client_checksums_in_software(&net)?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let exe = std::env::current_exe()?;
        let (serve, _) = child::serve(
            net.b.command(&exe.to_string_lossy()),
            &data,
            &format!("{}:{KERNEL_PORT}", VethNet::ADDR_B),
            "0",
        )?;
        // The fast path checks the same tokens: wrk and curl send the server's to both ports.
        let token = child::token_for(&url(KERNEL_PORT, "")).unwrap_or_default();
        child::remember(&url(FAST_PORT, ""), token.clone());
        let auth = format!("Authorization: Bearer {token}");
        let file = dir.path().join("small.bin");
        std::fs::write(
            &file,
            (0..size).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>(),
        )?;
        let out = net
            .a
            .command("curl")
            .args(["-H", &auth])
            .args(["-sf", "--max-time", "30", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(url(KERNEL_PORT, "/api/files?name=small.bin"))
            .output()?;
        anyhow::ensure!(out.status.success(), "uploading the small file failed");
        let rec: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let id = rec["id"]
            .as_str()
            .context("the upload returned no id")?
            .to_owned();
        Ok(Host {
            serve,
            net,
            data,
            id,
            _pins: pins,
            _dir: dir,
        })
    }

    /// Starts the fast path on the same data directory; stopped when the result is dropped.
    fn fast_path(&self) -> anyhow::Result<Proc> {
        let exe = std::env::current_exe()?;
        start_fast_path(
            &exe.to_string_lossy(),
            &self.net,
            &self.data,
            FAST_PORT,
            &format!("/api/files/{}", self.id),
        )
    }

    fn wrk(&self, load: &wrk::Load, port: u16, path: &str) -> anyhow::Result<wrk::Report> {
        load.run_with(self.net.a.command("wrk"), &url(port, path))
    }

    /// [`Host::wrk`] against the fast path `fast`: when it fails, says first whether the fast
    /// path died under it (its own one-line error is on stderr above).
    fn wrk_fast(
        &self,
        fast: &mut Proc,
        load: &wrk::Load,
        path: &str,
    ) -> anyhow::Result<wrk::Report> {
        let r = self.wrk(load, FAST_PORT, path);
        if let Ok(Some(status)) = fast.0.try_wait() {
            bail!("the fast path exited ({status}) during the run");
        }
        r
    }
}

/// Starts `disgrafs accel afxdp` (the executable `disgrafs`) on `net`'s server side, serving
/// `data` on `port`, and returns once `probe` answers 200 through it from namespace a (ready
/// means it answers, not only that it printed its line). Stopped when the result is dropped.
pub(crate) fn start_fast_path(
    disgrafs: &str,
    net: &VethNet,
    data: &std::path::Path,
    port: u16,
    probe: &str,
) -> anyhow::Result<Proc> {
    let mut c = Command::new(disgrafs);
    c.args(["accel", "afxdp", "--iface", VethNet::IF_B, "--netns"])
        .arg(net.b.name())
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(data);
    let (proc, _) = child::spawn_until_line(c, "disgrafs accel afxdp")?;
    let until = Instant::now() + Duration::from_secs(20);
    let probe = url(port, probe);
    let auth = format!(
        "Authorization: Bearer {}",
        child::token_for(&probe).unwrap_or_default()
    );
    while Instant::now() < until {
        let out = net
            .a
            .command("curl")
            .args(["-H", &auth])
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "2",
            ])
            .arg(&probe)
            .output()?;
        if out.stdout == b"200" {
            return Ok(proc);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the fast path did not answer within 20 s")
}

/// veth leaves TCP checksums to "hardware" that never computes them; AF_XDP sees frames as
/// sent, so the client side checksums in software (a real NIC's frames are complete).
pub(crate) fn client_checksums_in_software(net: &VethNet) -> anyhow::Result<()> {
    let ok = net
        .a
        .command("ethtool")
        .args(["-K", VethNet::IF_A, "tx", "off"])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(ok.success(), "ethtool -K {} tx off failed", VethNet::IF_A);
    Ok(())
}

/// How the raw-receive phase reads.
#[derive(Debug, Clone, Copy)]
enum Receiver {
    Xsk,
    Recv,
    Recvmmsg,
}

/// Counts datagrams until `stop`, in the calling thread (inside namespace b).
fn receive(how: Receiver, ns: &str, stop: &AtomicBool, got: &AtomicU64) -> Result<(), AccelError> {
    match how {
        Receiver::Recv => {
            let s = sink_socket(SINK_PORT)?;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if s.recv(&mut buf).is_ok() {
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Receiver::Recvmmsg => {
            const BATCH: usize = 64;
            let s = sink_socket(SINK_PORT)?;
            let mut bufs = vec![[0u8; 2048]; BATCH];
            let mut iov: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: mmsghdr is plain data; each msg_hdr points at one live iovec below.
            let mut msgs: Vec<libc::mmsghdr> = iov
                .iter_mut()
                .map(|v| {
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_iov = v;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: msgs and the buffers they point to live across the call.
                let n = unsafe {
                    libc::recvmmsg(
                        s.as_raw_fd(),
                        msgs.as_mut_ptr(),
                        BATCH as u32,
                        libc::MSG_WAITFORONE,
                        std::ptr::null_mut(),
                    )
                };
                if n > 0 {
                    got.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        Receiver::Xsk => {
            let mut steering = Steering::attach(&SteerConfig {
                iface: VethNet::IF_B.into(),
                netns: Some(ns.into()),
                tcp_port: 0,
                udp_port: SINK_PORT,
                ipv6: false,
                mode: AttachMode::Auto,
            })?;
            let mut xsk = XskQueue::open(VethNet::IF_B, 0, XskOptions::default())?;
            steering.register(0, &xsk)?;
            while !stop.load(Ordering::Relaxed) {
                let n = xsk.drain(256, |_| {});
                if n == 0 {
                    let mut p = libc::pollfd {
                        fd: xsk.raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the call.
                    unsafe { libc::poll(&mut p, 1, 100) };
                } else {
                    got.fetch_add(u64::from(n), Ordering::Relaxed);
                }
            }
            // The socket goes before the program that steers to it.
            drop(xsk);
            drop(steering);
        }
    }
    Ok(())
}

/// One raw-receive phase: received and sent datagrams per second.
fn raw_phase(
    host: &Host,
    args: &Args,
    how: Receiver,
    frames: &[Vec<u8>],
) -> anyhow::Result<(f64, f64)> {
    let tx = host.net.a.run(|| RawSender::new(VethNet::IF_A))?;
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicU64::new(0));
    let ns = host.net.b.name().to_string();
    let receiver = {
        let (stop, got) = (stop.clone(), got.clone());
        let cpu = args.receiver_cpu;
        let ns2 = ns.clone();
        std::thread::spawn(move || {
            sys::in_netns(Some(&ns), || {
                pin_current_thread(cpu)?;
                raise_priority(gettid());
                receive(how, &ns2, &stop, &got)
            })
        })
    };
    // The receiver is bound once a probe datagram gets through: only then does the clock start.
    let probe = &frames[0];
    let until = Instant::now() + Duration::from_secs(10);
    while got.load(Ordering::Relaxed) == 0 {
        if Instant::now() > until || receiver.is_finished() {
            stop.store(true, Ordering::Relaxed);
            receiver.join().ok();
            bail!("the {how:?} receiver saw nothing within 10 s");
        }
        tx.send(probe)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let sender = {
        let (stop, counting) = (stop.clone(), counting.clone());
        let frames = frames.to_vec();
        let cpu = args.sender_cpu;
        std::thread::spawn(move || -> Result<u64, AccelError> {
            pin_current_thread(cpu)?;
            raise_priority(gettid());
            counting.store(true, Ordering::Relaxed);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < MAX_FRAMES {
                tx.send(&frames[n as usize % frames.len()])?;
                n += 1;
            }
            Ok(n)
        })
    };
    while !counting.load(Ordering::Relaxed) && !sender.is_finished() {
        std::thread::yield_now();
    }
    let start = Instant::now();
    let before = got.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(args.seconds.max(1)));
    stop.store(true, Ordering::Relaxed);
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender panicked"))??;
    let secs = start.elapsed().as_secs_f64();
    // What was in flight when the sender stopped still counts: it was sent in the window.
    std::thread::sleep(Duration::from_millis(200));
    let received = got.load(Ordering::Relaxed) - before;
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    Ok((received as f64 / secs, sent as f64 / secs))
}

/// Runs the benchmark; needs root, wrk, curl and ethtool. Builds its own namespaces and removes
/// them, whatever way it ends.
pub fn run(args: &Args, stop: &Stop) -> anyhow::Result<Vec<BenchRow>> {
    sys::require_privileged("the afxdp benchmark")?;
    for tool in ["wrk", "curl", "ethtool"] {
        if which(tool).is_none() {
            bail!(
                "the afxdp benchmark needs {tool} (apt-get install {tool}; scripts/test installs it)"
            );
        }
    }
    let online = sys::online_cpus()?;
    for cpu in [args.sender_cpu, args.receiver_cpu] {
        if !online.contains(&cpu) {
            bail!("CPU {cpu} is not online");
        }
    }
    let host = Host::new(args.size)?;
    let _boost = AutogroupBoost::new();
    let load = wrk::Load {
        threads: args.threads,
        connections: args.connections,
        seconds: args.seconds,
    };
    let content = format!("/api/files/{}/content", host.id);
    let record = format!("/api/files/{}", host.id);

    // [kernel, fast] x [content, record]: rate, p50, p99.
    let mut rate = [[vec![], vec![]], [vec![], vec![]]];
    let mut p50 = rate.clone();
    let mut p99 = rate.clone();
    let mut take = |side: usize, which: usize, r: wrk::Report| {
        rate[side][which].push(r.requests_per_sec);
        p50[side][which].push(r.p50_ms);
        p99[side][which].push(r.p99_ms);
    };
    for i in 0..args.repeats.max(1) {
        eprintln!(
            "afxdp bench: small GETs, round {} of {}",
            i + 1,
            args.repeats.max(1)
        );
        for (which, path) in [&content, &record].into_iter().enumerate() {
            take(0, which, host.wrk(&load, KERNEL_PORT, path)?);
        }
        stop.check()?;
        let mut fast = host.fast_path()?;
        for (which, path) in [&content, &record].into_iter().enumerate() {
            take(1, which, host.wrk_fast(&mut fast, &load, path)?);
        }
        drop(fast);
    }

    let frames = udp_flows(&host.net, 64, 30_000, SINK_PORT, args.payload)?;
    // [recv, recvmmsg, xsk]: received and sent per second.
    let mut raw: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    for i in 0..args.repeats.max(1) {
        eprintln!(
            "afxdp bench: raw receive, round {} of {}",
            i + 1,
            args.repeats.max(1)
        );
        for (k, how) in [Receiver::Recv, Receiver::Recvmmsg, Receiver::Xsk]
            .into_iter()
            .enumerate()
        {
            stop.check()?;
            let (rx, tx) = raw_phase(&host, args, how, &frames)?;
            raw[k].0.push(rx);
            raw[k].1.push(tx);
        }
    }
    drop(host.serve);

    let (kernel, fast) = ("kernel TCP (disgrafs serve)", "AF_XDP fast path");
    let how = format!(
        "{}, {} B file, {} s x {}",
        load.describe(),
        args.size,
        args.seconds,
        args.repeats.max(1)
    );
    let mut rows = Vec::new();
    for (which, what) in [
        (0, format!("{} B content GET", args.size)),
        (1, "record GET (JSON)".to_string()),
    ] {
        rows.push(BenchRow::medians(
            format!("{what} rate, {how}"),
            "req/s",
            Better::Higher,
            (kernel, &rate[0][which]),
            (fast, &rate[1][which]),
        ));
        rows.push(BenchRow::medians(
            format!("{what} p50 latency"),
            "ms",
            Better::Lower,
            (kernel, &p50[0][which]),
            (fast, &p50[1][which]),
        ));
        rows.push(BenchRow::medians(
            format!("{what} p99 latency"),
            "ms",
            Better::Lower,
            (kernel, &p99[0][which]),
            (fast, &p99[1][which]),
        ));
    }
    let raw_how = format!(
        "{} B UDP payload, sender on CPU {}, receiver on CPU {}",
        udp_payload_len(args.payload),
        args.sender_cpu,
        args.receiver_cpu
    );
    let [recv, mmsg, xsk] = raw;
    rows.push(BenchRow::medians(
        format!("raw receive rate, {raw_how}"),
        "pkt/s",
        Better::Higher,
        ("kernel UDP socket, recv", &recv.0),
        ("AF_XDP socket (copy mode)", &xsk.0),
    ));
    rows.push(BenchRow::medians(
        "raw receive rate",
        "pkt/s",
        Better::Higher,
        ("kernel UDP socket, recvmmsg x64", &mmsg.0),
        ("AF_XDP socket (copy mode)", &xsk.0),
    ));
    rows.push(BenchRow::medians(
        "raw sender rate (the offered load)",
        "pkt/s",
        Better::Higher,
        ("while recv read", &recv.1),
        ("while AF_XDP read", &xsk.1),
    ));
    Ok(rows)
}
