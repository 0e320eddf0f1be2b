//! Real test hosts for the accelerators' tests and benchmarks: network namespaces joined by veth
//! pairs (addresses only inside the namespaces), and a child cgroup v2 for socket programs. Every
//! host is a guard: dropping it (also while a test panics) tears it down, and nothing of it is
//! ever created in the root network namespace or the root cgroup.
//!
//! Addresses come from the benchmarking ranges (198.18.0.0/15, 2001:2::/48, RFC 2544/5180), which
//! route nowhere.
//!
//! Tests that need root or a kernel feature call [`privileged_or_skip`]: it prints why a test
//! skips, and turns the skip into a failure when `DISGRAFS_REQUIRE_PRIVILEGED=1` (CI sets it), so
//! a CI run cannot pass by skipping.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{AccelError, sys};

mod loss;
pub mod packet;

pub use loss::Loss;

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "DISGRAFS_REQUIRE_PRIVILEGED";

/// Why a privileged test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !sys::is_privileged() {
        return Some("needs root (CAP_BPF + CAP_NET_ADMIN)".into());
    }
    if !sys::has_btf() {
        return Some("the kernel exposes no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    for tool in ["ip", "nsenter"] {
        if which(tool).is_none() {
            return Some(format!(
                "{tool} is not installed (scripts/deps.d/20-accel.sh installs it)"
            ));
        }
    }
    None
}

/// Returns true when the privileged test `name` can run. Otherwise prints the reason and returns
/// false, or panics when [`REQUIRE_ENV`] is `1`.
pub fn privileged_or_skip(name: &str) -> bool {
    match skip_reason() {
        None => true,
        Some(reason) if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") => {
            panic!("{name} cannot run ({reason}) and {REQUIRE_ENV}=1 forbids skipping")
        }
        Some(reason) => {
            eprintln!("skipping {name}: {reason}");
            false
        }
    }
}

/// Looks a program up in PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Result<(), AccelError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AccelError::Harness(format!("running {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(AccelError::Harness(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dgf{}-{}-{prefix}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace (`/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct NetNsGuard {
    name: String,
}

impl NetNsGuard {
    /// Creates a namespace with a unique name built from `prefix`, loopback up.
    pub fn new(prefix: &str) -> Result<Self, AccelError> {
        let name = unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNsGuard { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace. nsenter switches only the network
    /// namespace (unlike `ip netns exec`, which also remounts /sys).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}/{}", sys::NETNS_DIR, self.name))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `f` on a thread inside this namespace (see [`sys::in_netns`]).
    pub fn run<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, AccelError> + Send,
    ) -> Result<T, AccelError> {
        sys::in_netns(Some(&self.name), f)
    }

    /// Runs `ip -n NS ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<(), AccelError> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        // Deleting the namespace deletes the interfaces in it (and so both ends of a veth pair).
        Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status()
            .ok();
    }
}

/// Options of a [`VethNet`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VethOptions {
    /// One RX and one TX queue per end (AF_XDP tests need it; veth defaults to one per CPU).
    pub single_queue: bool,
}

/// Two namespaces joined by a veth pair: `a` (the client side, [`VethNet::IF_A`], addresses
/// `ADDR_A*`) and `b` (the server side, [`VethNet::IF_B`], addresses `ADDR_B*`).
#[derive(Debug)]
pub struct VethNet {
    // Field order is drop order: both namespaces go, taking the pair with them.
    pub a: NetNsGuard,
    pub b: NetNsGuard,
}

impl VethNet {
    pub const IF_A: &'static str = "dgf-a";
    pub const IF_B: &'static str = "dgf-b";
    pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    pub const ADDR_A6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    pub const ADDR_B6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

