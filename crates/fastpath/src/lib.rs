//! The AF_XDP fast path: disgrafs' small objects (file records, small files, previews) served
//! from user space, past the kernel's TCP stack.
//!
//! ```text
//! NIC queue ──XDP xsk_steer (accel)──► XskQueue (accel: UMEM + rings, smoltcp Device)
//!     ──► smoltcp Interface + a pool of TCP sockets (here) ──► FastHttp (server: HTTP/1.1,
//!         the normal server's handlers over a read-only store) ──► response bytes back
//! ```
//!
//! This crate owns only the TCP side: a bounded pool of smoltcp sockets listening on the port,
//! connection lifetimes (handshake, idle and close timeouts), moving bytes between sockets and
//! [`disgrafs_server::fastpath::FastHttp`], and the counters. It knows neither BPF (accel does)
//! nor HTTP (server does).
//!
//! Everything runs on one thread inside the interface's network namespace: one smoltcp
//! interface over every queue's socket, so a flow that moves between queues stays one
//! connection.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use disgrafs_accel::{
    AccelError,
    afxdp::{
        BindMode, SteerConfig, Steering, UserCounter, XskOptions, XskQueue, heartbeat_age, unix_ms,
    },
    cpu_balance::AttachMode,
    pin::{self, Accelerator, Attachment},
    sys,
};
use disgrafs_server::fastpath::{FastHttp, MAX_HEAD, Step};
use disgrafs_tagger::isolate::panic_message;
use smoltcp::{
    iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet},
    socket::tcp,
    wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr},
};

mod addrs;
pub mod cli;

/// What the fast path serves and how much of everything it may hold.
#[derive(Debug, Clone)]
pub struct FastPathConfig {
    pub iface: String,
    /// Named network namespace holding the interface.
    pub netns: Option<String>,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Largest response body served; larger ones are refused (503) for the normal server.
    pub max_body: u64,
    /// TCP connections at once (each holds `rx_buffer` + `tx_buffer` bytes).
    pub max_connections: usize,
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    /// A connection with no traffic for this long is reset.
    pub idle_timeout: Duration,
    /// A connection still in SYN-RECEIVED after this long is dropped (half-open).
    pub handshake_timeout: Duration,
    /// Unacknowledged data for this long aborts a connection (a vanished client).
    pub ack_timeout: Duration,
    pub mode: AttachMode,
    pub xsk: XskOptions,
}

impl FastPathConfig {
    pub fn new(iface: &str, netns: Option<&str>, port: u16, data_dir: PathBuf) -> Self {
        FastPathConfig {
            iface: iface.to_string(),
            netns: netns.map(str::to_string),
            port,
            data_dir,
            max_body: 1 << 20,
            max_connections: 256,
            rx_buffer: 4 * 1024,
            tx_buffer: 64 * 1024,
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(10),
            mode: AttachMode::Auto,
            xsk: XskOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    #[error(transparent)]
    Accel(#[from] AccelError),
    #[error("opening the store: {0}")]
    Store(#[from] disgrafs_store::StoreError),
    #[error("{0}")]
    Config(String),
    #[error("the fast path thread panicked: {0}")]
    Panicked(String),
    #[error(
        "the fast path's loop has not run for {0} s; its steering was removed (nothing answered the port)"
    )]
    Stalled(u64),
}

/// A loop that has not published a heartbeat for this long is stuck: [`FastPath::check`] gives
/// up on it. Far above the loop's longest legitimate wait (its handlers' store reads).
pub const STALLED: Duration = Duration::from_secs(30);

/// The fast path's counters (the same names `accel status` shows), shared with the metrics
/// endpoint through [`FastPath::counters`].
#[derive(Debug, Default)]
pub struct Counters([AtomicU64; UserCounter::ALL.len()]);

impl Counters {
    fn add(&self, c: UserCounter, n: u64) {
        self.0[c as usize].fetch_add(n, Ordering::Relaxed);
    }
    fn set(&self, c: UserCounter, n: u64) {
        self.0[c as usize].store(n, Ordering::Relaxed);
    }
    pub fn get(&self, c: UserCounter) -> u64 {
        self.0[c as usize].load(Ordering::Relaxed)
    }
    /// (name, value) of every counter.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        UserCounter::ALL
            .iter()
            .map(|c| (c.name(), self.get(*c)))
            .collect()
    }
    fn values(&self) -> Vec<u64> {
        UserCounter::ALL.iter().map(|c| self.get(*c)).collect()
    }
}

/// How the fast path came up.
#[derive(Debug, Clone)]
pub struct Started {
    /// XDP attach mode: "driver" or "generic".
    pub xdp_mode: &'static str,
    pub queues: u32,
    pub bind: BindMode,
    pub addrs: Vec<Ipv4Addr>,
    pub warnings: Vec<String>,
}

impl Started {
    /// The one line saying what was chosen.
    pub fn describe(&self, cfg: &FastPathConfig) -> String {
        let why = match self.bind {
            BindMode::ZeroCopy => "the driver supports it",
            BindMode::Copy => "zero-copy refused by the driver",
        };
        let addrs: Vec<String> = self
            .addrs
            .iter()
            .map(|a| format!("{a}:{}", cfg.port))
            .collect();
        format!(
            "afxdp on {}: XDP {} mode, {} queue(s), AF_XDP {} mode ({why}); serving {}",
            cfg.iface,
            self.xdp_mode,
            self.queues,
            self.bind,
            addrs.join(" ")
        )
    }
}

/// A running fast path. Stopping it (or dropping it) detaches everything; so does its thread
/// when it ends by itself (an error, a panic: the steering is dropped as it unwinds), which
/// [`FastPath::check`] reports.
pub struct FastPath {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), FastPathError>>>,
    counters: Arc<Counters>,
    /// Its pins, removed by [`FastPath::check`] when the loop is stuck with them.
    attachment: Attachment,
    pub started: Started,
}

