//! `disgrafs bench cpu-balance`: the XDP CPU balancer against no balancer, side by side in one
//! run, on a real veth pair.
//!
//! The load: a sender thread pinned to one CPU in namespace a writes UDP datagrams on many flows
//! (distinct source ports) to a sink socket in namespace b, read by a thread pinned to another
//! CPU. Without the balancer, veth delivers every frame on the sending CPU, so that CPU does the
//! sending and the whole receive path (the report's "one CPU does all the receive work"). With
//! it, XDP redirects each flow through the CPUMAP to a CPU chosen by weight, where the skb is
//! built and the stack runs.
//!
//! Two phases per mode, repeated and interleaved (baseline, balancer, baseline, ...), medians
//! reported:
//! * max rate: the sender writes as fast as it can: received packet rate and throughput;
//! * fixed rate: a paced load (by default 60 % of the baseline's max rate), so the sender alone
//!   does not fill its CPU: peak single-CPU utilisation, the report's figure.
//!
//! CPU utilisation is attributed, not read from the whole machine's /proc/stat: this machine is
//! shared, and a compiler running beside the benchmark would swamp it. Per CPU it is the CPU time
//! of the workload's own tasks on that CPU (sender, sink, the CPUMAP kthreads and ksoftirqd of that
//! CPU) over wall time. The kernel charges softirq work to the task it interrupts, so the receive
//! path run on the sender's CPU is part of the sender's time.

use std::{
    fs,
    net::UdpSocket,
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use disgrafs_accel::{
    AccelError,
    cpu_balance::{self, BalanceConfig, Weights},
    harness::{
        AttachmentGuard, VethNet, VethOptions,
        packet::{FrameSpec, RawSender, frame},
    },
    pin::Accelerator,
    sys,
};

use crate::row::{BenchRow, Better};

/// Options of the benchmark (the flags of `disgrafs bench cpu-balance`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Balancer weights (CPU:WEIGHT pairs).
    #[arg(long, default_value = "1:1")]
    pub weights: String,
    /// Seconds per phase.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Repetitions of each phase (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// Flows (distinct UDP source ports).
    #[arg(long, default_value_t = 1024)]
    pub flows: u16,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 512)]
    pub payload: usize,
    /// Packets per second of the fixed-rate phase (default: 60 % of the baseline's max rate).
    #[arg(long)]
    pub rate: Option<u64>,
    /// CPU the sender is pinned to (its receive work lands there without the balancer).
    #[arg(long, default_value_t = 0)]
    pub sender_cpu: u32,
    /// CPU the sink socket's reader is pinned to.
    #[arg(long, default_value_t = 1)]
    pub sink_cpu: u32,
}

/// What one phase measured.
#[derive(Debug, Clone, Default)]
struct Phase {
    /// Datagrams received per second at the sink.
    rx_pps: f64,
    /// Received UDP payload, Mbit/s.
    rx_mbps: f64,
    /// Datagrams sent per second.
    tx_pps: f64,
    /// Attributed utilisation per CPU, percent.
    cpu: Vec<f64>,
}

impl Phase {
    fn peak(&self) -> f64 {
        self.cpu.iter().copied().fold(0.0, f64::max)
    }
}

const SINK_PORT: u16 = 5001;

/// Pins the calling thread to `cpu` (also the `accel` suite's client).
pub(crate) fn pin_current_thread(cpu: u32) -> Result<(), AccelError> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size given; 0 means the calling thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(AccelError::Io {
            context: format!("pinning a thread to CPU {cpu}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Gives a task (thread) nice -20. This machine kind is shared: without it the load's threads get
/// a fraction of their CPU and the figures measure the neighbours. Applied alike to the baseline
/// (whose receive work runs in the sender's context) and the balancer (whose receive work runs in
/// its CPUMAP kthreads), so neither side is favoured.
pub(crate) fn raise_priority(tid: i32) {
    // SAFETY: setpriority on a task id; failure only leaves the default priority.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -20) };
}

/// Raises this process's autogroup to nice -20 for the benchmark and restores it on drop. With
/// scheduler autogroups (the default on desktop-style kernels, and here) a thread's nice counts
/// only inside its session's group: against a neighbour's compiler in another session, even a
/// nice -20 thread got 64 % of a CPU in a probe, and 99 % with its group at -20.
pub(crate) struct AutogroupBoost(Option<i32>);

impl AutogroupBoost {
    const PATH: &'static str = "/proc/self/autogroup";

    pub(crate) fn new() -> Self {
        let old = fs::read_to_string(Self::PATH).ok().and_then(|s| {
            s.split_whitespace()
                .last()
                .and_then(|n| n.parse::<i32>().ok())
        });
        match old {
            Some(n) if fs::write(Self::PATH, "-20").is_ok() => AutogroupBoost(Some(n)),
            _ => AutogroupBoost(None),
        }
    }
}

impl Drop for AutogroupBoost {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            fs::write(Self::PATH, n.to_string()).ok();
        }
    }
}

pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// utime + stime of a task, in clock ticks.
fn task_ticks(path: &str) -> u64 {
    let Ok(s) = fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// Kernel threads doing receive work for a CPU: ksoftirqd/N and cpumap/N/map:ID. The CPUMAP
/// kthreads (created by the balancer's own map, gone with it) get the load's priority.
fn kernel_workers() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        let cpu = comm
            .strip_prefix("ksoftirqd/")
            .or_else(|| {
                comm.strip_prefix("cpumap/")
                    .and_then(|r| r.split('/').next())
            })
            .and_then(|c| c.parse::<u32>().ok());
        if let Some(cpu) = cpu {
            if comm.starts_with("cpumap/") {
                raise_priority(pid.parse().unwrap_or(0));
            }
            out.push((cpu, format!("/proc/{pid}/stat")));
        }
    }
    out
}