    pub fn new(opts: VethOptions) -> Result<Self, AccelError> {
        let net = VethNet {
            a: NetNsGuard::new("a")?,
            b: NetNsGuard::new("b")?,
        };
        // Created inside namespace a with its peer placed straight into b: neither end ever
        // exists in the root namespace.
        let mut args = vec!["link", "add", Self::IF_A];
        if opts.single_queue {
            args.extend(["numtxqueues", "1", "numrxqueues", "1"]);
        }
        args.extend([
            "type",
            "veth",
            "peer",
            "name",
            Self::IF_B,
            "netns",
            net.b.name(),
        ]);
        if opts.single_queue {
            args.extend(["numtxqueues", "1", "numrxqueues", "1"]);
        }
        net.a.ip(&args)?;
        for (ns, ifname, v4, v6) in [
            (&net.a, Self::IF_A, Self::ADDR_A, Self::ADDR_A6),
            (&net.b, Self::IF_B, Self::ADDR_B, Self::ADDR_B6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
            ns.ip(&["link", "set", ifname, "up"])?;
        }
        Ok(net)
    }

    pub fn addr_b(v6: bool) -> IpAddr {
        if v6 {
            Self::ADDR_B6.into()
        } else {
            Self::ADDR_B.into()
        }
    }

    /// MAC address of an interface inside a namespace.
    pub fn mac(ns: &NetNsGuard, ifname: &str) -> Result<[u8; 6], AccelError> {
        let out = Command::new("ip")
            .args(["-n", ns.name(), "-o", "link", "show", ifname])
            .output()
            .map_err(|e| AccelError::Harness(format!("ip link show: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mac = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| AccelError::Harness(format!("no MAC for {ifname}: {text}")))?;
        let mut m = [0u8; 6];
        for (i, part) in mac.split(':').enumerate().take(6) {
            m[i] = u8::from_str_radix(part, 16)
                .map_err(|_| AccelError::Harness(format!("bad MAC {mac}")))?;
        }
        Ok(m)
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
pub fn cgroup2_root() -> Option<PathBuf> {
    sys::cgroup2_mounts().into_iter().next()
}

/// A child cgroup v2 holding only the test's own processes; on drop its processes go back to
/// the cgroup this process was in and the cgroup is removed. Socket programs (sockops, sk_msg)
/// are attached to it, never to the root.
#[derive(Debug)]
pub struct CgroupGuard {
    path: PathBuf,
    home: PathBuf,
}

impl CgroupGuard {
    pub fn new(prefix: &str) -> Result<Self, AccelError> {
        let root = cgroup2_root()
            .ok_or_else(|| AccelError::Harness("no cgroup v2 hierarchy is mounted".into()))?;
        let home = sys::own_cgroup().unwrap_or_else(|| root.clone());
        let path = root.join(unique(prefix));
        fs::create_dir(&path)
            .map_err(|e| AccelError::Harness(format!("creating {}: {e}", path.display())))?;
        Ok(CgroupGuard { path, home })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), AccelError> {
        fs::write(self.path.join("cgroup.procs"), pid.to_string()).map_err(|e| {
            AccelError::Harness(format!("moving {pid} into {}: {e}", self.path.display()))
        })
    }

    /// A command for `program` that runs in this cgroup and, given `netns`, in that network
    /// namespace. The child joins the cgroup before it execs (so before nsenter switches the
    /// namespace: the order a socket program attached to the cgroup needs, and the one
    /// `ip netns exec`, which remounts /sys, would break).
    pub fn command(&self, netns: Option<&NetNsGuard>, program: &str) -> Command {
        let mut c = match netns {
            Some(ns) => ns.command(program),
            None => Command::new(program),
        };
        let procs = std::ffi::CString::new(
            self.path
                .join("cgroup.procs")
                .as_os_str()
                .as_encoded_bytes(),
        )
        .expect("cgroup paths have no NUL");
        // SAFETY: the closure only makes async-signal-safe calls (open, write, close) on memory
        // prepared before the fork.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" moves the writing process itself.
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                libc::close(fd);
                if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        c
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Ok(procs) = fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in procs.lines() {
                fs::write(self.home.join("cgroup.procs"), pid).ok();
            }
        }
        fs::remove_dir(&self.path).ok();
    }
}

/// A child process (a server, nginx's master) stopped by its PID when dropped: SIGTERM first
/// (nginx's master takes its workers along), SIGKILL after 10 s.
#[derive(Debug)]
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Removes one accelerator's pins on drop, so a test that panics half-way leaves nothing
/// attached or pinned. Declare it after the [`VethNet`] it refers to: it then drops first.
#[derive(Debug)]
pub struct AttachmentGuard(crate::pin::Attachment);

impl AttachmentGuard {
    pub fn new(
        accelerator: crate::pin::Accelerator,
        netns: Option<&str>,
        iface: &str,
    ) -> Result<Self, AccelError> {
        Ok(AttachmentGuard(crate::pin::Attachment::new(
            accelerator,
            netns,
            iface,
        )?))
    }
}

impl Drop for AttachmentGuard {
    fn drop(&mut self) {
        crate::pin::remove_attachment(&self.0).ok();
    }
}
