//! One AF_XDP socket (UMEM + fill, completion, rx and tx rings) and the `smoltcp::phy::Device`
//! over it.
//!
//! The UMEM is one anonymous mapping split in two halves: frames of the first half circulate
//! through the fill and rx rings, frames of the second half through the tx and completion rings.
//! A received frame is handed to smoltcp in place (no copy) and goes back to the fill ring once
//! smoltcp has read it.
//!
//! Neighbours: the kernel keeps answering ARP for the interface (ARP is passed to it), so ARP
//! replies to smoltcp's own requests would never reach it. Instead, the first IPv4 frame from a
//! (address, MAC) pair, and one every [`LEARN_EVERY`] after, is preceded by a synthesised ARP
//! request from that sender, from which smoltcp fills its neighbour cache (it answers it too,
//! which the peer accepts as a refresh). A peer is only ever learned from a frame it sent.

use std::{
    collections::HashMap,
    ffi::CString,
    net::Ipv4Addr,
    num::NonZeroU32,
    ptr::NonNull,
    time::{Duration, Instant},
};

use serde::Serialize;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use xdpilone::{
    CompletionQueue, FillQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig,
    User, xdp::XdpDesc,
};

use crate::AccelError;

/// How often a known neighbour is re-announced to smoltcp (its cache forgets after 60 s).
pub const LEARN_EVERY: Duration = Duration::from_secs(20);
/// Neighbours remembered for learning; the table is cleared when full (learning starts over).
const MAX_LEARNED: usize = 4096;
/// Wake-ups one [`XskQueue::flush`] makes at most: the whole tx ring in the kernel's batches of 32.
const MAX_WAKES: u32 = 64;
/// The kernel's XDP_PACKET_HEADROOM: received data starts this far into a frame.
const XDP_HEADROOM: u32 = 256;

/// How the socket was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    /// The driver DMAs into the UMEM.
    ZeroCopy,
    /// The kernel copies each frame between skb and UMEM (veth, drivers without XSK pools).
    Copy,
}

impl std::fmt::Display for BindMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Sizes of one socket.
#[derive(Debug, Clone, Copy)]
pub struct XskOptions {
    /// UMEM frames in all (a power of two); half receive, half transmit.
    pub frames: u32,
    /// Bytes per frame (2048 or 4096).
    pub frame_size: u32,
    /// Bind in copy mode without trying zero-copy first.
    pub force_copy: bool,
}

impl Default for XskOptions {
    fn default() -> Self {
        XskOptions {
            frames: 4096,
            frame_size: 4096,
            force_copy: false,
        }
    }
}

/// The fast path's own counters, as published in the `xs_user` map (index = discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum UserCounter {
    RxFrames = 0,
    TxFrames,
    TcpAccepted,
    TcpActive,
    TcpTimedOut,
    TcpRefused,
    HttpRequests,
    HttpErrors,
    BytesSent,
    UdpFrames,
    /// Connections in TIME-WAIT whose socket was taken back early because too few were left
    /// listening (connection churn; Linux's `tcp_max_tw_buckets` does the same).
    TcpTimeWaitReclaimed,
    /// Not a counter: when the fast path's loop last ran, in milliseconds since the Unix epoch
    /// (see [`super::heartbeat_age`]).
    HeartbeatMs,
}

impl UserCounter {
    pub const ALL: [UserCounter; 12] = [
        UserCounter::RxFrames,
        UserCounter::TxFrames,
        UserCounter::TcpAccepted,
        UserCounter::TcpActive,
        UserCounter::TcpTimedOut,
        UserCounter::TcpRefused,
        UserCounter::HttpRequests,
        UserCounter::HttpErrors,
        UserCounter::BytesSent,
        UserCounter::UdpFrames,
        UserCounter::TcpTimeWaitReclaimed,
        UserCounter::HeartbeatMs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UserCounter::RxFrames => "rx_frames",
            UserCounter::TxFrames => "tx_frames",
            UserCounter::TcpAccepted => "tcp_accepted",
            UserCounter::TcpActive => "tcp_active",
            UserCounter::TcpTimedOut => "tcp_timed_out",
            UserCounter::TcpRefused => "tcp_refused",
            UserCounter::HttpRequests => "http_requests",
            UserCounter::HttpErrors => "http_errors",
            UserCounter::BytesSent => "bytes_sent",
            UserCounter::UdpFrames => "udp_frames",
            UserCounter::TcpTimeWaitReclaimed => "tcp_time_wait_reclaimed",
            UserCounter::HeartbeatMs => "heartbeat_unix_ms",
        }
    }
}