impl FastPath {
    /// Attaches steering, binds the sockets, opens the store, and serves on a thread of its
    /// own; returns once it serves (or failed to start).
    pub fn start(cfg: FastPathConfig) -> Result<FastPath, FastPathError> {
        if cfg.max_connections == 0 || cfg.max_connections > 65_536 {
            return Err(FastPathError::Config(format!(
                "max connections {} (1 to 65536)",
                cfg.max_connections
            )));
        }
        let attachment = Attachment::new(Accelerator::Afxdp, cfg.netns.as_deref(), &cfg.iface)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("afxdp".into())
                .spawn(move || {
                    let netns = cfg.netns.clone();
                    sys::in_netns(netns.as_deref(), || Ok(serve(&cfg, &stop, &counters, &tx)))?
                })
                .map_err(|e| FastPathError::Config(format!("spawning the fast path: {e}")))?
        };
        match rx.recv() {
            Ok(started) => Ok(FastPath {
                stop,
                thread: Some(thread),
                counters,
                attachment,
                started,
            }),
            // The thread ended before it was ready: its error says why.
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(FastPathError::Config("the fast path stopped".into())),
                Err(p) => Err(FastPathError::Panicked(panic_message(&*p))),
            },
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Ok while it serves. Once its thread has ended by itself, why (its error or its panic;
    /// the steering is already gone); once its loop has not run for [`STALLED`], removes the
    /// steering's pins (the process's exit then detaches the program) and says so.
    pub fn check(&mut self) -> Result<(), FastPathError> {
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            return match self.halt() {
                Ok(()) => Err(FastPathError::Config(
                    "the fast path's loop ended by itself".into(),
                )),
                e => e,
            };
        }
        let beat = self.counters.get(UserCounter::HeartbeatMs);
        match heartbeat_age(beat) {
            Some(age) if age >= STALLED => {
                pin::remove_attachment(&self.attachment).ok();
                // The thread cannot be joined: leave it to the process's exit.
                self.thread.take();
                Err(FastPathError::Stalled(age.as_secs()))
            }
            _ => Ok(()),
        }
    }

    /// Stops serving, detaches the steering and removes its pins.
    pub fn stop(mut self) -> Result<(), FastPathError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), FastPathError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(p)) => Err(FastPathError::Panicked(panic_message(&*p))),
        }
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        self.halt().ok();
    }
}

