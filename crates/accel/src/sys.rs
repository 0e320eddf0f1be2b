//! What the accelerators ask of the running system before touching it: privileges, BTF, CPUs,
//! interfaces, and running code inside a named network namespace.

use std::{ffi::CString, fs, os::fd::AsRawFd, path::Path};

use crate::AccelError;

/// Capability numbers from linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Where named network namespaces live (`ip netns add`).
pub const NETNS_DIR: &str = "/run/netns";

fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// True when this process may load BPF programs and attach them to interfaces.
pub fn is_privileged() -> bool {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    (has(CAP_BPF) || has(CAP_SYS_ADMIN)) && has(CAP_NET_ADMIN)
}

/// Fails with [`AccelError::NotPrivileged`] unless [`is_privileged`].
pub fn require_privileged(what: &str) -> Result<(), AccelError> {
    if is_privileged() {
        Ok(())
    } else {
        Err(AccelError::NotPrivileged {
            what: what.to_string(),
        })
    }
}

/// True when the kernel exposes its BTF, which CO-RE relocations and tp_btf need.
pub fn has_btf() -> bool {
    Path::new("/sys/kernel/btf/vmlinux").exists()
}

pub fn require_btf() -> Result<(), AccelError> {
    if has_btf() {
        Ok(())
    } else {
        Err(AccelError::NoBtf)
    }
}

/// Number of possible CPUs (the size of per-CPU maps and of the CPUMAP).
pub fn possible_cpus() -> Result<usize, AccelError> {
    aya::util::nr_cpus().map_err(|(what, e)| AccelError::io(format!("reading {what}"), e))
}

/// CPUs currently online.
pub fn online_cpus() -> Result<Vec<u32>, AccelError> {
    aya::util::online_cpus().map_err(|(what, e)| AccelError::io(format!("reading {what}"), e))
}

/// The index of `iface` in the calling thread's network namespace.
pub fn if_index(iface: &str, netns: Option<&str>) -> Result<u32, AccelError> {
    let not_found = || AccelError::InterfaceNotFound {
        iface: iface.to_string(),
        netns: netns.map(str::to_string),
    };
    let c = CString::new(iface).map_err(|_| not_found())?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 { Err(not_found()) } else { Ok(idx) }
}

/// Runs `f` inside the named network namespace (or in the current one for `None`).
///
/// setns(2) changes only the calling thread, so `f` runs on a scoped thread of its own: the
/// caller's thread never leaves its namespace. Sockets created by `f` keep their namespace for
/// life and can be used from any thread afterwards. Only the network namespace changes (like
/// `nsenter --net`, unlike `ip netns exec`, which also remounts /sys): bpffs pins and cgroups
/// stay those of the caller.
pub fn in_netns<T: Send>(
    netns: Option<&str>,
    f: impl FnOnce() -> Result<T, AccelError> + Send,
) -> Result<T, AccelError> {
    let Some(name) = netns else { return f() };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(AccelError::InvalidArgument(format!(
            "network namespace name {name:?}"
        )));
    }
    let path = Path::new(NETNS_DIR).join(name);
    let file = fs::File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AccelError::NetnsNotFound {
            name: name.to_string(),
        },
        _ => AccelError::io(format!("opening {}", path.display()), e),
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: file is an open namespace file; setns only affects this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(AccelError::io(
                    format!("entering network namespace {name}"),
                    std::io::Error::last_os_error(),
                ));
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Where cgroup v2 hierarchies are mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid host), in mount order.
pub fn cgroup2_mounts() -> Vec<std::path::PathBuf> {
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[2] == "cgroup2").then(|| std::path::PathBuf::from(f[1]))
        })
        .collect()
}

/// This process's cgroup v2 directory.
pub fn own_cgroup() -> Option<std::path::PathBuf> {
    let root = cgroup2_mounts().into_iter().next()?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(root.join(rel.trim_start_matches('/')))
}