/// The UMEM's memory; unmapped last (it is the last field of [`XskQueue`]).
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> Result<Area, AccelError> {
        // SAFETY: an anonymous private mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(AccelError::io(
                "mapping the UMEM",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Area {
            ptr: NonNull::new(p.cast()).expect("mmap never returns NULL on success"),
            len,
        })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the sockets using it were closed before (field order).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The transmit half, borrowed by a [`XskTxToken`].
struct TxSide {
    ring: RingTx,
    free: Vec<u64>,
    base: NonNull<u8>,
    frame_size: u32,
    kick: bool,
    sent: u64,
}

/// One AF_XDP socket bound to one queue of one interface.
pub struct XskQueue {
    // Field order is drop order: rings and sockets before the memory they point into.
    rx: RingRx,
    fill: FillQueue,
    comp: CompletionQueue,
    tx: TxSide,
    _user: User,
    _umem: Umem,
    rx_recycle: Vec<u64>,
    pending: Option<XdpDesc>,
    learned: HashMap<Ipv4Addr, ([u8; 6], Instant)>,
    synth: [u8; 42],
    mtu: usize,
    received: u64,
    fd: i32,
    pub mode: BindMode,
    pub queue: u32,
    area: Area,
}

fn xdp_err(what: &str, e: xdpilone::Errno) -> AccelError {
    AccelError::io(
        what.to_string(),
        std::io::Error::from_raw_os_error(e.get_raw()),
    )
}

