//! AF_XDP steering and sockets: the kernel side of the fast path (see `bpf/xsk_steer.bpf.c`).
//!
//! [`Steering`] attaches `xsk_steer` to one named interface: frames for one TCP port (and one
//! UDP port, for the raw packet-rate test) go to the AF_XDP socket of the queue they arrived on,
//! through the XSKMAP `xsks`; everything else is passed to the kernel. [`XskQueue`] is one such
//! socket (UMEM with fill, completion, rx and tx rings, through `xdpilone`), and a
//! `smoltcp::phy::Device`, so a user-space TCP/IP stack runs over it (`crates/fastpath`).
//!
//! Pins, under `/sys/fs/bpf/disgrafs/afxdp/<netns>/<iface>/`, exist while the fast path runs (it
//! removes them when it stops; `accel detach` removes them after a crash):
//!
//! | pin | what |
//! | --- | --- |
//! | `link_xdp_driver` / `link_xdp_generic` | the XDP link (the name records the mode) |
//! | `xs_config`, `xs_stats`, `xs_user` | configuration, kernel counters, the fast path's counters |
//!
//! Everything here must be called on a thread inside the interface's network namespace (see
//! [`crate::sys::in_netns`]): interface indexes and AF_XDP binds are per namespace.

mod device;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray, XskMap},
    programs::Xdp,
};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use device::{BindMode, UserCounter, XskOptions, XskQueue};

use crate::{
    AccelError,
    cpu_balance::AttachMode,
    error::errno_of,
    netlink::{self, XdpAttached},
    objects,
    pin::{self, Accelerator, Attachment},
    sys,
};

const OBJECT: &str = "xsk_steer.bpf.o";
const PINNED_MAPS: [&str; 3] = ["xs_config", "xs_stats", "xs_user"];
/// Entries of the XSKMAP (`MAX_QUEUES` in the program): queues beyond it are not served.
pub const MAX_QUEUES: u32 = 64;
/// Entries of `xs_user`.
pub const USER_COUNTERS: u32 = 16;
/// A fast path whose loop has not published its heartbeat for this long is not running (it
/// publishes every quarter second; a stuck or killed one stops).
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch: the unit of [`UserCounter::HeartbeatMs`].
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long ago a heartbeat of [`unix_ms`] was published (`None`: never).
pub fn heartbeat_age(heartbeat_ms: u64) -> Option<Duration> {
    (heartbeat_ms != 0).then(|| Duration::from_millis(unix_ms().saturating_sub(heartbeat_ms)))
}

/// Mirror of `struct xs_config` in xsk_steer.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct XsConfig {
    tcp_port: u16,
    udp_port: u16,
    ipv6: u32,
}

// SAFETY: plain repr(C) integers without implicit padding.
unsafe impl aya::Pod for XsConfig {}

/// Mirror of `struct xs_stats`: one per CPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SteerCounters {
    /// Frames the program saw.
    pub seen: u64,
    /// TCP frames for the port, handed to an AF_XDP socket.
    pub tcp: u64,
    /// UDP frames for the port, handed to an AF_XDP socket.
    pub udp: u64,
    /// Frames passed to the kernel.
    pub passed: u64,
    /// Frames for the ports whose queue had no socket (passed to the kernel).
    pub no_socket: u64,
}

// SAFETY: plain repr(C) u64s.
unsafe impl aya::Pod for SteerCounters {}

impl SteerCounters {
    pub fn sum(per_cpu: &[SteerCounters]) -> SteerCounters {
        per_cpu
            .iter()
            .fold(SteerCounters::default(), |a, b| SteerCounters {
                seen: a.seen + b.seen,
                tcp: a.tcp + b.tcp,
                udp: a.udp + b.udp,
                passed: a.passed + b.passed,
                no_socket: a.no_socket + b.no_socket,
            })
    }
}

/// What to steer where.
#[derive(Debug, Clone)]
pub struct SteerConfig {
    pub iface: String,
    /// Only for the pin path: the caller already runs inside this namespace.
    pub netns: Option<String>,
    /// TCP destination port steered to the sockets (0: none).
    pub tcp_port: u16,
    /// UDP destination port steered to the sockets (0: none).
    pub udp_port: u16,
    /// Steer IPv6 as well as IPv4.
    pub ipv6: bool,
    pub mode: AttachMode,
}

/// The steering program attached to one interface. Dropping it detaches it and removes its pins.
pub struct Steering {
    ebpf: Ebpf,
    attachment: Attachment,
    /// "driver" or "generic".
    pub mode: &'static str,
    /// Receive queues of the interface (one socket each).
    pub queues: u32,
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("iface", &self.attachment.iface)
            .field("mode", &self.mode)
            .field("queues", &self.queues)
            .finish()
    }
}

fn load_err(program: &str, e: impl std::error::Error + 'static) -> AccelError {
    if errno_of(&e) == Some(libc::EPERM) && !sys::is_privileged() {
        return AccelError::NotPrivileged {
            what: format!("loading {program}"),
        };
    }
    AccelError::ProgramUnsupported {
        program: program.to_string(),
        kind: "XDP".into(),
        detail: crate::error::chain(&e),
    }
}