/// One TCP connection slot of the pool.
struct Conn {
    handle: SocketHandle,
    input: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    closing: bool,
    open: bool,
    syn_since: Option<Instant>,
    /// When its socket was first seen in TIME-WAIT.
    time_wait_since: Option<Instant>,
    last: Instant,
}

impl Conn {
    fn reset(&mut self, now: Instant) {
        self.input.clear();
        self.output.clear();
        self.input.shrink_to(MAX_HEAD);
        self.output.shrink_to(64 * 1024);
        self.sent = 0;
        self.closing = false;
        self.open = false;
        self.syn_since = None;
        self.last = now;
    }
}

fn serve(
    cfg: &FastPathConfig,
    stop: &AtomicBool,
    counters: &Counters,
    ready: &mpsc::Sender<Started>,
) -> Result<(), FastPathError> {
    let (mac, cidrs) = addrs::of(&cfg.iface)?;
    if cidrs.is_empty() {
        return Err(FastPathError::Config(format!(
            "{} has no IPv4 address to serve on",
            cfg.iface
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| FastPathError::Config(format!("starting a runtime: {e}")))?;
    let http = rt.block_on(FastHttp::open(&cfg.data_dir, cfg.max_body))?;

    let mut steering = Steering::attach(&SteerConfig {
        iface: cfg.iface.clone(),
        netns: cfg.netns.clone(),
        tcp_port: cfg.port,
        udp_port: 0,
        ipv6: false,
        mode: cfg.mode,
    })?;
    let mut queues = Vec::new();
    for q in 0..steering.queues {
        let xsk = XskQueue::open(&cfg.iface, q, cfg.xsk)?;
        steering.register(q, &xsk)?;
        queues.push(xsk);
    }
    let bind = queues[0].mode;

    let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    // Initial sequence numbers derive from it: a fresh one per start.
    config.random_seed = addrs::random_seed();
    let mut iface = Interface::new(config, &mut queues[0], smoltcp::time::Instant::now());
    iface.update_ip_addrs(|a| {
        for (ip, prefix) in &cidrs {
            a.push(IpCidr::new(IpAddress::Ipv4(*ip), *prefix)).ok();
        }
    });
    let mut sockets = SocketSet::new(Vec::with_capacity(cfg.max_connections));
    let now = Instant::now();
    let mut conns: Vec<Conn> = (0..cfg.max_connections)
        .map(|_| {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; cfg.rx_buffer]),
                tcp::SocketBuffer::new(vec![0; cfg.tx_buffer]),
            );
            s.set_nagle_enabled(false);
            s.set_ack_delay(None);
            s.set_timeout(Some(cfg.ack_timeout.into()));
            Conn {
                handle: sockets.add(s),
                input: Vec::new(),
                output: Vec::new(),
                sent: 0,
                closing: false,
                open: false,
                syn_since: None,
                time_wait_since: None,
                last: now,
            }
        })
        .collect();
    for c in &conns {
        listen(sockets.get_mut::<tcp::Socket>(c.handle), cfg.port)?;
    }
    counters.set(UserCounter::HeartbeatMs, unix_ms());
    // Err: the starter gave up waiting; the stop flag ends this loop soon.
    ready
        .send(Started {
            xdp_mode: steering.mode,
            queues: steering.queues,
            bind,
            addrs: cidrs.iter().map(|(a, _)| *a).collect(),
            warnings: steering.warnings.clone(),
        })
        .ok();

    let mut published = Instant::now();
    let mut pollfds: Vec<libc::pollfd> = queues
        .iter()
        .map(|q| libc::pollfd {
            fd: q.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let ts = smoltcp::time::Instant::now();
        for q in queues.iter_mut() {
            iface.poll(ts, q, &mut sockets);
        }
        let now = Instant::now();
        let mut busy = false;
        let mut asking = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            if receive(
                c,
                sockets.get_mut::<tcp::Socket>(c.handle),
                cfg,
                counters,
                now,
            )? {
                asking.push(i);
            }
        }
        reclaim_time_wait(&mut conns, &mut sockets, cfg, counters)?;
        // Every connection's request at once: the handlers wait on the store (SQLite's worker
        // threads, blob reads), and one request at a time would leave the fast path idle
        // through each wait.
        if !asking.is_empty() {
            let steps = rt.block_on(futures::future::join_all(
                asking.iter().map(|&i| http.step(&conns[i].input)),
            ));
            for (&i, step) in asking.iter().zip(steps) {
                busy |= conns[i].answer(step, counters);
            }
        }
        for c in conns.iter_mut() {
            busy |= send(
                c,
                sockets.get_mut::<tcp::Socket>(c.handle),
                cfg,
                counters,
                now,
            );
        }
        let ts = smoltcp::time::Instant::now();
        for q in queues.iter_mut() {
            iface.poll(ts, q, &mut sockets);
            q.flush();
        }
        if published.elapsed() >= Duration::from_millis(250) {
            published = Instant::now();
            let (mut rx, mut tx) = (0, 0);
            for q in &queues {
                // The interface went away (or the socket broke): nothing more will arrive.
                if let Some(e) = q.take_error() {
                    return Err(FastPathError::Config(format!(
                        "the AF_XDP socket of {} queue {}: {e}",
                        cfg.iface, q.queue
                    )));
                }
                let (r, t) = q.frames();
                rx += r;
                tx += t;
            }
            counters.set(UserCounter::HeartbeatMs, unix_ms());
            counters.set(UserCounter::RxFrames, rx);
            counters.set(UserCounter::TxFrames, tx);
            counters.set(
                UserCounter::TcpActive,
                conns.iter().filter(|c| c.open).count() as u64,
            );
            steering.publish(&counters.values()).ok();
        }
        if busy {
            continue;
        }
        let delay = iface
            .poll_delay(smoltcp::time::Instant::now(), &sockets)
            .map_or(Duration::from_millis(50), Duration::from)
            .min(Duration::from_millis(50));
        // SAFETY: pollfds is a valid array of pollfd for the call.
        unsafe {
            libc::poll(
                pollfds.as_mut_ptr(),
                pollfds.len() as libc::nfds_t,
                delay.as_millis() as libc::c_int,
            )
        };
    }
    counters.set(UserCounter::TcpActive, 0);
    steering.publish(&counters.values()).ok();
    // Sockets close before the steering that points at them goes (drop order).
    drop(queues);
    drop(steering);
    Ok(())
}