impl XskQueue {
    /// Opens a socket on `iface` queue `queue` in the calling thread's namespace: zero-copy when
    /// the driver allows it, else copy mode.
    pub fn open(iface: &str, queue: u32, opts: XskOptions) -> Result<XskQueue, AccelError> {
        if !opts.frames.is_power_of_two() || opts.frames < 64 {
            return Err(AccelError::InvalidArgument(format!(
                "UMEM frames {} (a power of two, at least 64)",
                opts.frames
            )));
        }
        if opts.frame_size != 2048 && opts.frame_size != 4096 {
            return Err(AccelError::InvalidArgument(format!(
                "UMEM frame size {} (2048 or 4096)",
                opts.frame_size
            )));
        }
        if !opts.force_copy {
            match Self::bind(iface, queue, opts, BindMode::ZeroCopy) {
                Ok(q) => return Ok(q),
                // Drivers without XSK pool support refuse zero-copy; anything else is real.
                Err(AccelError::Io { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EPROTONOSUPPORT)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Self::bind(iface, queue, opts, BindMode::Copy)
    }

    fn bind(
        iface: &str,
        queue: u32,
        opts: XskOptions,
        mode: BindMode,
    ) -> Result<XskQueue, AccelError> {
        let half = opts.frames / 2;
        let area = Area::new(opts.frames as usize * opts.frame_size as usize)?;
        let slice = NonNull::slice_from_raw_parts(area.ptr, area.len);
        let config = UmemConfig {
            fill_size: half,
            complete_size: half,
            frame_size: opts.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: the area is page aligned (mmap), as long as the frames say, and outlives the
        // UMEM (it is dropped after it).
        let umem =
            unsafe { Umem::new(config, slice) }.map_err(|e| xdp_err("creating a UMEM", e))?;
        let name = CString::new(iface)
            .map_err(|_| AccelError::InvalidArgument(format!("interface name {iface:?}")))?;
        let mut info = IfInfo::invalid();
        info.from_name(&name)
            .map_err(|_| AccelError::InterfaceNotFound {
                iface: iface.to_string(),
                netns: None,
            })?;
        info.set_queue(queue);
        let sock =
            Socket::with_shared(&info, &umem).map_err(|e| xdp_err("creating an XDP socket", e))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(|e| xdp_err("creating the fill and completion rings", e))?;
        let flags = SocketConfig::XDP_BIND_NEED_WAKEUP
            | match mode {
                BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
                BindMode::Copy => SocketConfig::XDP_BIND_COPY,
            };
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(half),
                    tx_size: NonZeroU32::new(half),
                    bind_flags: flags,
                },
            )
            .map_err(|e| xdp_err("creating the rx and tx rings", e))?;
        let rx = user
            .map_rx()
            .map_err(|e| xdp_err("mapping the rx ring", e))?;
        let tx = user
            .map_tx()
            .map_err(|e| xdp_err("mapping the tx ring", e))?;
        umem.bind(&user)
            .map_err(|e| xdp_err(&format!("binding to {iface} queue {queue} ({mode})"), e))?;
        let fd = user.as_raw_fd();
        let (fill, comp) = device.into_parts();
        let fs = u64::from(opts.frame_size);
        let mut q = XskQueue {
            rx,
            fill,
            comp,
            tx: TxSide {
                ring: tx,
                free: (half..opts.frames).map(|i| u64::from(i) * fs).collect(),
                base: area.ptr,
                frame_size: opts.frame_size,
                kick: false,
                sent: 0,
            },
            _user: user,
            _umem: umem,
            rx_recycle: (0..half).map(|i| u64::from(i) * fs).collect(),
            pending: None,
            learned: HashMap::new(),
            synth: [0; 42],
            mtu: (if_mtu(iface).unwrap_or(1500) + 14)
                .min((opts.frame_size - XDP_HEADROOM) as usize),
            received: 0,
            fd,
            mode,
            queue,
            area,
        };
        q.service();
        Ok(q)
    }

    /// The socket's descriptor, for the XSKMAP and for poll(2).
    pub fn raw_fd(&self) -> i32 {
        self.fd
    }

    /// The socket's pending error (`SO_ERROR`, cleared by reading it): ENETDOWN once its
    /// interface went away.
    pub fn take_error(&self) -> Option<std::io::Error> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: err and len are valid for the call and sized for SO_ERROR.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        match (rc, err) {
            (0, 0) => None,
            (0, e) => Some(std::io::Error::from_raw_os_error(e)),
            _ => Some(std::io::Error::last_os_error()),
        }
    }

    /// Frames received and sent so far.
    pub fn frames(&self) -> (u64, u64) {
        (self.received, self.tx.sent)
    }

    /// Returns transmitted frames to the free list and received ones to the fill ring.
    pub fn service(&mut self) {
        let mut done = self.comp.complete(u32::MAX);
        while let Some(addr) = done.read() {
            let fs = u64::from(self.tx.frame_size);
            self.tx.free.push(addr - addr % fs);
        }
        done.release();
        drop(done);
        if !self.rx_recycle.is_empty() {
            let mut w = self.fill.fill(self.rx_recycle.len() as u32);
            let n = w.insert(self.rx_recycle.iter().copied());
            w.commit();
            drop(w);
            self.rx_recycle.drain(..n as usize);
        }
        if self.fill.needs_wakeup() {
            self.fill.wake();
        }
    }

    /// Tells the kernel about queued transmissions. Copy mode needs a syscall for each batch,
    /// and one sends at most 32 frames (the kernel's `TX_BATCH_SIZE`): it is repeated until the
    /// kernel has taken every queued frame (bounded), or what is left would wait for the next
    /// transmission, or smoltcp's retransmit timer, to go out.
    pub fn flush(&mut self) {
        if !self.tx.kick {
            return;
        }
        self.tx.kick = false;
        for _ in 0..MAX_WAKES {
            if self.tx.ring.pending() == 0 || !self.tx.ring.needs_wakeup() {
                return;
            }
            self.tx.ring.wake();
        }
        // The kernel is not taking frames now (device busy): try again next round.
        self.tx.kick = true;
    }

    /// Reads up to `max` received frames, passing each to `f`, and recycles them: the raw
    /// receive path (no TCP/IP stack). Returns how many were read.
    pub fn drain(&mut self, max: u32, mut f: impl FnMut(&[u8])) -> u32 {
        let mut r = self.rx.receive(max);
        let mut n = 0;
        while let Some(d) = r.read() {
            // SAFETY: the kernel hands out descriptors inside our UMEM's receive half.
            let frame = unsafe { frame_at(self.area.ptr, d.addr, d.len as usize) };
            f(frame);
            self.rx_recycle.push(d.addr);
            n += 1;
        }
        r.release();
        drop(r);
        self.received += u64::from(n);
        self.service();
        n
    }

    fn next_rx(&mut self) -> Option<XdpDesc> {
        if let Some(d) = self.pending.take() {
            return Some(d);
        }
        let mut r = self.rx.receive(1);
        let d = r.read();
        r.release();
        drop(r);
        if d.is_some() {
            self.received += 1;
        }
        d
    }

    /// Writes an ARP request from the frame's IPv4 sender into `self.synth` when that sender
    /// should be (re)learned. Returns whether it did.
    fn learn(&mut self, frame: &[u8], now: Instant) -> bool {
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            return false;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&frame[6..12]);
        if mac[0] & 1 != 0 {
            return false; // a multicast source is no neighbour
        }
        let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        if let Some((m, at)) = self.learned.get(&src)
            && *m == mac
            && now.duration_since(*at) < LEARN_EVERY
        {
            return false;
        }
        if self.learned.len() >= MAX_LEARNED {
            self.learned.clear();
        }
        self.learned.insert(src, (mac, now));
        let s = &mut self.synth;
        s[0..6].copy_from_slice(&frame[0..6]);
        s[6..12].copy_from_slice(&mac);
        s[12..14].copy_from_slice(&[0x08, 0x06]);
        // Ethernet, IPv4, 6-byte MACs, 4-byte addresses, request.
        s[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        s[22..28].copy_from_slice(&mac);
        s[28..32].copy_from_slice(&frame[26..30]);
        s[32..38].fill(0);
        s[38..42].copy_from_slice(&frame[30..34]);
        true
    }
}

/// # Safety
/// `addr..addr+len` must lie inside the UMEM starting at `base`.
unsafe fn frame_at<'a>(base: NonNull<u8>, addr: u64, len: usize) -> &'a [u8] {
    // SAFETY: per the caller.
    unsafe { std::slice::from_raw_parts(base.as_ptr().add(addr as usize), len) }
}

/// MTU of `iface` in the calling thread's namespace.
fn if_mtu(iface: &str) -> Option<usize> {
    // SAFETY: zeroed ifreq is valid; the name is filled before the ioctl.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.len() >= ifr.ifr_name.len() {
        return None;
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *d = *s as libc::c_char;
    }
    // SAFETY: a datagram socket only carries the ioctl.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: ifr is a valid ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut ifr) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU filled the mtu member.
    Some(unsafe { ifr.ifr_ifru.ifru_mtu } as usize)
}