impl Steering {
    /// Loads `xsk_steer`, attaches it to `cfg.iface` and pins it. Refuses an interface that runs
    /// an XDP program disgrafs did not attach.
    pub fn attach(cfg: &SteerConfig) -> Result<Steering, AccelError> {
        sys::require_privileged("attaching AF_XDP steering")?;
        sys::require_btf()?;
        if cfg.tcp_port == 0 && cfg.udp_port == 0 {
            return Err(AccelError::InvalidArgument(
                "AF_XDP steering needs a TCP or a UDP port".into(),
            ));
        }
        let attachment = Attachment::new(Accelerator::Afxdp, cfg.netns.as_deref(), &cfg.iface)?;
        if attachment.exists() {
            return Err(AccelError::AlreadyAttached {
                what: "the AF_XDP fast path".into(),
                iface: cfg.iface.clone(),
            });
        }
        let ifindex = sys::if_index(&cfg.iface, cfg.netns.as_deref())?;
        let queues = rx_queues(&cfg.iface)?;
        let mut warnings = Vec::new();
        if queues > MAX_QUEUES {
            warnings.push(format!(
                "{}: {queues} receive queues, only the first {MAX_QUEUES} are served",
                cfg.iface
            ));
        }
        let mut ebpf = EbpfLoader::new()
            .load(objects::XSK_STEER)
            .map_err(|e| load_err(OBJECT, e))?;
        {
            let m = ebpf
                .map_mut("xs_config")
                .ok_or_else(|| no_map("xs_config"))?;
            let mut conf: Array<&mut MapData, XsConfig> =
                Array::try_from(m).map_err(|e| AccelError::bpf("xs_config", e))?;
            let c = XsConfig {
                tcp_port: cfg.tcp_port,
                udp_port: cfg.udp_port,
                ipv6: cfg.ipv6 as u32,
            };
            conf.set(0, c, 0)
                .map_err(|e| AccelError::bpf("writing xs_config", e))?;
        }
        let before = netlink::xdp_state(ifindex)?;
        if before.attached != XdpAttached::None {
            return Err(AccelError::ForeignProgramAttached {
                iface: cfg.iface.clone(),
            });
        }
        let xdp: &mut Xdp = objects::program_mut(&mut ebpf, OBJECT, "xsk_steer")?;
        xdp.load().map_err(|e| load_err("xsk_steer", e))?;
        let (link, mode) = objects::attach_xdp(xdp, ifindex, &cfg.iface, cfg.mode, &mut warnings)?;
        let pinned = (|| -> Result<(), AccelError> {
            pin::ensure_root()?;
            std::fs::create_dir_all(&attachment.dir)
                .map_err(|e| AccelError::io(format!("creating {}", attachment.dir.display()), e))?;
            for name in PINNED_MAPS {
                ebpf.map(name)
                    .ok_or_else(|| no_map(name))?
                    .pin(attachment.path(name))
                    .map_err(|e| AccelError::bpf(format!("pinning {name}"), e))?;
            }
            link.pin(attachment.path(pin::xdp_link_pin(mode)))
                .map_err(|e| AccelError::bpf("pinning the XDP link", e))?;
            Ok(())
        })();
        if let Err(e) = pinned {
            pin::remove_attachment(&attachment).ok();
            return Err(e);
        }
        Ok(Steering {
            ebpf,
            attachment,
            mode,
            queues: queues.min(MAX_QUEUES),
            warnings,
        })
    }

    /// Puts the socket of `queue` into the XSKMAP: from now on its frames go to it.
    pub fn register(&mut self, queue: u32, xsk: &XskQueue) -> Result<(), AccelError> {
        let m = self.ebpf.map_mut("xsks").ok_or_else(|| no_map("xsks"))?;
        let mut xsks: XskMap<&mut MapData> =
            XskMap::try_from(m).map_err(|e| AccelError::bpf("xsks", e))?;
        xsks.set(queue, xsk.raw_fd(), 0)
            .map_err(|e| AccelError::bpf(format!("adding the socket of queue {queue}"), e))
    }

    /// Publishes the fast path's own counters (index = [`UserCounter`]) for `accel status`.
    pub fn publish(&mut self, values: &[u64]) -> Result<(), AccelError> {
        let m = self
            .ebpf
            .map_mut("xs_user")
            .ok_or_else(|| no_map("xs_user"))?;
        let mut arr: Array<&mut MapData, u64> =
            Array::try_from(m).map_err(|e| AccelError::bpf("xs_user", e))?;
        for (i, v) in values.iter().take(USER_COUNTERS as usize).enumerate() {
            arr.set(i as u32, *v, 0)
                .map_err(|e| AccelError::bpf("writing xs_user", e))?;
        }
        Ok(())
    }