/// Sockets kept listening, out of the pool: a SYN that finds none is answered with RST.
fn spare_listeners(cfg: &FastPathConfig) -> usize {
    (cfg.max_connections / 4).max(1)
}

/// Under connection churn (clients asking `Connection: close`, so the fast path closes first)
/// every closed connection holds its socket in TIME-WAIT for smoltcp's 10 s: a few hundred
/// connections a second exhaust the pool and every new SYN is reset. So when fewer than
/// [`spare_listeners`] sockets listen, the oldest TIME-WAIT sockets listen again at once, as
/// Linux drops TIME-WAIT entries beyond `tcp_max_tw_buckets`. The peer has acknowledged
/// everything by then.
fn reclaim_time_wait(
    conns: &mut [Conn],
    sockets: &mut SocketSet<'_>,
    cfg: &FastPathConfig,
    counters: &Counters,
) -> Result<(), FastPathError> {
    let listening = conns
        .iter()
        .filter(|c| sockets.get::<tcp::Socket>(c.handle).is_listening())
        .count();
    let want = spare_listeners(cfg).saturating_sub(listening);
    if want == 0 {
        return Ok(());
    }
    let mut waiting: Vec<(Instant, usize)> = conns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.time_wait_since?, i)))
        .collect();
    waiting.sort_unstable();
    for &(_, i) in waiting.iter().take(want) {
        // smoltcp counts TIME-WAIT as not open: listen resets it without sending anything.
        listen(sockets.get_mut::<tcp::Socket>(conns[i].handle), cfg.port)?;
        conns[i].time_wait_since = None;
        counters.add(UserCounter::TcpTimeWaitReclaimed, 1);
    }
    Ok(())
}

fn listen(s: &mut tcp::Socket, port: u16) -> Result<(), FastPathError> {
    s.listen(port)
        .map_err(|e| FastPathError::Config(format!("listening on port {port}: {e}")))
}

