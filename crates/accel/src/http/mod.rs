//! The HTTP observer: sees the HTTP/1.x requests crossing one interface without touching the
//! traffic (the report's http_filter).
//!
//! A raw AF_PACKET socket is bound to the named interface with the socket filter of
//! `bpf/http_filter.bpf.c` attached, so the kernel hands user space only frames whose TCP payload
//! starts an HTTP/1.x request. A reader thread parses them again in full ([`parse`]), reports
//! each request to an optional callback (`accel http-trace` prints them) and aggregates counts and
//! bytes per method and normalised path ([`aggregate`]), read with [`HttpObserver::snapshot`].
//!
//! Split request lines: when a request line does not end in the segment that starts it (a client
//! writing "GE" then "T / HTTP/1.1..."), the observer does not reassemble it: continuation
//! segments do not start a request, so the filter never passes them. Such a request is counted in
//! [`HttpAggregates::split_request_lines`] (its method is known, its path is not) and reported to
//! the callback as [`Observed::SplitLine`]; it is not in the per-route counts. Real clients write
//! the request head in one call, so this is rare; a request line longer than the filter's window
//! (256 bytes) is passed and parsed normally as long as it fits in the captured 8 KiB.
//!
//! The filter lives and dies with the socket: the observer pins nothing and leaves nothing behind.

pub mod aggregate;
pub mod parse;

use std::{
    io,
    mem::size_of,
    net::SocketAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::SystemTime,
};

pub use aggregate::{AggregateLimits, Aggregator, HttpAggregates, RouteStats};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
    programs::SocketFilter,
};
use serde::Serialize;

use crate::{AccelError, objects, sys};

/// Which observer to start.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    pub iface: String,
    /// Named network namespace (`/run/netns/NAME`) the interface lives in.
    pub netns: Option<String>,
    pub limits: AggregateLimits,
}

impl ObserverConfig {
    pub fn new(iface: &str, netns: Option<&str>) -> Self {
        ObserverConfig {
            iface: iface.to_string(),
            netns: netns.map(str::to_string),
            limits: AggregateLimits::default(),
        }
    }
}

/// One request seen on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct HttpRequest {
    pub time: SystemTime,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub method: String,
    /// The request target as sent (cut at 2 KiB).
    pub target: String,
    pub host: Option<String>,
    /// "HTTP/1.0" or "HTTP/1.1".
    pub version: String,
    /// Head plus declared body, or the captured segment when the head continues later.
    pub bytes: u64,
    /// True when the frame was leaving the interface rather than arriving.
    pub outgoing: bool,
}

/// What the observer reports to its callback.
#[derive(Debug, Clone, Serialize)]
pub enum Observed {
    Request(HttpRequest),
    SplitLine {
        src: SocketAddr,
        dst: SocketAddr,
        method: String,
        target_prefix: String,
    },
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Request(r) => write!(
                f,
                "{} -> {} {} {} {} host={} bytes={}{}",
                r.src,
                r.dst,
                r.method,
                r.target,
                r.version,
                r.host.as_deref().unwrap_or("-"),
                r.bytes,
                if r.outgoing { " (outgoing)" } else { "" }
            ),
            Observed::SplitLine {
                src,
                dst,
                method,
                target_prefix,
            } => {
                write!(
                    f,
                    "{src} -> {dst} {method} {target_prefix}... (request line split across segments)"
                )
            }
        }
    }
}

/// The kernel filter's own verdict counts (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FilterCounters {
    pub seen: u64,
    pub kept: u64,
    pub not_tcp: u64,
    pub no_payload: u64,
    pub not_http: u64,
    pub malformed: u64,
}

type Callback = Box<dyn FnMut(&Observed) + Send>;

/// A running observer. Dropping it (or [`HttpObserver::stop`]) closes the socket, which removes
/// the filter.
pub struct HttpObserver {
    agg: Arc<Mutex<Aggregator>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    counters: PerCpuArray<MapData, u64>,
    _ebpf: Ebpf,
}

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;
const ARPHRD_LOOPBACK: u16 = 772;

/// Name of the socket filter program in http_filter.bpf.o.
pub const FILTER_PROGRAM: &str = "http_filter";

/// Loads the socket filter (unattached); shared by the observer and the filter's tests.
pub fn load_filter() -> Result<Ebpf, AccelError> {
    sys::require_privileged("loading the HTTP observer")?;
    let mut ebpf = Ebpf::load(objects::HTTP_FILTER)
        .map_err(|e| AccelError::bpf("loading http_filter.bpf.o", e))?;
    let prog: &mut SocketFilter =
        objects::program_mut(&mut ebpf, "http_filter.bpf.o", FILTER_PROGRAM)?;
    prog.load().map_err(|e| AccelError::ProgramUnsupported {
        program: "http_filter".into(),
        kind: "socket filter".into(),
        detail: crate::error::chain(&e),
    })?;
    Ok(ebpf)
}