/// Attributed CPU ticks per CPU of the given (cpu, stat path) tasks.
fn ticks_per_cpu(tasks: &[(u32, String)], ncpu: usize) -> Vec<u64> {
    let mut v = vec![0u64; ncpu];
    for (cpu, path) in tasks {
        if let Some(slot) = v.get_mut(*cpu as usize) {
            *slot += task_ticks(path);
        }
    }
    v
}

struct Rig {
    net: VethNet,
    frames: Vec<Vec<u8>>,
}

/// Runs one phase: `rate` None = as fast as possible.
fn io_err(context: &str) -> AccelError {
    AccelError::io(context.to_string(), std::io::Error::last_os_error())
}

/// A UDP socket on `port` of b's address with a large receive buffer and a 100 ms read timeout
/// (create it inside namespace b).
pub(crate) fn sink_socket(port: u16) -> Result<UdpSocket, AccelError> {
    let s = UdpSocket::bind((VethNet::ADDR_B, port))
        .map_err(|e| AccelError::io("binding the UDP sink", e))?;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| AccelError::io("sink timeout", e))?;
    let size: libc::c_int = 32 << 20;
    // SAFETY: size is a live c_int; SO_RCVBUFFORCE lets root exceed rmem_max.
    if unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        )
    } != 0
    {
        return Err(io_err("growing the sink's buffer"));
    }
    Ok(s)
}