    /// The kernel program's counters, per CPU.
    pub fn counters(&self) -> Result<Vec<SteerCounters>, AccelError> {
        let m = self
            .ebpf
            .map("xs_stats")
            .ok_or_else(|| no_map("xs_stats"))?;
        let stats: PerCpuArray<&MapData, SteerCounters> =
            PerCpuArray::try_from(m).map_err(|e| AccelError::bpf("xs_stats", e))?;
        let v = stats
            .get(&0, 0)
            .map_err(|e| AccelError::bpf("reading xs_stats", e))?;
        Ok(v.iter().copied().collect())
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        // Removing the link pin (and dropping our link fd with `ebpf`) detaches the program.
        pin::remove_attachment(&self.attachment).ok();
    }
}

fn no_map(name: &str) -> AccelError {
    AccelError::Bpf {
        context: OBJECT.into(),
        detail: format!("no map {name}"),
    }
}

/// Receive queues of `iface` (ETHTOOL_GCHANNELS; 1 when the driver does not say). Asked over
/// ioctl rather than /sys, which shows the namespace that mounted it, not the caller's.
pub fn rx_queues(iface: &str) -> Result<u32, AccelError> {
    #[repr(C)]
    #[derive(Default)]
    struct Channels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    let mut ch = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: zeroed ifreq is valid; we fill the name and the data pointer before the ioctl.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = iface.as_bytes();
    if name.len() >= ifr.ifr_name.len() {
        return Err(AccelError::InvalidArgument(format!(
            "interface name {iface:?}"
        )));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut Channels).cast();
    // SAFETY: a datagram socket only carries the ioctl.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(AccelError::io(
            "opening an ioctl socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: ifr points at ch, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut ifr) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Ok(1);
    }
    Ok(ch.rx_count.max(ch.combined_count).max(1))
}

/// What `accel status` shows of one running fast path.
#[derive(Debug, Clone, Serialize)]
pub struct AfxdpStatus {
    pub iface: String,
    pub netns: String,
    /// "driver" or "generic" (XDP attach mode).
    pub mode: String,
    pub tcp_port: u16,
    pub udp_port: u16,
    /// Kernel counters summed over CPUs.
    pub steering: SteerCounters,
    /// The fast path's own counters, by name.
    pub fast_path: Vec<(String, u64)>,
    /// Its loop published a heartbeat within [`HEARTBEAT_STALE`]: false when the process died
    /// or hangs with its steering still pinned (`accel detach` removes it).
    pub running: bool,
    /// Milliseconds since that heartbeat (`None`: none yet).
    pub heartbeat_age_ms: Option<u64>,
}

fn open_pinned(a: &Attachment, name: &str) -> Result<Map, AccelError> {
    let p = a.path(name);
    let data = MapData::from_pin(&p)
        .map_err(|e| AccelError::bpf(format!("opening {}", p.display()), e))?;
    Map::from_map_data(data).map_err(|e| AccelError::bpf(format!("opening {}", p.display()), e))
}

/// Status of one pinned fast path, from its pins alone.
pub fn status(a: &Attachment) -> Result<AfxdpStatus, AccelError> {
    let mode = pin::xdp_link_pinned(a).map_or("detached", |(_, m)| m);
    let conf_map = open_pinned(a, "xs_config")?;
    let conf: Array<&MapData, XsConfig> =
        Array::try_from(&conf_map).map_err(|e| AccelError::bpf("xs_config", e))?;
    let c = conf
        .get(&0, 0)
        .map_err(|e| AccelError::bpf("reading xs_config", e))?;
    let stats_map = open_pinned(a, "xs_stats")?;
    let stats: PerCpuArray<&MapData, SteerCounters> =
        PerCpuArray::try_from(&stats_map).map_err(|e| AccelError::bpf("xs_stats", e))?;
    let per_cpu = stats
        .get(&0, 0)
        .map_err(|e| AccelError::bpf("reading xs_stats", e))?;
    let per_cpu: Vec<SteerCounters> = per_cpu.iter().copied().collect();
    let user_map = open_pinned(a, "xs_user")?;
    let user: Array<&MapData, u64> =
        Array::try_from(&user_map).map_err(|e| AccelError::bpf("xs_user", e))?;
    let value = |c: UserCounter| user.get(&(c as u32), 0).unwrap_or(0);
    let fast_path = UserCounter::ALL
        .iter()
        .filter(|c| **c != UserCounter::HeartbeatMs)
        .map(|c| (c.name().to_string(), value(*c)))
        .collect();
    let age = heartbeat_age(value(UserCounter::HeartbeatMs));
    Ok(AfxdpStatus {
        iface: a.iface.clone(),
        netns: a.netns_label().to_string(),
        mode: mode.to_string(),
        tcp_port: c.tcp_port,
        udp_port: c.udp_port,
        steering: SteerCounters::sum(&per_cpu),
        fast_path,
        running: age.is_some_and(|a| a < HEARTBEAT_STALE),
        heartbeat_age_ms: age.map(|a| a.as_millis() as u64),
    })
}