impl HttpObserver {
    /// Starts observing `cfg.iface`; `on_event` is called from the reader thread for each
    /// request.
    pub fn start(cfg: &ObserverConfig, on_event: Option<Callback>) -> Result<Self, AccelError> {
        let mut ebpf = load_filter()?;
        let netns = cfg.netns.as_deref();
        let sock = sys::in_netns(netns, || {
            let ifindex = sys::if_index(&cfg.iface, netns)?;
            let prog: &SocketFilter = ebpf
                .program(FILTER_PROGRAM)
                .and_then(|p| p.try_into().ok())
                .expect("load_filter checked it");
            open_socket(ifindex, prog)
        })?;
        let counters = ebpf
            .take_map("http_counters")
            .ok_or_else(|| AccelError::Bpf {
                context: "http_filter.bpf.o".into(),
                detail: "no map http_counters".into(),
            })
            .and_then(|m| {
                PerCpuArray::try_from(m).map_err(|e| AccelError::bpf("http_counters", e))
            })?;
        let agg = Arc::new(Mutex::new(Aggregator::new(cfg.limits)));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (agg, stop) = (agg.clone(), stop.clone());
            std::thread::Builder::new()
                .name("http-observer".into())
                .spawn(move || read_loop(sock, agg, stop, on_event))
                .map_err(|e| AccelError::io("starting the observer thread", e))?
        };
        Ok(HttpObserver {
            agg,
            stop,
            reader: Some(reader),
            counters,
            _ebpf: ebpf,
        })
    }

    /// Aggregates so far.
    pub fn snapshot(&self) -> HttpAggregates {
        self.agg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot()
    }

    /// The kernel filter's verdict counts.
    pub fn filter_counters(&self) -> Result<FilterCounters, AccelError> {
        let mut v = [0u64; 6];
        for (i, slot) in v.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .get(&(i as u32), 0)
                .map_err(|e| AccelError::bpf("reading http_counters", e))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(FilterCounters {
            seen: v[0],
            kept: v[1],
            not_tcp: v[2],
            no_payload: v[3],
            not_http: v[4],
            malformed: v[5],
        })
    }

    /// Stops the reader and closes the socket; returns the final aggregates.
    pub fn stop(mut self) -> HttpAggregates {
        self.shutdown();
        self.snapshot()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            h.join().ok();
        }
    }
}

impl Drop for HttpObserver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn last_err(what: &str) -> AccelError {
    AccelError::io(what.to_string(), io::Error::last_os_error())
}

/// A packet socket bound to `ifindex` with the filter attached before any frame can queue.
fn open_socket(ifindex: u32, prog: &SocketFilter) -> Result<OwnedFd, AccelError> {
    // Protocol 0: the socket receives nothing until bind() names ETH_P_ALL, so no unfiltered
    // frame is queued between socket() and the filter's attachment.
    // SAFETY: plain socket(2); ownership is taken right below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(match io::Error::last_os_error().raw_os_error() {
            Some(libc::EPERM) => AccelError::NotPrivileged {
                what: "opening a raw packet socket".into(),
            },
            _ => last_err("opening a raw packet socket"),
        });
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    prog.attach(&fd)
        .map_err(|e| AccelError::bpf("attaching the socket filter", e))?;
    let set = |opt: libc::c_int, val: &[u8]| -> Result<(), AccelError> {
        // SAFETY: val is a live buffer of the given length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                val.as_ptr().cast(),
                val.len() as u32,
            )
        };
        if rc != 0 {
            Err(last_err("setsockopt on the packet socket"))
        } else {
            Ok(())
        }
    };
    // A short timeout lets the reader notice stop requests.
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: timeval is plain data; viewed as bytes for setsockopt.
    set(libc::SO_RCVTIMEO, unsafe {
        std::slice::from_raw_parts(
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>(),
        )
    })?;
    set(libc::SO_RCVBUF, &(4i32 << 20).to_ne_bytes())?;
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(last_err("binding the packet socket to the interface"));
    }
    Ok(fd)
}

fn read_loop(
    sock: OwnedFd,
    agg: Arc<Mutex<Aggregator>>,
    stop: Arc<AtomicBool>,
    mut on_event: Option<Callback>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: zeroed sockaddr_ll is valid for recvfrom to fill.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and sll are writable for the lengths given.
        let n = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => continue,
                _ => {
                    log::error!("http observer: reading the packet socket: {e}");
                    return;
                }
            }
        }
        let outgoing = sll.sll_pkttype == PACKET_OUTGOING;
        // On loopback every frame is seen leaving and arriving: count it once.
        if outgoing && sll.sll_hatype == ARPHRD_LOOPBACK {
            continue;
        }
        let Some(ev) = classify(&buf[..n as usize], outgoing) else {
            agg.lock()
                .unwrap_or_else(|p| p.into_inner())
                .record_rejected();
            continue;
        };
        {
            let mut a = agg.lock().unwrap_or_else(|p| p.into_inner());
            match &ev {
                Observed::Request(r) => a.record(&r.method, &r.target, r.bytes),
                Observed::SplitLine { .. } => a.record_split(),
            }
        }
        if let Some(cb) = on_event.as_mut() {
            cb(&ev);
        }
    }
}

/// Turns a captured frame into an event; `None` when full parsing rejects it.
pub fn classify(frame: &[u8], outgoing: bool) -> Option<Observed> {
    let seg = parse::tcp_segment(frame)?;
    match parse::parse_payload(seg.payload) {
        parse::Payload::Request(h) => Some(Observed::Request(HttpRequest {
            time: SystemTime::now(),
            src: seg.src,
            dst: seg.dst,
            bytes: h.bytes(seg.payload.len()),
            version: format!("HTTP/1.{}", h.minor),
            method: h.method,
            target: h.target,
            host: h.host,
            outgoing,
        })),
        parse::Payload::SplitLine {
            method,
            target_prefix,
        } => Some(Observed::SplitLine {
            src: seg.src,
            dst: seg.dst,
            method,
            target_prefix,
        }),
        parse::Payload::NotHttp => None,
    }
}