fn run_phase(rig: &Rig, opts: &Args, rate: Option<u64>) -> Result<Phase, AccelError> {
    let ncpu = sys::possible_cpus()?;
    let tx = rig.net.a.run(|| RawSender::new(VethNet::IF_A))?;
    let sink = rig.net.b.run(|| sink_socket(SINK_PORT))?;

    // Kernel workers (and the CPUMAP kthreads' priority) before the load starts.
    let workers = kernel_workers();
    let stop = Arc::new(AtomicBool::new(false));
    let (rx_pkts, rx_bytes, tx_pkts) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (tid_tx, tid_rx) = mpsc::channel::<(u32, i32)>();
    let seconds = Duration::from_secs(opts.seconds.max(1));

    let sink_thread = {
        let (stop, pkts, bytes, tid_tx) = (
            stop.clone(),
            rx_pkts.clone(),
            rx_bytes.clone(),
            tid_tx.clone(),
        );
        let cpu = opts.sink_cpu;
        std::thread::spawn(move || -> Result<(), AccelError> {
            pin_current_thread(cpu)?;
            raise_priority(gettid());
            tid_tx.send((cpu, gettid())).ok();
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = sink.recv(&mut buf) {
                    pkts.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Ok(())
        })
    };
    let frames = rig.frames.clone();
    let send_thread = {
        let (stop, sent) = (stop.clone(), tx_pkts.clone());
        let cpu = opts.sender_cpu;
        std::thread::spawn(move || -> Result<(), AccelError> {
            pin_current_thread(cpu)?;
            raise_priority(gettid());
            tid_tx.send((cpu, gettid())).ok();
            // Bounded: the phase length, plus a hard cap on the count.
            let cap = 50_000_000u64;
            let mut i = 0usize;
            let mut n = 0u64;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && n < cap {
                match rate {
                    None => {
                        tx.send(&frames[i % frames.len()])?;
                        i += 1;
                        n += 1;
                    }
                    Some(r) => {
                        // Catch up with the schedule (rate x elapsed), then nap: sleeps overshoot
                        // under load, and a schedule, unlike fixed naps, does not drift.
                        let due = (start.elapsed().as_secs_f64() * r as f64) as u64;
                        let burst = due.saturating_sub(n).min(r / 100 + 1);
                        for _ in 0..burst {
                            tx.send(&frames[i % frames.len()])?;
                            i += 1;
                        }
                        n += burst;
                        if burst == 0 || due <= n {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                }
                if n % 256 < 8 {
                    sent.store(n, Ordering::Relaxed);
                    if start.elapsed() > Duration::from_secs(600) {
                        break;
                    }
                }
            }
            sent.store(n, Ordering::Relaxed);
            Ok(())
        })
    };
    let mut tasks: Vec<(u32, String)> = (0..2)
        .filter_map(|_| tid_rx.recv_timeout(Duration::from_secs(5)).ok())
        .map(|(cpu, tid)| (cpu, format!("/proc/self/task/{tid}/stat")))
        .collect();

    // Warm up (queues fill, kthreads wake), then measure.
    std::thread::sleep(Duration::from_millis(300));
    tasks.extend(workers);
    let (p0, b0, s0) = (
        rx_pkts.load(Ordering::Relaxed),
        rx_bytes.load(Ordering::Relaxed),
        tx_pkts.load(Ordering::Relaxed),
    );
    let t0 = ticks_per_cpu(&tasks, ncpu);
    let start = Instant::now();
    std::thread::sleep(seconds);
    let t1 = ticks_per_cpu(&tasks, ncpu);
    let wall = start.elapsed().as_secs_f64();
    let (p1, b1, s1) = (
        rx_pkts.load(Ordering::Relaxed),
        rx_bytes.load(Ordering::Relaxed),
        tx_pkts.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    send_thread
        .join()
        .map_err(|_| AccelError::Harness("sender panicked".into()))??;
    sink_thread
        .join()
        .map_err(|_| AccelError::Harness("sink panicked".into()))??;

    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(Phase {
        rx_pps: (p1 - p0) as f64 / wall,
        rx_mbps: (b1 - b0) as f64 * 8.0 / wall / 1e6,
        tx_pps: (s1 - s0) as f64 / wall,
        cpu: t0
            .iter()
            .zip(&t1)
            .map(|(a, b)| (b - a) as f64 / hz / wall * 100.0)
            .collect(),
    })
}

fn median(v: Vec<f64>) -> f64 {
    crate::row::median(&v)
}

fn median_phase(ps: &[Phase]) -> Phase {
    let ncpu = ps.first().map_or(0, |p| p.cpu.len());
    Phase {
        rx_pps: median(ps.iter().map(|p| p.rx_pps).collect()),
        rx_mbps: median(ps.iter().map(|p| p.rx_mbps).collect()),
        tx_pps: median(ps.iter().map(|p| p.tx_pps).collect()),
        cpu: (0..ncpu)
            .map(|c| median(ps.iter().map(|p| p.cpu[c]).collect()))
            .collect(),
    }
}

/// The UDP payload a phase sends for a requested size: at least a byte, and one unfragmented
/// frame at most.
pub(crate) fn udp_payload_len(requested: usize) -> usize {
    requested.clamp(1, 1400)
}

/// One UDP frame per flow from a to b: `flows` source ports from `sport0`, to `dport`, with a
/// payload of [`udp_payload_len`]`(payload)` bytes.
pub(crate) fn udp_flows(
    net: &VethNet,
    flows: u16,
    sport0: u16,
    dport: u16,
    payload: usize,
) -> Result<Vec<Vec<u8>>, AccelError> {
    let (src_mac, dst_mac) = (
        VethNet::mac(&net.a, VethNet::IF_A)?,
        VethNet::mac(&net.b, VethNet::IF_B)?,
    );
    let payload = vec![0xa5u8; udp_payload_len(payload)];
    Ok((0..flows.max(1))
        .map(|i| {
            frame(&FrameSpec {
                src_mac,
                dst_mac,
                proto: 17,
                src_v4: VethNet::ADDR_A,
                dst_v4: VethNet::ADDR_B,
                sport: sport0.wrapping_add(i),
                dport,
                payload: &payload,
                ..Default::default()
            })
        })
        .collect())
}

/// Runs the benchmark; needs root. Creates its own namespaces and tears them down.
pub fn run(opts: &Args, stop: &crate::Stop) -> Result<Vec<BenchRow>, AccelError> {
    sys::require_privileged("the cpu-balance benchmark")?;
    let ncpu = sys::possible_cpus()?;
    let weights = Weights::parse(&opts.weights, ncpu)?;
    let online = sys::online_cpus()?;
    for cpu in [opts.sender_cpu, opts.sink_cpu] {
        if !online.contains(&cpu) {
            return Err(AccelError::InvalidArgument(format!(
                "CPU {cpu} is not online"
            )));
        }
    }
    let net = VethNet::new(VethOptions::default())?;
    let ns = net.b.name().to_string();
    let _pins = AttachmentGuard::new(Accelerator::CpuBalance, Some(&ns), VethNet::IF_B)?;
    let frames = udp_flows(&net, opts.flows, 20_000, SINK_PORT, opts.payload)?;
    let rig = Rig { net, frames };
    let _boost = AutogroupBoost::new();

    let attach = || -> Result<(), AccelError> {
        cpu_balance::attach(&BalanceConfig::new(
            VethNet::IF_B,
            Some(&ns),
            weights.clone(),
        ))
        .map(|_| ())
    };
    let detach = || cpu_balance::detach(VethNet::IF_B, Some(&ns)).map(|_| ());

    let (mut base_max, mut cand_max, mut base_fixed, mut cand_fixed) =
        (vec![], vec![], vec![], vec![]);
    let mut drop_share = vec![];
    // Each phase is bounded in time; Ctrl-C stops the run between phases and the guards
    // remove the host.
    let phase = |rate| {
        stop.check_accel()?;
        run_phase(&rig, opts, rate)
    };
    for _ in 0..opts.repeats.max(1) {
        base_max.push(phase(None)?);
        attach()?;
        cand_max.push(phase(None)?);
        detach()?;
    }
    let bm = median_phase(&base_max);
    let rate = opts.rate.unwrap_or(((bm.rx_pps * 0.6) as u64).max(1000));
    for _ in 0..opts.repeats.max(1) {
        base_fixed.push(phase(Some(rate))?);
        attach()?;
        cand_fixed.push(phase(Some(rate))?);
        // Counters start at zero with each attachment: this phase's drops (warm-up included).
        let c = cpu_balance::counters(VethNet::IF_B, Some(&ns))?;
        let (dropped, redirected) = c
            .iter()
            .fold((0, 0), |(d, r), x| (d + x.dropped, r + x.redirected));
        drop_share.push(if redirected == 0 {
            0.0
        } else {
            dropped as f64 * 100.0 / redirected as f64
        });
        detach()?;
    }
    let (cm, bf, cf) = (
        median_phase(&cand_max),
        median_phase(&base_fixed),
        median_phase(&cand_fixed),
    );

    let base = "no balancer";
    let cand = format!("xdp cpu-balance {weights}");
    let how = format!(
        "{} flows, {} B UDP payload, sender on CPU {}, sink on CPU {}, {} s x {} (median); CPU = the workload's own tasks per CPU",
        opts.flows,
        udp_payload_len(opts.payload),
        opts.sender_cpu,
        opts.sink_cpu,
        opts.seconds,
        opts.repeats
    );
    let mut rows = vec![
        BenchRow::new(
            format!("peak single-CPU utilisation at {rate} pps"),
            "%",
            Better::Lower,
            (base, Some(bf.peak())),
            (&cand, cf.peak()),
        )
        .with_note(how),
    ];
    for cpu in 0..ncpu {
        rows.push(BenchRow::new(
            format!("CPU {cpu} utilisation at {rate} pps"),
            "%",
            Better::Lower,
            (base, Some(bf.cpu[cpu])),
            (&cand, cf.cpu[cpu]),
        ));
    }
    rows.extend([
        BenchRow::new(
            format!("received packet rate at {rate} pps offered"),
            "pkt/s",
            Better::Higher,
            (base, Some(bf.rx_pps)),
            (&cand, cf.rx_pps),
        ),
        BenchRow::new(
            format!("CPUMAP enqueue drops at {rate} pps"),
            "%",
            Better::Lower,
            (base, None),
            (&cand, median(drop_share)),
        )
        .with_note("the baseline has no CPUMAP; drops of the redirected frames, warm-up included"),
        BenchRow::new(
            "max received packet rate",
            "pkt/s",
            Better::Higher,
            (base, Some(bm.rx_pps)),
            (&cand, cm.rx_pps),
        ),
        BenchRow::new(
            "max received throughput",
            "Mbit/s",
            Better::Higher,
            (base, Some(bm.rx_mbps)),
            (&cand, cm.rx_mbps),
        ),
        BenchRow::new(
            "max sent packet rate",
            "pkt/s",
            Better::Higher,
            (base, Some(bm.tx_pps)),
            (&cand, cm.tx_pps),
        ),
        BenchRow::new(
            "peak single-CPU utilisation at max rate",
            "%",
            Better::Lower,
            (base, Some(bm.peak())),
            (&cand, cm.peak()),
        ),
    ]);
    Ok(rows)
}