/// A received frame (in the UMEM, or a synthesised ARP request) lent to smoltcp.
pub enum XskRxToken<'a> {
    Umem {
        frame: &'a [u8],
        addr: u64,
        recycle: &'a mut Vec<u64>,
    },
    Synth(&'a [u8]),
}

impl phy::RxToken for XskRxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self {
            XskRxToken::Umem {
                frame,
                addr,
                recycle,
            } => {
                let r = f(frame);
                recycle.push(addr);
                r
            }
            XskRxToken::Synth(frame) => f(frame),
        }
    }
}

/// A free transmit frame lent to smoltcp.
pub struct XskTxToken<'a>(&'a mut TxSide);

impl phy::TxToken for XskTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let side = self.0;
        let addr = side
            .free
            .pop()
            .expect("a token is only handed out with a free frame");
        let len = len.min(side.frame_size as usize);
        // SAFETY: addr is a frame of the transmit half that the kernel has completed, so we own
        // it until it is queued below.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(side.base.as_ptr().add(addr as usize), len) };
        let r = f(buf);
        let mut w = side.ring.transmit(1);
        let queued = w.insert_once(XdpDesc {
            addr,
            len: len as u32,
            options: 0,
        });
        w.commit();
        drop(w);
        if queued {
            side.kick = true;
            side.sent += 1;
        } else {
            side.free.push(addr); // ring full: the frame is dropped, TCP retransmits
        }
        r
    }
}

impl phy::Device for XskQueue {
    type RxToken<'a> = XskRxToken<'a>;
    type TxToken<'a> = XskTxToken<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.service();
        if self.tx.free.is_empty() {
            return None; // smoltcp may answer any frame: wait for a completion first
        }
        let d = self.next_rx()?;
        // SAFETY: the kernel hands out descriptors inside our UMEM's receive half.
        let frame = unsafe { frame_at(self.area.ptr, d.addr, d.len as usize) };
        if self.learn(frame, Instant::now()) {
            self.pending = Some(d);
            return Some((XskRxToken::Synth(&self.synth), XskTxToken(&mut self.tx)));
        }
        Some((
            XskRxToken::Umem {
                frame,
                addr: d.addr,
                recycle: &mut self.rx_recycle,
            },
            XskTxToken(&mut self.tx),
        ))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        if self.tx.free.is_empty() {
            self.service();
        }
        if self.tx.free.is_empty() {
            return None;
        }
        Some(XskTxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = Some(64);
        caps
    }
}