/// Moves one connection through its TCP states and takes what it received. Returns whether
/// it has a request to answer (input, and the previous response sent).
fn receive(
    c: &mut Conn,
    s: &mut tcp::Socket,
    cfg: &FastPathConfig,
    counters: &Counters,
    now: Instant,
) -> Result<bool, FastPathError> {
    use tcp::State;
    match s.state() {
        // A handshake seen in SYN-RECEIVED that went back to LISTEN (the client's RST) or to
        // CLOSED ends its clock here: a stale start would abort the next client's handshake on
        // this socket as "half-open" at once (a reset connection).
        State::Closed | State::TimeWait => {
            c.syn_since = None;
            if c.open {
                c.reset(now);
            }
            if s.state() == State::Closed {
                c.time_wait_since = None;
                listen(s, cfg.port)?;
            } else {
                c.time_wait_since.get_or_insert(now);
            }
            return Ok(false);
        }
        State::Listen => {
            c.syn_since = None;
            return Ok(false);
        }
        State::SynReceived => {
            let since = *c.syn_since.get_or_insert(now);
            if now.duration_since(since) > cfg.handshake_timeout {
                s.abort();
                counters.add(UserCounter::TcpTimedOut, 1);
                c.syn_since = None;
            }
            return Ok(false);
        }
        _ => {}
    }
    if !c.open {
        c.open = true;
        c.syn_since = None;
        c.last = now;
        counters.add(UserCounter::TcpAccepted, 1);
    }
    // Receive at most one head and a bit: a longer head is refused by FastHttp anyway.
    while s.can_recv() && c.input.len() <= MAX_HEAD {
        let room = MAX_HEAD + 1 - c.input.len();
        let got = s
            .recv(|buf| {
                let n = buf.len().min(room);
                c.input.extend_from_slice(&buf[..n]);
                (n, n)
            })
            .unwrap_or(0);
        if got == 0 {
            break;
        }
        c.last = now;
    }
    // Pipelined requests are answered one after another, each once the previous is sent.
    Ok(c.sent == c.output.len() && !c.closing && !c.input.is_empty())
}

impl Conn {
    /// Takes FastHttp's answer to the request at the head of the input. Returns whether another
    /// round is needed at once (a response to send).
    fn answer(&mut self, step: Step, counters: &Counters) -> bool {
        match step {
            Step::Incomplete => false,
            Step::Respond {
                consumed,
                response,
                close,
                status,
            } => {
                self.input.drain(..consumed.min(self.input.len()));
                self.output = response;
                self.sent = 0;
                self.closing |= close;
                counters.add(UserCounter::HttpRequests, 1);
                if status >= 400 {
                    counters.add(UserCounter::HttpErrors, 1);
                }
                true
            }
        }
    }
}

/// Sends what a connection has to send, closes it when it is done, and times it out when idle.
/// Returns whether it did something that may need another round at once (more to send, more
/// to parse).
fn send(
    c: &mut Conn,
    s: &mut tcp::Socket,
    cfg: &FastPathConfig,
    counters: &Counters,
    now: Instant,
) -> bool {
    if !c.open {
        return false;
    }
    let mut busy = false;
    if c.sent < c.output.len() && s.can_send() {
        let n = s.send_slice(&c.output[c.sent..]).unwrap_or(0);
        c.sent += n;
        if n > 0 {
            c.last = now;
            counters.add(UserCounter::BytesSent, n as u64);
            busy = c.sent < c.output.len() && s.can_send();
        }
    }
    let drained = c.sent == c.output.len();
    if drained && !c.output.is_empty() {
        c.output.clear();
        c.sent = 0;
        busy |= !c.input.is_empty();
    }
    // Closing: asked for, or the peer finished sending and nothing is left to answer.
    let peer_done = !s.may_recv();
    if drained && (c.closing || peer_done) && s.may_send() {
        s.close();
    }
    if now.duration_since(c.last) > cfg.idle_timeout {
        s.abort();
        counters.add(UserCounter::TcpTimedOut, 1);
    }
    busy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_one_line_error() {
        let p = std::panic::catch_unwind(|| panic!("frame {}", 7)).unwrap_err();
        let e = FastPathError::Panicked(panic_message(&*p));
        assert_eq!(e.to_string(), "the fast path thread panicked: frame 7");
    }
}
